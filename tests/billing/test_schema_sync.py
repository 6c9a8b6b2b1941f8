"""Prisma's DMMF, SQLAlchemy's metadata and the migrated database describe the same tables.

The expectations are read from the DMMF that Prisma handed the generator (kept current by
tests/prisma/test_generator.py) and checked, independently of the generator's code, against
the SQLAlchemy models and against the live Postgres catalog after `alembic upgrade head`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

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
# Prisma's referential actions, as Postgres names them; ON DELETE and ON UPDATE take the same ones
REFERENTIAL_ACTIONS = {
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
    on_update: str


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
    action = REFERENTIAL_ACTIONS[relation["relationOnDelete"]]
    fields = {f["name"]: f for f in model["fields"]}
    optional = [column_of[c] for c in relation["relationFromFields"] if not fields[c]["isRequired"]]
    if action == "SET NULL" and len(optional) < len(relation["relationFromFields"]):
        # a tenant-scoped key nulls its reference, never the required organization_id
        return f"SET NULL ({', '.join(optional)})"
    return action


def dmmf_shapes(dmmf: dict = DMMF) -> dict[str, TableShape]:
    models = {m["name"]: m for m in dmmf["models"]}
    shapes: dict[str, TableShape] = {}
    for model in dmmf["models"]:
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
                        # Prisma's default ON UPDATE, when the schema names none, is Cascade
                        REFERENTIAL_ACTIONS[f.get("relationOnUpdate", "Cascade")],
                    )
                )
        indexes = {
            IndexShape(tuple(column_of[i["name"]] for i in index["fields"]), index["type"] == "unique")
            for index in dmmf["indexes"]
            if index["model"] == model["name"] and index["type"] in {"unique", "normal"}
        }
        primary_key = tuple(column_of[f["name"]] for f in model["fields"] if f.get("isId"))
        shapes[model.get("dbName") or model["name"]] = TableShape(columns, primary_key, foreign_keys, indexes)
    return shapes


def dmmf_enums(dmmf: dict = DMMF) -> dict[str, tuple[str, ...]]:
    return {e.get("dbName") or e["name"]: tuple(v["name"] for v in e["values"]) for e in dmmf["enums"]}


def _compare_enums(expected: dict[str, tuple[str, ...]], actual: dict[str, tuple[str, ...]], what: str) -> list[str]:
    return [
        f"{what}: enum {name}: expected {expected.get(name)}, got {actual.get(name)}"
        for name in sorted(set(expected) | set(actual))
        if expected.get(name) != actual.get(name)
    ]


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
                fk.onupdate or "NO ACTION",
            )
            for fk in table.constraints
            if isinstance(fk, ForeignKeyConstraint)
        }
        indexes = {IndexShape(tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes}
        primary_key = tuple(c.name for c in table.primary_key.columns)
        shapes[table.name] = TableShape(columns, primary_key, foreign_keys, indexes)
    return shapes


def sqlalchemy_enums() -> dict[str, tuple[str, ...]]:
    enums = {}
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if hasattr(column.type, "enums") and getattr(column.type, "name", None):
                enums[column.type.name] = tuple(column.type.enums)
    return enums


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
       con.confdeltype::text as on_delete, con.confupdtype::text as on_update,
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

# pg_constraint.confdeltype and confupdtype
CONFTYPE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


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
            on_delete = CONFTYPE[row["on_delete"]]
            if row["set_columns"]:
                on_delete += f" ({', '.join(row['set_columns'])})"
            shape.foreign_keys.add(
                ForeignKeyShape(
                    tuple(row["columns"]),
                    row["target"],
                    tuple(row["target_columns"]),
                    on_delete,
                    CONFTYPE[row["on_update"]],
                )
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
        # only the keys and indexes that differ, so the message names the drifted one
        if want.foreign_keys != got.foreign_keys:
            problems.append(
                f"{what}: {table} foreign keys: missing {want.foreign_keys - got.foreign_keys}, "
                f"extra {got.foreign_keys - want.foreign_keys}"
            )
        if want.indexes != got.indexes:
            problems.append(
                f"{what}: {table} indexes: missing {want.indexes - got.indexes}, extra {got.indexes - want.indexes}"
            )
    return problems


@pytest.mark.unit
def test_sqlalchemy_metadata_agrees_with_prismas_dmmf() -> None:
    assert _compare(dmmf_shapes(), sqlalchemy_shapes(), "SQLAlchemy") == []


@pytest.mark.unit
def test_sqlalchemy_enums_have_prismas_names_and_values() -> None:
    assert _compare_enums(dmmf_enums(), sqlalchemy_enums(), "SQLAlchemy") == []


@pytest.mark.unit
def test_the_enum_comparison_catches_a_renamed_value() -> None:
    dmmf = copy.deepcopy(DMMF)
    enum = next(e for e in dmmf["enums"] if e["name"] == "BillingScheme")
    enum["values"][0]["name"] = "per_seat"
    problems = _compare_enums(dmmf_enums(dmmf), sqlalchemy_enums(), "SQLAlchemy")
    assert len(problems) == 1 and "enum BillingScheme" in problems[0] and "per_seat" in problems[0], problems


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


def _model(dmmf: dict, name: str) -> dict:
    return next(m for m in dmmf["models"] if m["name"] == name)


def _field(dmmf: dict, model: str, name: str) -> dict:
    return next(f for f in _model(dmmf, model)["fields"] if f["name"] == name)


def _drop_field(dmmf: dict, model: str, name: str) -> None:
    _model(dmmf, model)["fields"].remove(_field(dmmf, model, name))


def _make_lookup_key_index_plain(dmmf: dict) -> None:
    index = next(i for i in dmmf["indexes"] if i["model"] == "Price" and i["fields"][-1]["name"] == "lookupKey")
    index["type"] = "normal"


def _widen_lookup_key_index(dmmf: dict) -> None:
    index = next(i for i in dmmf["indexes"] if i["model"] == "Price" and i["fields"][-1]["name"] == "lookupKey")
    index["fields"].append({"name": "currency"})


# Each edit of a copy of the DMMF, and the words its one reported problem must contain: the table and
# the column or constraint that drifted.
DMMF_DRIFTS: dict[str, tuple[Callable[[dict], None], tuple[str, ...]]] = {
    "column type": (
        lambda d: _field(d, "Price", "unitAmountDecimal").update(nativeType=["Decimal", ["30", "10"]]),
        ("prices.unit_amount_decimal", "numeric(30,10)"),
    ),
    "enum type": (lambda d: _field(d, "Price", "tiersMode").update(type="UsageType"), ("prices.tiers_mode",)),
    "nullability": (lambda d: _field(d, "Price", "currency").update(isRequired=False), ("prices.currency",)),
    "default": (lambda d: _field(d, "Price", "active").update(default=False), ("prices.active", "'false'")),
    "default dropped": (
        lambda d: _field(d, "Price", "billingScheme").update(hasDefaultValue=False),
        ("prices.billing_scheme",),
    ),
    "primary key": (lambda d: _field(d, "Price", "id").update(isId=False), ("prices primary key",)),
    "foreign key columns": (
        lambda d: _field(d, "Price", "meter").update(relationFromFields=["meterId"], relationToFields=["id"]),
        ("prices foreign keys", "'meter_id'"),
    ),
    "foreign key target": (
        lambda d: _field(d, "Price", "meter").update(type="Product"),
        ("prices foreign keys", "target='products'"),
    ),
    "on_delete": (
        lambda d: _field(d, "Price", "product").update(relationOnDelete="Cascade"),
        ("prices foreign keys", "'product_id'", "on_delete='CASCADE'"),
    ),
    "on_update": (
        lambda d: _field(d, "Price", "product").update(relationOnUpdate="Restrict"),
        ("prices foreign keys", "'product_id'", "on_update='RESTRICT'"),
    ),
    "index uniqueness": (_make_lookup_key_index_plain, ("prices indexes", "'lookup_key'")),
    "index columns": (_widen_lookup_key_index, ("prices indexes", "'lookup_key', 'currency'")),
    "column only in SQLAlchemy": (lambda d: _drop_field(d, "Price", "nickname"), ("prices.nickname", "expected None")),
    "table only in SQLAlchemy": (
        lambda d: d["models"].remove(_model(d, "ExchangeRate")),
        ("tables differ", "exchange_rates"),
    ),
}


@pytest.mark.unit
@pytest.mark.parametrize("drift", DMMF_DRIFTS, ids=list(DMMF_DRIFTS))
def test_the_comparison_catches_a_drifted_dmmf(drift: str) -> None:
    """Each check can fail: one edit of the DMMF is one problem, naming the table and the field."""
    edit, words = DMMF_DRIFTS[drift]
    dmmf = copy.deepcopy(DMMF)
    edit(dmmf)
    problems = _compare(dmmf_shapes(dmmf), sqlalchemy_shapes(), "SQLAlchemy")
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0], problems[0]


def _drift_price_product_key(shape: TableShape, **changes: str) -> None:
    key = next(fk for fk in shape.foreign_keys if fk.columns[-1] == "product_id")
    shape.foreign_keys = (shape.foreign_keys - {key}) | {replace(key, **changes)}


# The same checks from the other side: each edit of the shapes built from the SQLAlchemy metadata.
SQLALCHEMY_DRIFTS: dict[str, tuple[Callable[[dict[str, TableShape]], None], tuple[str, ...]]] = {
    "column type": (
        lambda s: s["prices"].columns.update(
            unit_amount_decimal=replace(s["prices"].columns["unit_amount_decimal"], type="numeric(30,10)")
        ),
        ("prices.unit_amount_decimal", "numeric(30,10)"),
    ),
    "nullability": (
        lambda s: s["prices"].columns.update(unit_amount=replace(s["prices"].columns["unit_amount"], nullable=False)),
        ("prices.unit_amount",),
    ),
    "default": (
        lambda s: s["prices"].columns.update(metadata=replace(s["prices"].columns["metadata"], default="'[]'")),
        ("prices.metadata", "'[]'"),
    ),
    "primary key": (lambda s: setattr(s["prices"], "primary_key", ("organization_id", "id")), ("prices primary key",)),
    "on_delete": (
        lambda s: _drift_price_product_key(s["prices"], on_delete="NO ACTION"),
        ("prices foreign keys", "'product_id'", "on_delete='NO ACTION'"),
    ),
    "on_update": (
        lambda s: _drift_price_product_key(s["prices"], on_update="NO ACTION"),
        ("prices foreign keys", "'product_id'", "on_update='NO ACTION'"),
    ),
    "foreign key target": (
        lambda s: _drift_price_product_key(s["prices"], target="meters"),
        ("prices foreign keys", "target='meters'"),
    ),
    "index dropped": (
        lambda s: s["prices"].indexes.remove(IndexShape(("organization_id", "lookup_key"), True)),
        ("prices indexes", "'lookup_key'"),
    ),
    "column only in the DMMF": (lambda s: s["prices"].columns.pop("nickname"), ("prices.nickname", "got None")),
    "table only in the DMMF": (lambda s: s.pop("exchange_rates"), ("tables differ", "exchange_rates")),
}


@pytest.mark.unit
@pytest.mark.parametrize("drift", SQLALCHEMY_DRIFTS, ids=list(SQLALCHEMY_DRIFTS))
def test_the_comparison_catches_drifted_sqlalchemy_metadata(drift: str) -> None:
    """Each check can fail from the models' side too, naming the table and the field."""
    edit, words = SQLALCHEMY_DRIFTS[drift]
    drifted = sqlalchemy_shapes()
    edit(drifted)
    problems = _compare(dmmf_shapes(), drifted, "SQLAlchemy")
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0], problems[0]


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
    assert _compare_enums(dmmf_enums(), {r["typname"]: tuple(r["labels"]) for r in rows}, "Postgres") == []
