"""Invoices keep their dunning state: how many scheduled retries were made and when the
retries stopped for good (next_payment_attempt, already there, says when the next one is).

Revision ID: e43f1d5633da
Revises: 969c69b89ce8
Create Date: 2026-12-07 11:47:57.892870
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e43f1d5633da"
down_revision: str | None = "969c69b89ce8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "invoices",
        sa.Column(
            "scheduled_retries",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="How many of the dunning schedule's retries were made (a payment asked for by hand is not one).",
        ),
    )
    op.add_column(
        "invoices",
        sa.Column(
            "retries_ended_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            nullable=True,
            comment="When automatic retries stopped for good: the last one failed, or a hard decline.",
        ),
    )
    op.alter_column(
        "invoices",
        "next_payment_attempt",
        existing_type=postgresql.TIMESTAMP(timezone=True, precision=3),
        comment="When the dunning schedule retries the payment next; null when no retry is scheduled.",
        existing_nullable=True,
    )


def downgrade() -> None:
    op.alter_column(
        "invoices",
        "next_payment_attempt",
        existing_type=postgresql.TIMESTAMP(timezone=True, precision=3),
        comment=None,
        existing_comment="When the dunning schedule retries the payment next; null when no retry is scheduled.",
        existing_nullable=True,
    )
    op.drop_column("invoices", "retries_ended_at")
    op.drop_column("invoices", "scheduled_retries")
