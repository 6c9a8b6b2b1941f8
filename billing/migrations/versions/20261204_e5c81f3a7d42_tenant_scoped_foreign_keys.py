"""Tenant-scoped foreign keys: the database refuses a reference across organizations.

Every key between tenant-owned rows becomes (organization_id, x_id) -> (organization_id, id),
so a row can only point at a row of its own organization, whatever the SQL says (row-level
security does not stop it: Postgres checks foreign keys past the policies). Each referenced
table gains the unique index (organization_id, id) such a key needs. The one-to-one
subscription_schedules.subscription_id unique index becomes (organization_id,
subscription_id): Prisma wants the relation's own fields unique, and with the key in place
it admits the same rows (a subscription id belongs to one organization).

ON DELETE SET NULL names its column (Postgres 15): a plain SET NULL would null
organization_id too, which is NOT NULL.

Revision ID: e5c81f3a7d42
Revises: b41d7e9c2a63
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence
from typing import NamedTuple

from alembic import op

revision: str = "e5c81f3a7d42"
down_revision: str | None = "b41d7e9c2a63"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCED_TABLES = (
    "customer_payment_methods",
    "customers",
    "invoices",
    "meters",
    "prices",
    "products",
    "subscription_items",
    "subscription_schedules",
    "subscriptions",
)


class Key(NamedTuple):
    table: str
    column: str
    target: str
    on_delete: str

    @property
    def old_name(self) -> str:
        return f"{self.table}_{self.column}_fkey"

    @property
    def new_name(self) -> str:
        # Prisma's name for the key, trimmed to Postgres' 63 characters as the generator does
        return f"{self.table}_organization_id_{self.column}"[:58] + "_fkey"


KEYS = (
    Key("customers", "default_payment_method_id", "customer_payment_methods", "SET NULL"),
    Key("customer_payment_methods", "customer_id", "customers", "CASCADE"),
    Key("prices", "product_id", "products", "RESTRICT"),
    Key("prices", "meter_id", "meters", "RESTRICT"),
    Key("subscriptions", "customer_id", "customers", "RESTRICT"),
    Key("subscription_items", "subscription_id", "subscriptions", "CASCADE"),
    Key("subscription_items", "price_id", "prices", "RESTRICT"),
    Key("subscription_schedules", "customer_id", "customers", "RESTRICT"),
    Key("subscription_schedules", "subscription_id", "subscriptions", "SET NULL"),
    Key("subscription_schedule_phases", "schedule_id", "subscription_schedules", "CASCADE"),
    Key("invoices", "customer_id", "customers", "RESTRICT"),
    Key("invoices", "subscription_id", "subscriptions", "SET NULL"),
    Key("invoice_line_items", "invoice_id", "invoices", "CASCADE"),
    Key("invoice_line_items", "subscription_item_id", "subscription_items", "SET NULL"),
    Key("invoice_line_items", "price_id", "prices", "SET NULL"),
)


def upgrade() -> None:
    for table in REFERENCED_TABLES:
        op.create_index(f"{table}_organization_id_id_key", table, ["organization_id", "id"], unique=True)
    op.drop_index("subscription_schedules_subscription_id_key", table_name="subscription_schedules")
    op.create_index(
        "subscription_schedules_organization_id_subscription_id_key",
        "subscription_schedules",
        ["organization_id", "subscription_id"],
        unique=True,
    )
    for key in KEYS:
        op.drop_constraint(key.old_name, key.table, type_="foreignkey")
        on_delete = f"SET NULL ({key.column})" if key.on_delete == "SET NULL" else key.on_delete
        op.create_foreign_key(
            key.new_name,
            key.table,
            key.target,
            ["organization_id", key.column],
            ["organization_id", "id"],
            ondelete=on_delete,
            onupdate="CASCADE",
        )


def downgrade() -> None:
    for key in KEYS:
        op.drop_constraint(key.new_name, key.table, type_="foreignkey")
        op.create_foreign_key(
            key.old_name, key.table, key.target, [key.column], ["id"], ondelete=key.on_delete, onupdate="CASCADE"
        )
    op.drop_index("subscription_schedules_organization_id_subscription_id_key", table_name="subscription_schedules")
    op.create_index(
        "subscription_schedules_subscription_id_key", "subscription_schedules", ["subscription_id"], unique=True
    )
    for table in REFERENCED_TABLES:
        op.drop_index(f"{table}_organization_id_id_key", table_name=table)
