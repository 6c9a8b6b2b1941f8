"""Organizations' plan change rules (read and written by their tenant role: a column
grant, like the Stripe account's) and subscriptions' scheduled changes (a change the
rules deferred to the period's end).

Revision ID: 8fd593cac2b4
Revises: de8ecc92a0ee
Create Date: 2026-12-07 09:59:28.874423
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8fd593cac2b4"
down_revision: str | None = "de8ecc92a0ee"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"


def upgrade() -> None:
    op.add_column(
        "organizations",
        sa.Column(
            "change_rules",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text(
                '\'{"lateral": {"timing": "immediately", "prorationBehavior": null}, "upgrade": {"timing": "immediately", "prorationBehavior": null}, "downgrade": {"timing": "immediately", "prorationBehavior": null}, "creditProducts": []}\''
            ),
            nullable=False,
            comment="When plan changes take effect, by direction (GET/PATCH /v1/billing-settings).",
        ),
    )
    op.add_column(
        "subscriptions",
        sa.Column(
            "scheduled_change",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            nullable=True,
            comment="A plan change the organization's rules deferred to the period's end; the renewal applies it.",
        ),
    )
    # the organizations table is granted column by column to the tenant role
    op.execute(f"GRANT SELECT (change_rules), UPDATE (change_rules) ON organizations TO {TENANT_ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT (change_rules), UPDATE (change_rules) ON organizations FROM {TENANT_ROLE}")
    op.drop_column("subscriptions", "scheduled_change")
    op.drop_column("organizations", "change_rules")
