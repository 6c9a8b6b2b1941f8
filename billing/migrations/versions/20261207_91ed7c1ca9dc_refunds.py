"""Refunds of payments (made at the gateway, then recorded) and each payment's amount
refunded; the new table under row-level security.

Revision ID: 91ed7c1ca9dc
Revises: 620b33f8bcde
Create Date: 2026-12-07 05:51:22.644441
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "91ed7c1ca9dc"
down_revision: str | None = "620b33f8bcde"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False, comment="Minor units of `currency`."),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.String(length=32),
            nullable=False,
            comment="Stripe's: pending, requires_action, succeeded, failed or canceled.",
        ),
        sa.Column(
            "reason", sa.String(length=32), nullable=True, comment="duplicate, fraudulent or requested_by_customer."
        ),
        sa.Column("gateway_refund_id", sa.String(length=255), nullable=False),
        sa.Column("failure_reason", sa.String(length=255), nullable=True),
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
            name="refunds_organization_id_customer_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "invoice_id"],
            ["invoices.organization_id", "invoices.id"],
            name="refunds_organization_id_invoice_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "payment_id"],
            ["payments.organization_id", "payments.id"],
            name="refunds_organization_id_payment_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "refunds_organization_id_gateway_refund_id_key",
        "refunds",
        ["organization_id", "gateway_refund_id"],
        unique=True,
    )
    op.create_index("refunds_organization_id_id_key", "refunds", ["organization_id", "id"], unique=True)
    op.create_index("refunds_organization_id_idx", "refunds", ["organization_id"], unique=False)
    op.create_index(
        "refunds_organization_id_payment_id_idx", "refunds", ["organization_id", "payment_id"], unique=False
    )
    op.add_column(
        "payments",
        sa.Column(
            "amount_refunded",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Minor units refunded so far (the refunds not failed or canceled).",
        ),
    )
    op.execute("ALTER TABLE refunds ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON refunds TO {TENANT_ROLE} "
        f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON refunds")
    op.drop_column("payments", "amount_refunded")
    op.drop_index("refunds_organization_id_payment_id_idx", table_name="refunds")
    op.drop_index("refunds_organization_id_idx", table_name="refunds")
    op.drop_index("refunds_organization_id_id_key", table_name="refunds")
    op.drop_index("refunds_organization_id_gateway_refund_id_key", table_name="refunds")
    op.drop_table("refunds")
