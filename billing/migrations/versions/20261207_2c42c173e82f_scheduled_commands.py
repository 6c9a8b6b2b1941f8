"""Scheduled commands: the scheduler's claim on each unit of due work (one row per
deterministic command id), and one invoice per subscription period and billing reason.

Revision ID: 2c42c173e82f
Revises: 8fd593cac2b4
Create Date: 2026-12-07 11:20:15.263884
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2c42c173e82f"
down_revision: str | None = "8fd593cac2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"


def upgrade() -> None:
    op.create_table(
        "scheduled_commands",
        sa.Column("command_id", sa.String(length=255), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column(
            "subject_id",
            sa.String(length=64),
            nullable=False,
            comment="The object the work is due on (a subscription).",
        ),
        sa.Column(
            "due_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            nullable=False,
            comment="When the work fell due, by the clock of the subject's customer.",
        ),
        sa.Column(
            "published_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("command_id"),
    )
    op.create_index("scheduled_commands_organization_id_idx", "scheduled_commands", ["organization_id"], unique=False)
    op.create_index(
        "scheduled_commands_subject_id_type_due_at_idx",
        "scheduled_commands",
        ["subject_id", "type", "due_at"],
        unique=False,
    )
    op.create_index(
        "invoices_subscription_id_period_start_period_end_billing_re_key",
        "invoices",
        ["subscription_id", "period_start", "period_end", "billing_reason"],
        unique=True,
    )
    op.execute("ALTER TABLE scheduled_commands ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON scheduled_commands TO {TENANT_ROLE} "
        f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON scheduled_commands")
    op.drop_index("invoices_subscription_id_period_start_period_end_billing_re_key", table_name="invoices")
    op.drop_index("scheduled_commands_subject_id_type_due_at_idx", table_name="scheduled_commands")
    op.drop_index("scheduled_commands_organization_id_idx", table_name="scheduled_commands")
    op.drop_table("scheduled_commands")
