"""Prisma's DMMF, SQLAlchemy's metadata and the migrated database describe the same tables.

The expectations are read from the DMMF that Prisma handed the generator (kept current by
tests/prisma/test_generator.py) and checked, independently of the generator's code, against
the SQLAlchemy models and against the live Postgres catalog after `alembic upgrade head`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy import ForeignKeyConstraint, Table
from sqlalchemy.dialects import postgresql

from billing.db.migrate import pending_model_changes
from billing.models import Base
from contracts.settings import PROJECT_ROOT
from tests.conftest import asyncpg_dsn

DMMF = json.loads((PROJECT_ROOT / "prisma" / "generated" / "dmmf.json").read_text())
ENUM_DB_NAMES = {e["name"]: e.get("dbName") or e["name"] for e in DMMF["enums"]}
ON_DELETE = {
    "Cascade": "CASCADE",
    "Restrict": "RESTRICT",
    "SetNull": "SET NULL",
    "NoAction": "NO ACTION",
    "SetDefault": "SET DEFAULT",
}


@dataclass(frozen=True)
class ColumnShape:
    type: str
    nullable: bool
    default: str | None


@dataclass(frozen=True)
class ForeignKeyShape:
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    on_delete: str


@dataclass(frozen=True)
class IndexShape:
    columns: tuple[str, ...]
    unique: bool


@dataclass
class TableShape:
    columns: dict[str, ColumnShape]
    primary_key: tuple[str, ...]
    foreign_keys: set[ForeignKeyShape]
    indexes: set[IndexShape]


# ---------------------------------------------------------------- from the DMMF


def _prisma_type(field: dict) -> str:
    if field["kind"] == "enum":
        return f'"{ENUM_DB_NAMES[field["type"]]}"'
    native = field.get("nativeType") or [None, []]
    name, args = native[0], native[1]
    scalar = field["type"]
    if scalar == "String":
        return {
            "VarChar": f"character varying({','.join(args)})",
            "Uuid": "uuid",
            "Char": f"character({','.join(args)})",
        }.get(name, "text")
    if scalar == "DateTime":
        precision = args[0] if args else "3"
        return (
            f"timestamp({precision}) with time zone"
            if name == "Timestamptz"
            else f"timestamp({precision}) without time zone"
        )
    if scalar == "Decimal":
        return f"numeric({','.join(args or ['65', '30'])})"
    return {"Int": "integer", "BigInt": "bigint", "Boolean": "boolean", "Json": "jsonb", "Float": "double precision"}[
        scalar
    ]


def _prisma_default(field: dict) -> str | None:
    if not field.get("hasDefaultValue"):
        return None
    value = field["default"]
    if isinstance(value, dict):
        return {"now": "CURRENT_TIMESTAMP", "autoincrement": "autoincrement"}.get(value["name"])
    if isinstance(value, bool):
        return str(value).lower()
    if field["type"] in {"Int", "BigInt", "Decimal", "Float"}:
        return str(value)
    return "'" + str(value) + "'"


def _prisma_on_delete(model: dict, relation: dict, column_of: dict[str, str]) -> str:
    action = ON_DELETE[relation["relationOnDelete"]]
    fields = {f["name"]: f for f in model["fields"]}
    optional = [column_of[c] for c in relation["relationFromFields"] if not fields[c]["isRequired"]]
    if action == "SET NULL" and len(optional) < len(relation["relationFromFields"]):
        # a tenant-scoped key nulls its reference, never the required organization_id
        return f"SET NULL ({', '.join(optional)})"
    return action


def dmmf_shapes() -> dict[str, TableShape]:
    models = {m["name"]: m for m in DMMF["models"]}
    shapes: dict[str, TableShape] = {}
    for model in DMMF["models"]:
        column_of = {f["name"]: f.get("dbName") or f["name"] for f in model["fields"] if f["kind"] != "object"}
        columns = {
            column_of[f["name"]]: ColumnShape(_prisma_type(f), not f["isRequired"], _prisma_default(f))
            for f in model["fields"]
            if f["kind"] != "object"
        }
        foreign_keys = set()
        for f in model["fields"]:
            if f["kind"] == "object" and f.get("relationFromFields"):
                target = models[f["type"]]
                target_column_of = {t["name"]: t.get("dbName") or t["name"] for t in target["fields"]}
                foreign_keys.add(
                    ForeignKeyShape(
                        tuple(column_of[c] for c in f["relationFromFields"]),
                        target.get("dbName") or target["name"],
                        tuple(target_column_of[c] for c in f["relationToFields"]),
                        _prisma_on_delete(model, f, column_of),
                    )
                )
        indexes = {
            IndexShape(tuple(column_of[i["name"]] for i in index["fields"]), index["type"] == "unique")
            for index in DMMF["indexes"]
            if index["model"] == model["name"] and index["type"] in {"unique", "normal"}
        }
        primary_key = tuple(column_of[f["name"]] for f in model["fields"] if f.get("isId"))
        shapes[model.get("dbName") or model["name"]] = TableShape(columns, primary_key, foreign_keys, indexes)
    return shapes


# ---------------------------------------------------------------- from SQLAlchemy


SQLALCHEMY_TYPE_NAMES = [
    (r"^VARCHAR\((\d+)\)$", r"character varying(\1)"),
    (r"^CHAR\((\d+)\)$", r"character(\1)"),
    (r"^TEXT$", "text"),
    (r"^UUID$", "uuid"),
    (r"^INTEGER$", "integer"),
    (r"^BIGINT$", "bigint"),
    (r"^BOOLEAN$", "boolean"),
    (r"^JSONB$", "jsonb"),
    (r"^DOUBLE PRECISION$", "double precision"),
    (r"^NUMERIC\((\d+), (\d+)\)$", r"numeric(\1,\2)"),
    (r"^TIMESTAMP\((\d+)\) WITH TIME ZONE$", r"timestamp(\1) with time zone"),
    (r"^TIMESTAMP\((\d+)\) WITHOUT TIME ZONE$", r"timestamp(\1) without time zone"),
]


def _sqlalchemy_type(column: object) -> str:
    compiled = column.type.compile(dialect=postgresql.dialect())
    if compiled.startswith('"'):
        return compiled
    for pattern, replacement in SQLALCHEMY_TYPE_NAMES:
        if re.match(pattern, compiled):
            return re.sub(pattern, replacement, compiled)
    raise AssertionError(f"{column}: unexpected type {compiled}")


def _sqlalchemy_default(column: object) -> str | None:
    if column.autoincrement is True:
        return "autoincrement"
    if column.server_default is None:
        return None
    return str(column.server_default.arg.text)


def sqlalchemy_shapes() -> dict[str, TableShape]:
    shapes = {}
    for table in Base.metadata.tables.values():
        assert isinstance(table, Table)
        columns = {
            c.name: ColumnShape(_sqlalchemy_type(c), bool(c.nullable), _sqlalchemy_default(c)) for c in table.columns
        }
        foreign_keys = {
            ForeignKeyShape(
                tuple(c.name for c in fk.columns),
                fk.elements[0].column.table.name,
                tuple(e.column.name for e in fk.elements),
                fk.ondelete,
            )
            for fk in table.constraints
            if isinstance(fk, ForeignKeyConstraint)
        }
        indexes = {IndexShape(tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes}
        primary_key = tuple(c.name for c in table.primary_key.columns)
        shapes[table.name] = TableShape(columns, primary_key, foreign_keys, indexes)
    return shapes


# ---------------------------------------------------------------- from the live catalog


LIVE_COLUMNS = """
select c.relname as table, a.attname as column, format_type(a.atttypid, a.atttypmod) as type,
       not a.attnotnull as nullable, pg_get_expr(d.adbin, d.adrelid) as default
