"""Subscription schedules: a schedule's collection settings (Stripe's default_settings) and
the subscription it released; a phase's currency and default payment method.

Revision ID: f4f8d3b49ab2
Revises: e43f1d5633da
Create Date: 2026-12-07 11:40:39.354530
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f4f8d3b49ab2"
down_revision: str | None = "e43f1d5633da"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "subscription_schedule_phases",
        sa.Column(
            "currency",
            sa.String(length=3),
            nullable=True,
            comment="The subscription's currency, set on the first phase (default: the customer's, else the first price's).",
        ),
    )
    op.add_column(
        "subscription_schedule_phases",
        sa.Column(
            "default_payment_method_id",
            sa.String(length=64),
            nullable=True,
            comment="Set on the subscription when the phase starts.",
        ),
    )
    op.add_column(
        "subscription_schedules",
        sa.Column(
            "collection_method",
            sa.Enum("charge_automatically", "send_invoice", name="CollectionMethod"),
            server_default=sa.text("'charge_automatically'"),
            nullable=False,
            comment="Stripe's default_settings: how the schedule's subscription collects its invoices.",
        ),
    )
    op.add_column("subscription_schedules", sa.Column("days_until_due", sa.Integer(), nullable=True))
    op.add_column(
        "subscription_schedules",
        sa.Column(
            "released_subscription_id",
            sa.String(length=64),
            nullable=True,
            comment="The subscription the schedule let go of (released by request or at its end).",
        ),
    )


def downgrade() -> None:
    op.drop_column("subscription_schedules", "released_subscription_id")
    op.drop_column("subscription_schedules", "days_until_due")
    op.drop_column("subscription_schedules", "collection_method")
    op.drop_column("subscription_schedule_phases", "default_payment_method_id")
    op.drop_column("subscription_schedule_phases", "currency")
