"""Payments: one row per attempt to collect an invoice, under row-level security.

Revision ID: 2bf0be227041
Revises: 1c825798302b
Create Date: 2026-12-06 19:33:46.881618
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2bf0be227041"
down_revision: str | None = "1c825798302b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("payment_method_id", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False, comment="Minor units of `currency`."),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "processing", "requires_action", "succeeded", "failed", name="PaymentStatus"),
            server_default=sa.text("'pending'"),
            nullable=False,
        ),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("gateway_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("failure_code", sa.String(length=100), nullable=True),
        sa.Column("decline_code", sa.String(length=100), nullable=True),
        sa.Column("failure_message", sa.String(length=1000), nullable=True),
        sa.Column(
            "next_action_url",
            sa.String(length=2048),
            nullable=True,
            comment="Where the customer authenticates when the status is requires_action.",
        ),
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
            name="payments_organization_id_customer_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "invoice_id"],
            ["invoices.organization_id", "invoices.id"],
            name="payments_organization_id_invoice_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "payment_method_id"],
            ["customer_payment_methods.organization_id", "customer_payment_methods.id"],
            name="payments_organization_id_payment_method_id_fkey",
            onupdate="CASCADE",
            ondelete="SET NULL (payment_method_id)",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("payments_invoice_id_attempt_number_key", "payments", ["invoice_id", "attempt_number"], unique=True)
    op.create_index(
        "payments_organization_id_gateway_payment_intent_id_idx",
        "payments",
        ["organization_id", "gateway_payment_intent_id"],
        unique=False,
    )
    op.create_index("payments_organization_id_id_key", "payments", ["organization_id", "id"], unique=True)
    op.create_index(
        "payments_organization_id_idempotency_key_key", "payments", ["organization_id", "idempotency_key"], unique=True
    )
    op.create_index("payments_organization_id_idx", "payments", ["organization_id"], unique=False)
    op.execute("ALTER TABLE payments ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON payments TO {TENANT_ROLE} "
        f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON payments")
    op.drop_index("payments_organization_id_idx", table_name="payments")
    op.drop_index("payments_organization_id_idempotency_key_key", table_name="payments")
    op.drop_index("payments_organization_id_id_key", table_name="payments")
    op.drop_index("payments_organization_id_gateway_payment_intent_id_idx", table_name="payments")
    op.drop_index("payments_invoice_id_attempt_number_key", table_name="payments")
    op.drop_table("payments")
    sa.Enum(name="PaymentStatus").drop(op.get_bind(), checkfirst=True)
