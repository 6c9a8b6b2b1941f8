"""Optional Json columns hold SQL NULL for "no value", as Prisma reads and writes them.

SQLAlchemy's JSONB stored Python None as the JSON value 'null'; Prisma's Client means SQL
NULL by an absent optional Json (`Prisma.DbNull`) and finds no 'null' row with it. The models
now say `JSONB(none_as_null=True)`; this turns the rows written before into SQL NULL.

Downgrade leaves the rows alone: the earlier code reads SQL NULL as None too.

Revision ID: 0c9a4e2f6b18
Revises: e5c81f3a7d42
Create Date: 2026-12-05 12:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0c9a4e2f6b18"
down_revision: str | None = "e5c81f3a7d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# every optional (Json?) column of prisma/schema.prisma at this revision
OPTIONAL_JSON_COLUMNS = (
    ("customers", "address"),
    ("customers", "shipping"),
    ("product_attribute_definitions", "enum_values"),
    ("product_attribute_definitions", "default_value"),
    ("prices", "tiers"),
    ("prices", "transform_quantity"),
    ("subscriptions", "pause_collection"),
    ("processed_commands", "result"),
    ("processed_commands", "error"),
)


def upgrade() -> None:
    for table, column in OPTIONAL_JSON_COLUMNS:
        op.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} = 'null'::jsonb")


def downgrade() -> None:
    pass