from pg_attribute a
join pg_class c on c.oid = a.attrelid and c.relkind = 'r'
join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attnum > 0 and not a.attisdropped and c.relname <> 'alembic_version'
"""

LIVE_CONSTRAINTS = """
select c.relname as table, con.contype::text as kind, con.conname as name,
       array(select a.attname from unnest(con.conkey) with ordinality k(n, i)
             join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n order by k.i) as columns,
       t.relname as target,
       array(select a.attname from unnest(con.confkey) with ordinality k(n, i)
             join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n order by k.i) as target_columns,
       con.confdeltype::text as on_delete,
       array(select a.attname from unnest(con.confdelsetcols) with ordinality k(n, i)
             join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n order by k.i) as set_columns
from pg_constraint con
join pg_class c on c.oid = con.conrelid
join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
left join pg_class t on t.oid = con.confrelid
where con.contype in ('p', 'f') and c.relname <> 'alembic_version'
"""

LIVE_INDEXES = """
select t.relname as table, i.relname as name, ix.indisunique as unique, ix.indisprimary as primary,
       array(select a.attname from unnest(ix.indkey) with ordinality k(n, o)
             join pg_attribute a on a.attrelid = t.oid and a.attnum = k.n order by k.o) as columns,
       pg_get_indexdef(ix.indexrelid) as definition
