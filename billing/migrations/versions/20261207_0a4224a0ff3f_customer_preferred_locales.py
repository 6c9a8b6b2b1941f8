"""Customers' preferred locales (Stripe's preferred_locales), which set the language of
their invoice PDFs' amounts and dates.

Revision ID: 0a4224a0ff3f
Revises: 3c0a7570a9e9
Create Date: 2026-12-07 09:27:47.368845
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0a4224a0ff3f"
down_revision: str | None = "3c0a7570a9e9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "customers",
        sa.Column(
            "preferred_locales",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'"),
            nullable=False,
            comment='Stripe\'s preferred_locales: language tags in order of preference ("de-DE", "fr");\nthe first one the invoice PDF can print sets its amounts and dates.',
        ),
    )


def downgrade() -> None:
    op.drop_column("customers", "preferred_locales")
