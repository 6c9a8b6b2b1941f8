"""Invoice number counters: one gapless sequence per organization or per customer.

A tenant-owned table under the same row-level security as the others (the finalizing
command runs as the tenant role).

Revision ID: 8a2054518074
Revises: 0c9a4e2f6b18
Create Date: 2026-12-06 19:11:54
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8a2054518074"
down_revision: str | None = "0c9a4e2f6b18"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"


def upgrade() -> None:
    op.create_table(
        "invoice_number_counters",
        sa.Column("id", sa.UUID(as_uuid=False), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "invoice_number_counters_organization_id_scope_key",
        "invoice_number_counters",
        ["organization_id", "scope"],
        unique=True,
    )
    op.execute("ALTER TABLE invoice_number_counters ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON invoice_number_counters TO {TENANT_ROLE} "
        f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON invoice_number_counters")
    op.drop_index("invoice_number_counters_organization_id_scope_key", table_name="invoice_number_counters")
    op.drop_table("invoice_number_counters")
