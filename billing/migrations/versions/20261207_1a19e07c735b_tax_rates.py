"""Tax rates, the subscriptions' default and per-item tax rates, and each invoice line's
tax amounts; the new tables under row-level security.

Revision ID: 1a19e07c735b
Revises: 4fb1ab22f63a
Create Date: 2026-12-07 05:16:23.587633
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1a19e07c735b"
down_revision: str | None = "4fb1ab22f63a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"
TENANT_TABLES = ("tax_rates", "subscription_tax_rates")


def upgrade() -> None:
    op.create_table(
        "tax_rates",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=50), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("jurisdiction", sa.String(length=50), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True, comment="ISO 3166-1 alpha-2."),
        sa.Column("state", sa.String(length=50), nullable=True),
        sa.Column("tax_type", sa.String(length=50), nullable=True),
        sa.Column(
            "percentage",
            sa.Numeric(precision=7, scale=4),
            nullable=False,
            comment="0 to 100, at most four decimal places (8.875).",
        ),
        sa.Column("inclusive", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
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
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("tax_rates_organization_id_active_idx", "tax_rates", ["organization_id", "active"], unique=False)
    op.create_index("tax_rates_organization_id_id_key", "tax_rates", ["organization_id", "id"], unique=True)
    op.create_index("tax_rates_organization_id_idx", "tax_rates", ["organization_id"], unique=False)
    op.create_table(
        "subscription_tax_rates",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_item_id", sa.String(length=64), nullable=True),
        sa.Column("tax_rate_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "subscription_id"],
            ["subscriptions.organization_id", "subscriptions.id"],
            name="subscription_tax_rates_organization_id_subscription_id_fkey",
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "subscription_item_id"],
            ["subscription_items.organization_id", "subscription_items.id"],
            name="subscription_tax_rates_organization_id_subscription_item_i_fkey",
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "tax_rate_id"],
            ["tax_rates.organization_id", "tax_rates.id"],
            name="subscription_tax_rates_organization_id_tax_rate_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "subscription_tax_rates_organization_id_id_key",
        "subscription_tax_rates",
        ["organization_id", "id"],
        unique=True,
    )
    op.create_index(
        "subscription_tax_rates_organization_id_idx", "subscription_tax_rates", ["organization_id"], unique=False
    )
    op.create_index(
        "subscription_tax_rates_organization_id_subscription_id_idx",
        "subscription_tax_rates",
        ["organization_id", "subscription_id"],
        unique=False,
    )
    op.add_column(
        "invoice_line_items",
        sa.Column(
            "tax_amounts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'"),
            nullable=False,
            comment="Each tax rate's tax on this line, rounded once (Stripe's tax_amounts).",
        ),
    )
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {TENANT_ROLE} "
            f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
        )


def downgrade() -> None:
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.drop_column("invoice_line_items", "tax_amounts")
    op.drop_index("subscription_tax_rates_organization_id_subscription_id_idx", table_name="subscription_tax_rates")
    op.drop_index("subscription_tax_rates_organization_id_idx", table_name="subscription_tax_rates")
    op.drop_index("subscription_tax_rates_organization_id_id_key", table_name="subscription_tax_rates")
    op.drop_table("subscription_tax_rates")
    op.drop_index("tax_rates_organization_id_idx", table_name="tax_rates")
    op.drop_index("tax_rates_organization_id_id_key", table_name="tax_rates")
    op.drop_index("tax_rates_organization_id_active_idx", table_name="tax_rates")
    op.drop_table("tax_rates")
