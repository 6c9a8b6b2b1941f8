"""Subscription items keep the order they were given in: a position per item (items made in
one transaction share their creation time, so it cannot order them). Existing items are
numbered in their creation order.

Revision ID: 620b33f8bcde
Revises: 1a19e07c735b
Create Date: 2026-12-07 05:42:35.696989
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "620b33f8bcde"
down_revision: str | None = "1a19e07c735b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "subscription_items",
        sa.Column(
            "position",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Its place on the subscription: the order the items were given in, an added one last.",
        ),
    )
    op.execute(
        "UPDATE subscription_items AS item SET position = numbered.position FROM ("
        " SELECT id, row_number() OVER (PARTITION BY subscription_id ORDER BY created_at, id) - 1 AS position"
        " FROM subscription_items) AS numbered WHERE item.id = numbered.id"
    )


def downgrade() -> None:
    op.drop_column("subscription_items", "position")
