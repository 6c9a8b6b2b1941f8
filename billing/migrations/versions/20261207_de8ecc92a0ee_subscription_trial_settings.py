"""Subscriptions keep their trial settings (what the trial's end does without a payment
method), which the renewal at the trial's end follows.

Revision ID: de8ecc92a0ee
Revises: 0a4224a0ff3f
Create Date: 2026-12-07 09:53:12.258539
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "de8ecc92a0ee"
down_revision: str | None = "0a4224a0ff3f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "subscriptions",
        sa.Column(
            "trial_settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text('\'{"endBehavior": {"missingPaymentMethod": "create_invoice"}}\''),
            nullable=False,
            comment="What the trial's end does without a payment method (Stripe's trial_settings).",
        ),
    )


def downgrade() -> None:
    op.drop_column("subscriptions", "trial_settings")