from pg_index ix
join pg_class i on i.oid = ix.indexrelid
join pg_class t on t.oid = ix.indrelid
join pg_namespace n on n.oid = t.relnamespace and n.nspname = 'public'
where t.relname <> 'alembic_version'
"""

CONFDELTYPE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def _live_default(expression: str | None) -> str | None:
    if expression is None:
        return None
    if expression.startswith("nextval("):
        return "autoincrement"
    # Postgres shows a literal with its cast: 'usd'::character varying, '{}'::jsonb
    return re.sub(r"::[\w \"]+(\(\d+\))?$", "", expression)


async def live_shapes(database_url: str) -> tuple[dict[str, TableShape], list[asyncpg.Record]]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        columns = await connection.fetch(LIVE_COLUMNS)
        constraints = await connection.fetch(LIVE_CONSTRAINTS)
        indexes = await connection.fetch(LIVE_INDEXES)
    finally:
        await connection.close()
    shapes: dict[str, TableShape] = {}
    for row in columns:
        shape = shapes.setdefault(row["table"], TableShape({}, (), set(), set()))
        shape.columns[row["column"]] = ColumnShape(row["type"], row["nullable"], _live_default(row["default"]))
    for row in constraints:
        shape = shapes[row["table"]]
        if row["kind"] == "p":
            shape.primary_key = tuple(row["columns"])
        else:
            on_delete = CONFDELTYPE[row["on_delete"]]
            if row["set_columns"]:
                on_delete += f" ({', '.join(row['set_columns'])})"
            shape.foreign_keys.add(
                ForeignKeyShape(tuple(row["columns"]), row["target"], tuple(row["target_columns"]), on_delete)
            )
    for row in indexes:
        if not row["primary"]:
            shapes[row["table"]].indexes.add(IndexShape(tuple(row["columns"]), row["unique"]))
    return shapes, indexes


def _compare(expected: dict[str, TableShape], actual: dict[str, TableShape], what: str) -> list[str]:
    problems = []
    if set(expected) != set(actual):
        problems.append(
            f"{what}: tables differ: missing {set(expected) - set(actual)}, extra {set(actual) - set(expected)}"
        )
    for table in sorted(set(expected) & set(actual)):
        want, got = expected[table], actual[table]
        for column in sorted(set(want.columns) | set(got.columns)):
            if want.columns.get(column) != got.columns.get(column):
                problems.append(
                    f"{what}: {table}.{column}: expected {want.columns.get(column)}, got {got.columns.get(column)}"
                )
        if want.primary_key != got.primary_key:
            problems.append(f"{what}: {table} primary key: expected {want.primary_key}, got {got.primary_key}")
        if want.foreign_keys != got.foreign_keys:
            problems.append(f"{what}: {table} foreign keys: expected {want.foreign_keys}, got {got.foreign_keys}")
        if want.indexes != got.indexes:
            problems.append(f"{what}: {table} indexes: expected {want.indexes}, got {got.indexes}")
    return problems


@pytest.mark.unit
def test_sqlalchemy_metadata_agrees_with_prismas_dmmf() -> None:
    assert _compare(dmmf_shapes(), sqlalchemy_shapes(), "SQLAlchemy") == []


@pytest.mark.unit
def test_sqlalchemy_enums_have_prismas_names_and_values() -> None:
    enums = {}
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if hasattr(column.type, "enums") and getattr(column.type, "name", None):
                enums[column.type.name] = tuple(column.type.enums)
    expected = {ENUM_DB_NAMES[e["name"]]: tuple(v["name"] for v in e["values"]) for e in DMMF["enums"]}
    assert enums == expected


@pytest.mark.unit
def test_every_tenant_owned_table_has_an_indexed_organization_id() -> None:
    tenant_free = {"organizations", "exchange_rates"}
    for table in Base.metadata.tables.values():
        if table.name in tenant_free:
            continue
        assert "organization_id" in table.columns, f"{table.name} has no organization_id"
        assert not table.columns["organization_id"].nullable, table.name
        assert any(i.columns.keys()[0] == "organization_id" for i in table.indexes), (
            f"{table.name}: no index leads with organization_id"
        )


@pytest.mark.unit
def test_the_comparison_catches_a_drifted_column() -> None:
    """The checks above can fail: a changed precision is reported."""
    expected = dmmf_shapes()
    drifted = sqlalchemy_shapes()
    unit = drifted["prices"].columns["unit_amount_decimal"]
    drifted["prices"].columns["unit_amount_decimal"] = ColumnShape("numeric(30,10)", unit.nullable, unit.default)
    problems = _compare(expected, drifted, "SQLAlchemy")
    assert len(problems) == 1 and "prices.unit_amount_decimal" in problems[0]


async def test_after_upgrade_autogenerate_finds_nothing(database_url: str) -> None:
    assert await pending_model_changes(database_url) == []


async def test_live_catalog_agrees_with_prismas_dmmf_and_sqlalchemy(database_url: str) -> None:
    live, index_rows = await live_shapes(database_url)
    assert _compare(dmmf_shapes(), live, "Postgres") == []

    named_in_models = {i.name for t in Base.metadata.tables.values() for i in t.indexes}
    named_live = {row["name"] for row in index_rows if not row["primary"]}
    assert named_in_models == named_live
    gin = next(row["definition"] for row in index_rows if row["name"] == "products_attributes_idx")
    assert "USING gin (attributes jsonb_path_ops)" in gin


async def test_live_enums_have_prismas_names_and_values(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "select t.typname, array_agg(e.enumlabel order by e.enumsortorder) as labels "
            "from pg_type t join pg_enum e on e.enumtypid = t.oid group by t.typname"
        )
    finally:
        await connection.close()
    assert {r["typname"]: tuple(r["labels"]) for r in rows} == {
        ENUM_DB_NAMES[e["name"]]: tuple(v["name"] for v in e["values"]) for e in DMMF["enums"]
    }
