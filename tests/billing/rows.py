"""Rows for tests written in raw SQL: a sample value of any column's type, and rows of
any table with only their required columns, each required reference to a new row of the
same organization (so foreign keys hold)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from sqlalchemy import JSON, Boolean, Column, Enum, ForeignKeyConstraint, Integer, Numeric, String, Table, Uuid
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

TENANT = "organization_id"


def tenant_owned(table: Table) -> bool:
    return TENANT in table.columns


def reference_column(key: ForeignKeyConstraint) -> str:
    (column,) = [c for c in key.column_keys if c != TENANT]
    return column


def sample_value(column: Column[object]) -> object:
    """Any value the column accepts; strings are random so unique indexes never collide."""
    kind = column.type
    if isinstance(kind, Enum):
        return kind.enums[0]
    if isinstance(kind, String):
        return uuid.uuid4().hex[: kind.length or 32]
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):  # BigInteger and SmallInteger too
        return 1
    if isinstance(kind, Numeric):
        return Decimal(1)
    if isinstance(kind, TIMESTAMP):
        return datetime.now(UTC)
    if isinstance(kind, JSONB | JSON):
        return "[]"
    if isinstance(kind, Uuid):
        return str(uuid.uuid4())
    raise AssertionError(f"{column}: no sample value for {kind!r}")


class Rows:
    """Inserts rows with raw SQL: the required columns only, every required reference to a
    new row of the same organization."""

    def __init__(self, connection: asyncpg.Connection, tables: dict[str, Table]) -> None:
        self.connection = connection
        self.tables = tables

    async def organization(self) -> str:
        return await self.insert(self.tables["organizations"], {})

    async def insert(self, table: Table, values: dict[str, object], organization: str | None = None) -> str:
        row = dict(values)
        if organization is not None:
            row.setdefault(TENANT, organization)
            for key in table.foreign_key_constraints:
                if not tenant_owned(key.referred_table):
                    continue
                column = reference_column(key)
                if column not in row and not table.columns[column].nullable:
                    row[column] = await self.insert(key.referred_table, {}, organization)
        for column in table.columns:
            if (
                column.name in row
                or column.nullable
                or column.server_default is not None
                or column.autoincrement is True
            ):
                continue
            row[column.name] = sample_value(column)
        names = ", ".join(f'"{name}"' for name in row)
        (key,) = [column.name for column in table.primary_key]  # the new row's id
        placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
        return await self.connection.fetchval(
            f'insert into "{table.name}" ({names}) values ({placeholders}) returning "{key}"', *row.values()
        )
