"""Invoices record the customer's balance before and after they applied it (Stripe's
starting_balance and ending_balance).

Revision ID: 1c825798302b
Revises: 8a2054518074
Create Date: 2026-12-06 19:16:39
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1c825798302b"
down_revision: str | None = "8a2054518074"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "invoices",
        sa.Column(
            "starting_balance",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="The customer's balance (minor units, negative: credit) when the invoice was finalized.",
        ),
    )
    op.add_column(
        "invoices",
        sa.Column(
            "ending_balance",
            sa.BigInteger(),
            nullable=True,
            comment="The customer's balance after this invoice applied it; null until finalized.",
        ),
    )


def downgrade() -> None:
    op.drop_column("invoices", "ending_balance")
    op.drop_column("invoices", "starting_balance")
