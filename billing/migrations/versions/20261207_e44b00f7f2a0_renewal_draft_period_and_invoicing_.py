"""When a renewal's draft invoice is finalized (the scheduler's drafts to finalize, by
status and time) and the organizations' invoicing settings (read and written by their
tenant role: a column grant, like the dunning settings).

Revision ID: e44b00f7f2a0
Revises: f4f8d3b49ab2
Create Date: 2026-12-07 15:17:33.843450
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e44b00f7f2a0"
down_revision: str | None = "f4f8d3b49ab2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"


def upgrade() -> None:
    op.add_column(
        "invoices",
        sa.Column(
            "automatically_finalizes_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            nullable=True,
            comment="When the scheduler finalizes this draft (a renewal's, after the organization's draft period); null: finalized by hand.",
        ),
    )
    op.create_index(
        "invoices_status_automatically_finalizes_at_idx",
        "invoices",
        ["status", "automatically_finalizes_at"],
        unique=False,
    )
    op.add_column(
        "organizations",
        sa.Column(
            "invoicing",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{\"renewalDraftMinutes\": 60}'"),
            nullable=False,
            comment="How long a renewal's invoice stays a draft before it is finalized and charged (GET/PATCH /v1/billing-settings).",
        ),
    )
    op.execute(f"GRANT SELECT (invoicing), UPDATE (invoicing) ON organizations TO {TENANT_ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT (invoicing), UPDATE (invoicing) ON organizations FROM {TENANT_ROLE}")
    op.drop_column("organizations", "invoicing")
    op.drop_index("invoices_status_automatically_finalizes_at_idx", table_name="invoices")
    op.drop_column("invoices", "automatically_finalizes_at")
