"""Invoice items: lines waiting for an invoice (prorations of plan changes), under
row-level security.

Revision ID: a81cd0764623
Revises: 2bf0be227041
Create Date: 2026-12-06 19:50:11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a81cd0764623"
down_revision: str | None = "2bf0be227041"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"


def upgrade() -> None:
    op.create_table(
        "invoice_items",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=True),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("price_id", sa.String(length=64), nullable=True),
        sa.Column("subscription_item_id", sa.String(length=64), nullable=True),
        sa.Column(
            "position",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Its place among the items made together (a change's credit before its charge).",
        ),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("quantity", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("unit_amount_decimal", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False, comment="Minor units, rounded once."),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_start", postgresql.TIMESTAMP(timezone=True, precision=3), nullable=False),
        sa.Column("period_end", postgresql.TIMESTAMP(timezone=True, precision=3), nullable=False),
        sa.Column("proration", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "customer_id"],
            ["customers.organization_id", "customers.id"],
            name="invoice_items_organization_id_customer_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "invoice_id"],
            ["invoices.organization_id", "invoices.id"],
            name="invoice_items_organization_id_invoice_id_fkey",
            onupdate="CASCADE",
            ondelete="SET NULL (invoice_id)",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "subscription_id"],
            ["subscriptions.organization_id", "subscriptions.id"],
            name="invoice_items_organization_id_subscription_id_fkey",
            onupdate="CASCADE",
            ondelete="SET NULL (subscription_id)",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "invoice_items_organization_id_customer_id_invoice_id_idx",
        "invoice_items",
        ["organization_id", "customer_id", "invoice_id"],
        unique=False,
    )
    op.create_index("invoice_items_organization_id_id_key", "invoice_items", ["organization_id", "id"], unique=True)
    op.create_index("invoice_items_organization_id_idx", "invoice_items", ["organization_id"], unique=False)
    op.execute("ALTER TABLE invoice_items ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON invoice_items TO {TENANT_ROLE} "
        f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON invoice_items")
    op.drop_index("invoice_items_organization_id_idx", table_name="invoice_items")
    op.drop_index("invoice_items_organization_id_id_key", table_name="invoice_items")
    op.drop_index("invoice_items_organization_id_customer_id_invoice_id_idx", table_name="invoice_items")
    op.drop_table("invoice_items")
