"""Invoice lines keep their order: a position per line (lines made in one transaction share
their creation time, so it cannot order them).

Revision ID: 4fb1ab22f63a
Revises: a81cd0764623
Create Date: 2026-12-06 19:55:15.998307
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4fb1ab22f63a"
down_revision: str | None = "a81cd0764623"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "invoice_line_items",
        sa.Column(
            "position",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="The line's place on its invoice: 0, 1, 2, ... in the order the lines were made.",
        ),
    )


def downgrade() -> None:
    op.drop_column("invoice_line_items", "position")
