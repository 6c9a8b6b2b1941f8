"""Test clocks (a frozen time for the customers created on them; under row-level
security), each customer's test clock, the test clock a scheduled command's work fell due
by, and the organizations' dunning settings (read and written by their tenant role: a
column grant, like the change rules).

Revision ID: 969c69b89ce8
Revises: 2c42c173e82f
Create Date: 2026-12-07 11:40:22.320299
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "969c69b89ce8"
down_revision: str | None = "2c42c173e82f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"


def upgrade() -> None:
    op.create_table(
        "test_clocks",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column(
            "frozen_time",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            nullable=False,
            comment="The clock's time: its customers' \"now\".",
        ),
        sa.Column(
            "status",
            sa.Enum("ready", "advancing", "internal_failure", name="TestClockStatus"),
            server_default=sa.text("'ready'"),
            nullable=False,
        ),
        sa.Column(
            "advancing_to",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            nullable=True,
            comment="While advancing, the time the clock is moving to.",
        ),
        sa.Column(
            "deletes_after",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            nullable=False,
            comment="When the clock and its customers are deleted by themselves (30 days after creation).",
        ),
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
    op.create_index("test_clocks_organization_id_id_key", "test_clocks", ["organization_id", "id"], unique=True)
    op.create_index("test_clocks_organization_id_idx", "test_clocks", ["organization_id"], unique=False)
    op.create_index("test_clocks_status_idx", "test_clocks", ["status"], unique=False)
    op.add_column(
        "customers",
        sa.Column(
            "test_clock_id",
            sa.String(length=64),
            nullable=True,
            comment='The test clock whose time is this customer\'s "now" (set at creation, test mode only).',
        ),
    )
    op.create_index("customers_test_clock_id_idx", "customers", ["test_clock_id"], unique=False)
    op.create_foreign_key(
        "customers_organization_id_test_clock_id_fkey",
        "customers",
        "test_clocks",
        ["organization_id", "test_clock_id"],
        ["organization_id", "id"],
        onupdate="CASCADE",
        ondelete="RESTRICT",
    )
    op.add_column(
        "organizations",
        sa.Column(
            "dunning",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text(
                '\'{"retryAfterDays": [1, 3, 5, 7], "invoiceAfterLastRetry": "open", "subscriptionAfterLastRetry": "canceled"}\''
            ),
            nullable=False,
            comment="What a failed subscription payment does next (GET/PATCH /v1/billing-settings).",
        ),
    )
    op.add_column(
        "scheduled_commands",
        sa.Column(
            "test_clock_id",
            sa.String(length=64),
            nullable=True,
            comment="The test clock whose time the work fell due by; an advancing clock waits for it.",
        ),
    )
    op.create_index("scheduled_commands_test_clock_id_idx", "scheduled_commands", ["test_clock_id"], unique=False)
    op.execute("ALTER TABLE test_clocks ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON test_clocks TO {TENANT_ROLE} "
        f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
    )
    op.execute(f"GRANT SELECT (dunning), UPDATE (dunning) ON organizations TO {TENANT_ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT (dunning), UPDATE (dunning) ON organizations FROM {TENANT_ROLE}")
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON test_clocks")
    op.drop_index("scheduled_commands_test_clock_id_idx", table_name="scheduled_commands")
    op.drop_column("scheduled_commands", "test_clock_id")
    op.drop_column("organizations", "dunning")
    op.drop_constraint("customers_organization_id_test_clock_id_fkey", "customers", type_="foreignkey")
    op.drop_index("customers_test_clock_id_idx", table_name="customers")
    op.drop_column("customers", "test_clock_id")
    op.drop_index("test_clocks_status_idx", table_name="test_clocks")
    op.drop_index("test_clocks_organization_id_idx", table_name="test_clocks")
    op.drop_index("test_clocks_organization_id_id_key", table_name="test_clocks")
    op.drop_table("test_clocks")
    op.execute('DROP TYPE IF EXISTS "TestClockStatus"')
