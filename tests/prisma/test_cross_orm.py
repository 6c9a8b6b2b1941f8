"""Prisma and SQLAlchemy on the same rows: what one ORM writes the other reads back field
by field, both filter alike, defaults and `@updatedAt` agree whichever inserts, relations
load the same sets, `onDelete` acts the same from either side, and the tenant-scoped Prisma
Client (prisma/tenancy.ts) is held to one organization as a tenant session is.

The models, fields and enums come from Prisma's DMMF (prisma/generated/dmmf.json), so a
model added to schema.prisma is covered without a test written for it. The Prisma side is
the generated Prisma Client under tsx (tests/prisma/cross_orm.py).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy import JSON, Enum, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapper, selectinload

from billing.models import Base, Customer, CustomerPaymentMethod, Invoice, Price, Product
from billing.models.subscriptions import SubscriptionSchedule
from contracts.settings import PROJECT_ROOT
from tests.billing.rows import Rows
from tests.conftest import asyncpg_dsn
from tests.prisma.cross_orm import ANY_NULL, DB_NULL, JSON_NULL, PrismaError, PrismaHarness

DMMF = json.loads((PROJECT_ROOT / "prisma" / "generated" / "dmmf.json").read_text())
MODELS: dict[str, dict[str, Any]] = {model["name"]: model for model in DMMF["models"]}
ENUMS: dict[str, list[str]] = {enum["name"]: [value["name"] for value in enum["values"]] for enum in DMMF["enums"]}
MAPPERS: dict[str, Mapper[Any]] = {mapper.local_table.name: mapper for mapper in Base.registry.mappers}  # type: ignore[misc]

# what each direction writes: the far ends of every type (a Decimal with every digit of its
# precision and scale, e.g. 18 integer digits and 12 decimals, see edge_value; BigInt past 2^53 where a JavaScript number loses digits, Int's
# bounds, milliseconds, nested and empty Json, text beyond ASCII)
EDGES: dict[str, tuple[object, object]] = {
    "Int": (2**31 - 1, -(2**31)),
    "BigInt": (2**53 + 1, -(2**63)),
    "Boolean": (True, False),
    "DateTime": (datetime(2026, 2, 28, 23, 59, 59, 123000, UTC), datetime(1969, 12, 31, 23, 59, 59, 999000, UTC)),
    "Json": (
        {"name": "Zoë ✓ 日本", "nested": {"list": [1, 2.5, True, None, "ß"], "empty": {}}, "none": []},
        {},
    ),
}
CUID = re.compile(r"^c[0-9a-z]{24}$")


def delegate(model: str) -> str:
    """The Prisma Client's property for a model: `prisma.customerPaymentMethod`."""
    return model[0].lower() + model[1:]


def table_of(model: str) -> str:
    return MODELS[model].get("dbName") or model


def mapper_of(model: str) -> Mapper[Any]:
    return MAPPERS[table_of(model)]


def scalar_fields(model: str) -> list[dict[str, Any]]:
    return [field for field in MODELS[model]["fields"] if field["kind"] in ("scalar", "enum")]


def field_named(model: str, name: str) -> dict[str, Any]:
    (field,) = [field for field in scalar_fields(model) if field["name"] == name]
    return field


def column_of(field: dict[str, Any]) -> str:
    return field.get("dbName") or field["name"]


def attribute_of(model: str, field: dict[str, Any]) -> str:
    """The SQLAlchemy attribute of a Prisma field (`metadata` is `metadata_`)."""
    mapper = mapper_of(model)
    return mapper.get_property_by_column(mapper.local_table.c[column_of(field)]).key


def id_field(model: str) -> dict[str, Any]:
    (field,) = [field for field in scalar_fields(model) if field["isId"]]
    return field


def reference_fields(model: str) -> set[str]:
    """The fields that hold another row's key (organizationId included)."""
    return {
        name
        for field in MODELS[model]["fields"]
        if field["kind"] == "object"
        for name in field.get("relationFromFields", [])
    }


def tenant_owned(model: str) -> bool:
    return any(field["name"] == "organizationId" for field in scalar_fields(model))


def edge_value(field: dict[str, Any], variant: int) -> object:
    if field["kind"] == "enum":
        values = ENUMS[field["type"]]
        return values[variant % len(values)]
    if field["type"] == "String":
        native = field.get("nativeType") or ["Text", []]
        if native[0] == "Uuid":
            return str(uuid.uuid4())
        text = f"Ünï ✓ 日本 {uuid.uuid4().hex}"  # unique, for unique columns
        return text[: int(native[1][0])] if native[0] == "VarChar" else text
    if field["type"] == "Decimal":
        return _decimal_edge(*(int(n) for n in field["nativeType"][1]), variant)
    return EDGES[field["type"]][variant]


def _decimal_edge(precision: int, scale: int, variant: int) -> Decimal:
    """Every digit of Decimal(precision, scale): 1234...(.)...890, or the most negative."""
    digits = ("1234567890" * precision)[:precision] if variant == 0 else "9" * precision
    sign = "" if variant == 0 else "-"
    integer, fraction = digits[: precision - scale], digits[precision - scale :]
    return Decimal(f"{sign}{integer}.{fraction}" if fraction else f"{sign}{integer}")


def to_sqlalchemy(model: str, field: dict[str, Any], value: object) -> object:
    """A Prisma field value as the SQLAlchemy attribute takes it (enums are StrEnum members)."""
    column_type = mapper_of(model).local_table.c[column_of(field)].type
    if isinstance(column_type, Enum) and column_type.enum_class is not None and value is not None:
        return column_type.enum_class(value)
    return value


class Database:
    """The test database through both ORMs and raw SQL."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], connection: asyncpg.Connection, prisma: PrismaHarness
    ) -> None:
        self.sessions = sessions
        self.connection = connection
        self.prisma = prisma
        self.rows = Rows(connection, Base.metadata.tables)

    async def organization(self) -> str:
        return await self.rows.organization()

    async def references(self, model: str, organization: str) -> dict[str, object]:
        """Rows (raw SQL) for each required reference of a new `model` row: field -> key."""
        values: dict[str, object] = {}
        if not tenant_owned(model):
            return values
        values["organizationId"] = organization
        for field in MODELS[model]["fields"]:
            if field["kind"] != "object" or not field.get("relationFromFields") or not field["isRequired"]:
                continue
            (own,) = [name for name in field["relationFromFields"] if name != "organizationId"] or ["organizationId"]
            if own == "organizationId":
                continue
            parent_table = Base.metadata.tables[table_of(field["type"])]
            values[own] = await self.rows.insert(parent_table, {}, organization)
        return values

    async def write_sqlalchemy(self, model: str, values: dict[str, object]) -> None:
        attributes = {
            attribute_of(model, field_named(model, name)): to_sqlalchemy(model, field_named(model, name), value)
            for name, value in values.items()
        }
        async with self.sessions() as session:
            session.add(mapper_of(model).class_(**attributes))
            await session.commit()

    async def read_sqlalchemy(self, model: str, key: object) -> dict[str, object] | None:
        async with self.sessions() as session:
            row = await session.get(mapper_of(model).class_, key)
            if row is None:
                return None
            return {field["name"]: getattr(row, attribute_of(model, field)) for field in scalar_fields(model)}

    async def read_prisma(self, model: str, key: object) -> dict[str, object] | None:
        row: dict[str, object] | None = await self.prisma.call(
            delegate(model), "findUnique", {"where": {id_field(model)["name"]: key}}
        )
        return row

    async def is_sql_null(self, model: str, field: str, key: object) -> bool:
        column, id_column = column_of(field_named(model, field)), column_of(id_field(model))
        return await self.connection.fetchval(
            f'SELECT "{column}" IS NULL FROM "{table_of(model)}" WHERE "{id_column}" = $1', key
        )


@pytest.fixture(scope="module")
async def prisma(database_url: str) -> AsyncIterator[PrismaHarness]:
    harness = await PrismaHarness.start(database_url)
    yield harness
    await harness.close()


@pytest.fixture(scope="module")
async def db(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], prisma: PrismaHarness
) -> AsyncIterator[Database]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    yield Database(session_factory, connection, prisma)
    # exchange rates are shared by every organization: the edge-value ones written here
    # ('Ünï' is no currency) must not reach the tests that convert with them
    await connection.execute("DELETE FROM exchange_rates WHERE base !~ '^[a-z]{3}$' OR quote !~ '^[a-z]{3}$'")
    await connection.close()


def edge_row(model: str, variant: int, references: dict[str, object]) -> dict[str, object]:
    """Every scalar field of `model` at an edge value; references as given, optional ones NULL."""
    own_references = reference_fields(model)
    row: dict[str, object] = {}
    for field in scalar_fields(model):
        name = field["name"]
        if name in references:
            row[name] = references[name]
        elif name in own_references:
            row[name] = None  # an optional reference: its own tests below
        else:
            row[name] = edge_value(field, variant)
    return row


def same(found: object, written: object) -> bool:
    """Equal and of the same type: True is not 1, nor Decimal("1") 1 (an enum member is the
    str it was written as)."""
    return found == written and (written is None or isinstance(written, str) or type(found) is type(written))


def differences(model: str, expected: dict[str, object], found: dict[str, object] | None, reader: str) -> list[str]:
    if found is None:
        return [f"{reader} does not find the {model} row"]
    return [
        f"{model}.{name}: wrote {value!r}, {reader} read {found[name]!r}"
        for name, value in expected.items()
        if not same(found[name], value)
    ]


@pytest.mark.parametrize("model", list(MODELS))
async def test_what_sqlalchemy_writes_prisma_reads_field_by_field(model: str, db: Database) -> None:
    organization = await db.organization()
    row = edge_row(model, 0, await db.references(model, organization))
    await db.write_sqlalchemy(model, row)
    key = row[id_field(model)["name"]]
    assert differences(model, row, await db.read_prisma(model, key), "Prisma") == []
    assert differences(model, row, await db.read_sqlalchemy(model, key), "SQLAlchemy") == []


@pytest.mark.parametrize("model", list(MODELS))
async def test_what_prisma_writes_sqlalchemy_reads_field_by_field(model: str, db: Database) -> None:
    organization = await db.organization()
    row = edge_row(model, 1, await db.references(model, organization))
    data = {name: value for name, value in row.items() if value is not None}
    await db.prisma.call(delegate(model), "create", {"data": data})
    key = row[id_field(model)["name"]]
    assert differences(model, row, await db.read_sqlalchemy(model, key), "SQLAlchemy") == []
    assert differences(model, row, await db.read_prisma(model, key), "Prisma") == []


def enum_columns() -> list[tuple[str, str, str]]:
    """(enum, model, field): each enum with one field that holds it."""
    found: dict[str, tuple[str, str, str]] = {}
    for model in MODELS:
        for field in scalar_fields(model):
            if field["kind"] == "enum":
                found.setdefault(field["type"], (field["type"], model, field["name"]))
    assert set(found) == set(ENUMS), f"enums no model uses: {set(ENUMS) - set(found)}"
    return list(found.values())


@pytest.mark.parametrize(("enum", "model", "field"), enum_columns())
async def test_every_enum_value_crosses_both_ways(enum: str, model: str, field: str, db: Database) -> None:
    organization = await db.organization()
    for value in ENUMS[enum]:
        through_sqlalchemy = edge_row(model, 0, await db.references(model, organization)) | {field: value}
        await db.write_sqlalchemy(model, through_sqlalchemy)
        through_prisma = edge_row(model, 0, await db.references(model, organization)) | {field: value}
        await db.prisma.call(
            delegate(model), "create", {"data": {k: v for k, v in through_prisma.items() if v is not None}}
        )
        for row in (through_sqlalchemy, through_prisma):
            key = row[id_field(model)["name"]]
            assert (await db.read_prisma(model, key) or {}).get(field) == value, f"{enum}.{value} read by Prisma"
            assert (await db.read_sqlalchemy(model, key) or {}).get(field) == value, (
                f"{enum}.{value} read by SQLAlchemy"
            )
    # and Prisma's enum filter finds each value's rows, as SQLAlchemy's does
    id_name = id_field(model)["name"]
    sqlalchemy_class = mapper_of(model).class_
    column = getattr(sqlalchemy_class, attribute_of(model, field_named(model, field)))
    assert tenant_owned(model), f"{model}: the rows of this test are told apart by organization"
    for value in ENUMS[enum]:
        where = {field: {"in": [value]}, "organizationId": organization}
        found = await db.prisma.call(delegate(model), "findMany", {"where": where, "select": {id_name: True}})
        async with db.sessions() as session:
            statement = select(sqlalchemy_class).where(
                column == to_sqlalchemy(model, field_named(model, field), value),
                sqlalchemy_class.organization_id == organization,
            )
            expected = {getattr(row, attribute_of(model, id_field(model))) for row in await session.scalars(statement)}
        assert {row[id_name] for row in found} == expected
        assert len(expected) == 2, f"{enum}.{value}: one row from each ORM"


def defaulted(model: str) -> list[dict[str, Any]]:
    return [field for field in scalar_fields(model) if field["hasDefaultValue"]]


def minimal_row(model: str, references: dict[str, object]) -> dict[str, object]:
    """The fields a row cannot do without: required, no default; sentAt set so no relay
    picks up an outbox row."""
    row = dict(references)
    for field in scalar_fields(model):
        if field["isRequired"] and not field["hasDefaultValue"] and field["name"] not in row:
            row[field["name"]] = edge_value(field, 0)
    if model == "Outbox":
        row["sentAt"] = datetime.now(UTC)
    return row


def default_of(field: dict[str, Any]) -> object:
    """A literal default of the DMMF as the ORMs read it."""
    value = field["default"]
    if field["type"] == "Json":
        return json.loads(value)
    if field["type"] == "BigInt":
        return int(value)
    if field["type"] == "Decimal":
        return Decimal(value)
    return value


@pytest.mark.parametrize("model", [model for model in MODELS if defaulted(model)])
async def test_defaults_are_the_same_whichever_orm_inserts(model: str, db: Database) -> None:
    organization = await db.organization()
    before = datetime.now(UTC) - timedelta(milliseconds=5)
    by_sqlalchemy = minimal_row(model, await db.references(model, organization))
    by_prisma = minimal_row(model, await db.references(model, organization))
    id_name = id_field(model)["name"]
    generated_id = id_field(model)["hasDefaultValue"]
    async with db.sessions() as session:
        attributes = {
            attribute_of(model, field_named(model, k)): to_sqlalchemy(model, field_named(model, k), v)
            for k, v in by_sqlalchemy.items()
        }
        instance = mapper_of(model).class_(**attributes)
        session.add(instance)
        await session.commit()
        sqlalchemy_key = getattr(instance, attribute_of(model, id_field(model)))
    created = await db.prisma.call(delegate(model), "create", {"data": by_prisma})
    after = datetime.now(UTC) + timedelta(milliseconds=5)
    prisma_key = created[id_name]
    rows = {
        "SQLAlchemy": await db.read_prisma(model, sqlalchemy_key),
        "Prisma": await db.read_prisma(model, prisma_key),
    }
    assert rows["Prisma"] == await db.read_sqlalchemy(model, prisma_key)
    problems = []
    for field in defaulted(model):
        name, default = field["name"], field["default"]
        values = {inserter: row[name] for inserter, row in rows.items() if row is not None}
        if isinstance(default, dict) and default["name"] == "now":
            ok = all(isinstance(v, datetime) and before <= v <= after for v in values.values())
        elif isinstance(default, dict) and default["name"] == "cuid":
            ok = all(isinstance(v, str) and CUID.match(v) for v in values.values())
        elif isinstance(default, dict) and default["name"] == "uuid":
            ok = all(isinstance(v, str) and uuid.UUID(v).version == 4 for v in values.values())
        elif isinstance(default, dict) and default["name"] == "autoincrement":
            ok = isinstance(values["SQLAlchemy"], int) and values["Prisma"] > values["SQLAlchemy"]
        else:
            ok = all(v == default_of(field) for v in values.values())
        if not ok:
            problems.append(f"{model}.{name} (default {default!r}): {values!r}")
    assert generated_id is (sqlalchemy_key != by_sqlalchemy.get(id_name))
    assert problems == []
    # an optional field neither ORM was given is SQL NULL, Json included
    for field in scalar_fields(model):
        if not field["isRequired"] and field["name"] not in by_prisma:
            for inserter, key in (("SQLAlchemy", sqlalchemy_key), ("Prisma", prisma_key)):
                assert await db.is_sql_null(model, field["name"], key), (
                    f"{model}.{field['name']} inserted by {inserter}"
                )


UPDATED = ["metadata", "filters", "name", "label", "scope"]


def updated_at_models() -> list[str]:
    return [model for model in MODELS if any(field["isUpdatedAt"] for field in scalar_fields(model))]


def changed_field(model: str) -> dict[str, Any]:
    names = {field["name"]: field for field in scalar_fields(model)}
    return next(names[name] for name in UPDATED if name in names)


@pytest.mark.parametrize("model", updated_at_models())
@pytest.mark.parametrize("updater", ["Prisma", "SQLAlchemy"])
async def test_updated_at_moves_whichever_orm_updates(model: str, updater: str, db: Database) -> None:
    (stamp,) = [field for field in scalar_fields(model) if field["isUpdatedAt"]]
    organization = await db.organization()
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    key = edge_value(id_field(model), 0)
    row = minimal_row(model, await db.references(model, organization)) | {
        id_field(model)["name"]: key,
        stamp["name"]: long_ago,
    }
    await db.write_sqlalchemy(model, row)
    field = changed_field(model)
    value = {"changed": "✓"} if field["type"] == "Json" else "changed ✓"
    before = datetime.now(UTC) - timedelta(milliseconds=5)
    if updater == "Prisma":
        await db.prisma.call(
            delegate(model), "update", {"where": {id_field(model)["name"]: key}, "data": {field["name"]: value}}
        )
    else:
        async with db.sessions() as session:
            instance = await session.get(mapper_of(model).class_, key)
            setattr(instance, attribute_of(model, field), value)
            await session.commit()
    after = datetime.now(UTC) + timedelta(milliseconds=5)
    seen_by_prisma, seen_by_sqlalchemy = await db.read_prisma(model, key), await db.read_sqlalchemy(model, key)
    assert seen_by_prisma is not None and seen_by_sqlalchemy is not None
    assert seen_by_prisma[field["name"]] == value == seen_by_sqlalchemy[field["name"]]
    assert before <= seen_by_prisma[stamp["name"]] <= after, f"{model}.{stamp['name']} after an update by {updater}"
    assert seen_by_prisma[stamp["name"]] == seen_by_sqlalchemy[stamp["name"]]


# ---------------------------------------------------------------- filters


async def customer(db: Database, organization: str, **values: object) -> str:
    row = {"id": f"cus_{uuid.uuid4().hex}", "organizationId": organization} | values
    await db.write_sqlalchemy("Customer", row)
    return str(row["id"])


async def prisma_customer(db: Database, organization: str, **values: object) -> str:
    row = {"id": f"cus_{uuid.uuid4().hex}", "organizationId": organization} | values
    await db.prisma.call("customer", "create", {"data": row})
    return str(row["id"])


async def prisma_ids(db: Database, model: str, where: dict[str, object]) -> set[str]:
    rows = await db.prisma.call(delegate(model), "findMany", {"where": where, "select": {"id": True}})
    return {row["id"] for row in rows}


async def sqlalchemy_ids(db: Database, statement: Any) -> set[str]:
    async with db.sessions() as session:
        return {row.id for row in await session.scalars(statement)}


async def test_json_nulls_mean_the_same_in_both_orms(db: Database) -> None:
    """None from SQLAlchemy and an absent field or DbNull from Prisma are SQL NULL; JSON's
    null is JSON.NULL in SQLAlchemy and JsonNull in Prisma; AnyNull is either."""
    org = await db.organization()
    sql_null = {
        await customer(db, org, address=None),
        await customer(db, org),
        await prisma_customer(db, org, address=DB_NULL),
        await prisma_customer(db, org),
    }
    json_null = {await customer(db, org, address=JSON.NULL), await prisma_customer(db, org, address=JSON_NULL)}
    an_address = {
        await customer(db, org, address={"city": "Zürich"}),
        await prisma_customer(db, org, address={"city": "Zürich"}),
    }
    mine = {"organizationId": org}
    assert await prisma_ids(db, "Customer", mine | {"address": {"equals": DB_NULL}}) == sql_null
    assert await prisma_ids(db, "Customer", mine | {"address": {"equals": JSON_NULL}}) == json_null
    assert await prisma_ids(db, "Customer", mine | {"address": {"equals": ANY_NULL}}) == sql_null | json_null
    assert await prisma_ids(db, "Customer", mine | {"NOT": {"address": {"equals": ANY_NULL}}}) == an_address
    ours = select(Customer).where(Customer.organization_id == org)
    assert await sqlalchemy_ids(db, ours.where(Customer.address.is_(None))) == sql_null
    assert await sqlalchemy_ids(db, ours.where(func.jsonb_typeof(Customer.address) == "null")) == json_null
    # both read either null as None: the filters above are the only way to tell them apart
    for key in sql_null | json_null:
        assert (await db.read_prisma("Customer", key) or {})["address"] is None
        assert (await db.read_sqlalchemy("Customer", key) or {})["address"] is None


async def test_json_path_filters_on_metadata_agree(db: Database) -> None:
    org = await db.organization()
    gold = {
        await customer(db, org, metadata={"plan": "gold", "limits": {"seats": 3}}),
        await prisma_customer(db, org, metadata={"plan": "gold", "limits": {"seats": 30}}),
    }
    await customer(db, org, metadata={"plan": "silver", "limits": {"seats": 3}})
    await prisma_customer(db, org, metadata={"tier": "gold"})
    mine = {"organizationId": org}
    ours = select(Customer).where(Customer.organization_id == org)
    assert await prisma_ids(db, "Customer", mine | {"metadata": {"path": ["plan"], "equals": "gold"}}) == gold
    assert await sqlalchemy_ids(db, ours.where(Customer.metadata_["plan"].astext == "gold")) == gold
    three_seats = await sqlalchemy_ids(db, ours.where(Customer.metadata_[("limits", "seats")].as_integer() == 3))
    assert len(three_seats) == 2
    assert (
        await prisma_ids(db, "Customer", mine | {"metadata": {"path": ["limits", "seats"], "equals": 3}}) == three_seats
    )
    assert (
        await prisma_ids(db, "Customer", mine | {"metadata": {"path": ["limits", "seats"], "gt": 10}})
        == gold - three_seats
    )


async def product(db: Database, organization: str) -> str:
    key = f"prod_{uuid.uuid4().hex}"
    await db.write_sqlalchemy("Product", {"id": key, "organizationId": organization, "name": "Plan"})
    return key


async def test_decimal_and_bigint_comparisons_agree_to_the_last_digit(db: Database) -> None:
    org = await db.organization()
    product_id = await product(db, org)
    # past 2^53 a JavaScript number cannot tell the first two apart; a BigInt can
    amounts = [
        (2**53, Decimal("0.000000000001")),
        (2**53 + 1, Decimal("0.000000000002")),
        (-(2**62), Decimal("-123456789012345678.000000000001")),
    ]
    for index, (unit_amount, decimal_amount) in enumerate(amounts):
        row = {
            "id": f"price_{uuid.uuid4().hex}",
            "organizationId": org,
            "productId": product_id,
            "type": "one_time",
            "currency": "usd",
            "unitAmount": unit_amount,
            "unitAmountDecimal": decimal_amount,
        }
        if index % 2:
            await db.write_sqlalchemy("Price", row)
        else:
            await db.prisma.call("price", "create", {"data": row})
    mine = {"organizationId": org}
    ours = select(Price).where(Price.organization_id == org)
    cases = [
        ({"unitAmount": {"gt": 2**53}}, Price.unit_amount > 2**53, 1),
        ({"unitAmount": {"gte": 2**53}}, Price.unit_amount >= 2**53, 2),
        ({"unitAmount": {"lt": 0}}, Price.unit_amount < 0, 1),
        (
            {"unitAmountDecimal": {"gt": Decimal("0.000000000001")}},
            Price.unit_amount_decimal > Decimal("0.000000000001"),
            1,
        ),
        (
            {"unitAmountDecimal": {"lte": Decimal("-123456789012345678")}},
            Price.unit_amount_decimal <= Decimal("-123456789012345678"),
            1,
        ),
        (
            {"unitAmountDecimal": {"equals": Decimal("0.000000000002")}},
            Price.unit_amount_decimal == Decimal("0.000000000002"),
            1,
        ),
    ]
    for prisma_where, sqlalchemy_where, count in cases:
        found = await prisma_ids(db, "Price", mine | prisma_where)
        assert found == await sqlalchemy_ids(db, ours.where(sqlalchemy_where)), prisma_where
        assert len(found) == count, prisma_where


async def test_datetime_ranges_agree_at_the_millisecond(db: Database) -> None:
    org = await db.organization()
    start = datetime(2026, 3, 29, 0, 59, 59, 998000, UTC)
    stamps = [start + timedelta(milliseconds=step) for step in range(4)]
    keys = []
    for index, stamp in enumerate(stamps):
        write = customer if index % 2 else prisma_customer
        keys.append(await write(db, org, deletedAt=stamp))
    mine = {"organizationId": org}
    ours = select(Customer).where(Customer.organization_id == org)
    window = {"gte": stamps[1], "lt": stamps[3]}
    assert await prisma_ids(db, "Customer", mine | {"deletedAt": window}) == {keys[1], keys[2]}
    assert await sqlalchemy_ids(db, ours.where(Customer.deleted_at >= stamps[1], Customer.deleted_at < stamps[3])) == {
        keys[1],
        keys[2],
    }
    assert await prisma_ids(db, "Customer", mine | {"deletedAt": {"equals": stamps[2]}}) == {keys[2]}


# ---------------------------------------------------------------- relations


async def payment_method(db: Database, organization: str, customer_id: str, through: str = "SQLAlchemy") -> str:
    row = {
        "id": f"pm_{uuid.uuid4().hex}",
        "organizationId": organization,
        "customerId": customer_id,
        "gatewayPaymentMethodId": f"pm_gw_{uuid.uuid4().hex}",
        "type": "card",
    }
    if through == "SQLAlchemy":
        await db.write_sqlalchemy("CustomerPaymentMethod", row)
    else:
        await db.prisma.call("customerPaymentMethod", "create", {"data": row})
    return str(row["id"])


async def test_customer_payment_methods_and_product_prices_load_the_same_sets(db: Database) -> None:
    org = await db.organization()
    alice, bob = await customer(db, org), await prisma_customer(db, org)
    methods = {
        alice: {await payment_method(db, org, alice), await payment_method(db, org, alice, "Prisma")},
        bob: {await payment_method(db, org, bob)},
    }
    shop, other = await product(db, org), await product(db, org)
    prices: dict[str, set[str]] = {shop: set(), other: set()}
    for product_id, count in ((shop, 3), (other, 1)):
        for _ in range(count):
            key = f"price_{uuid.uuid4().hex}"
            await db.prisma.call(
                "price",
                "create",
                {
                    "data": {
                        "id": key,
                        "organizationId": org,
                        "productId": product_id,
                        "type": "recurring",
                        "currency": "eur",
                        "unitAmount": 500,
                        "recurringInterval": "month",
                        "recurringIntervalCount": 1,
                    }
                },
            )
            prices[product_id].add(key)
    async with db.sessions() as session:
        customers = (
            await session.scalars(
                select(Customer).where(Customer.organization_id == org).options(selectinload(Customer.payment_methods))
            )
        ).all()
        products = (
            await session.scalars(
                select(Product).where(Product.organization_id == org).options(selectinload(Product.prices))
            )
        ).all()
    assert {c.id: {m.id for m in c.payment_methods} for c in customers} == methods
    assert {p.id: {price.id for price in p.prices} for p in products} == prices
    for c in await db.prisma.call(
        "customer", "findMany", {"where": {"organizationId": org}, "include": {"paymentMethods": True}}
    ):
        assert {m["id"] for m in c["paymentMethods"]} == methods[c["id"]]
    for p in await db.prisma.call(
        "product", "findMany", {"where": {"organizationId": org}, "include": {"prices": True}}
    ):
        assert {price["id"] for price in p["prices"]} == prices[p["id"]]


@pytest.mark.parametrize("deleter", ["Prisma", "SQLAlchemy"])
async def test_on_delete_cascade_and_set_null_act_the_same_from_either_orm(deleter: str, db: Database) -> None:
    org = await db.organization()
    # Cascade: a customer's payment methods go with it
    doomed = await customer(db, org)
    methods = {await payment_method(db, org, doomed), await payment_method(db, org, doomed, "Prisma")}
    # SetNull on one column of a tenant-scoped key: the default payment method
    holder = await customer(db, org)
    default_method = await payment_method(db, org, holder)
    await db.prisma.call(
        "customer", "update", {"where": {"id": holder}, "data": {"defaultPaymentMethodId": default_method}}
    )
    # SetNull: an invoice and a schedule outlive their subscription
    references = await db.references("Subscription", org)
    subscription = edge_row("Subscription", 0, references) | {"status": "active"}
    await db.write_sqlalchemy("Subscription", subscription)
    invoice_row = minimal_row("Invoice", await db.references("Invoice", org)) | {
        "subscriptionId": subscription["id"],
        "customerId": references["customerId"],
    }
    await db.write_sqlalchemy("Invoice", invoice_row)
    schedule_row = minimal_row(
        "SubscriptionSchedule", {"organizationId": org, "customerId": references["customerId"]}
    ) | {"subscriptionId": subscription["id"]}
    await db.prisma.call("subscriptionSchedule", "create", {"data": schedule_row})

    doomed_rows = [
        ("Customer", doomed),
        ("CustomerPaymentMethod", default_method),
        ("Subscription", subscription["id"]),
    ]
    for model, key in doomed_rows:
        if deleter == "Prisma":
            await db.prisma.call(delegate(model), "delete", {"where": {"id": key}})
        else:
            async with db.sessions() as session:
                await session.delete(await session.get(mapper_of(model).class_, key))
                await session.commit()

    assert await db.prisma.call("customerPaymentMethod", "count", {"where": {"id": {"in": sorted(methods)}}}) == 0
    async with db.sessions() as session:
        assert (
            await session.scalars(select(CustomerPaymentMethod).where(CustomerPaymentMethod.id.in_(methods)))
        ).all() == []
        kept_holder = await session.get(Customer, holder)
        kept_invoice = await session.get(Invoice, invoice_row["id"])
        kept_schedule = await session.get(SubscriptionSchedule, schedule_row["id"])
    assert kept_holder is not None and kept_holder.default_payment_method_id is None
    assert kept_holder.organization_id == org  # SET NULL (default_payment_method_id) only
    assert kept_invoice is not None and kept_invoice.subscription_id is None and kept_invoice.organization_id == org
    assert kept_schedule is not None and kept_schedule.subscription_id is None
    seen_by_prisma = await db.read_prisma("Invoice", invoice_row["id"])
    assert seen_by_prisma is not None and seen_by_prisma["subscriptionId"] is None


@pytest.mark.parametrize("deleter", ["Prisma", "SQLAlchemy"])
async def test_on_delete_restrict_refuses_from_either_orm(deleter: str, db: Database) -> None:
    org = await db.organization()
    product_id = await product(db, org)
    await db.prisma.call(
        "price",
        "create",
        {
            "data": {
                "id": f"price_{uuid.uuid4().hex}",
                "organizationId": org,
                "productId": product_id,
                "type": "one_time",
                "currency": "usd",
                "unitAmount": 1,
            }
        },
    )
    if deleter == "Prisma":
        with pytest.raises(PrismaError) as refused:
            await db.prisma.call("product", "delete", {"where": {"id": product_id}})
        assert refused.value.code == "P2003", refused.value
    else:
        async with db.sessions() as session:
            await session.delete(await session.get(Product, product_id))
            with pytest.raises(IntegrityError, match="prices_organization_id_product_id_fkey"):
                await session.commit()
    assert await db.read_prisma("Product", product_id) is not None


# ---------------------------------------------------------------- tenancy


async def test_a_tenant_scoped_prisma_client_keeps_to_its_organization(db: Database) -> None:
    a, b = await db.organization(), await db.organization()
    a_customer, b_customer = await customer(db, a, email="a@example.com"), await customer(db, b, email="b@example.com")
    await payment_method(db, b, b_customer)
    tenant = {"organization": a}
    call = db.prisma.call

    assert {c["id"] for c in await call("customer", "findMany", {}, **tenant)} == {a_customer}
    assert await call("customer", "findMany", {"where": {"organizationId": b}}, **tenant) == []
    assert await call("customer", "count", {}, **tenant) == 1
    assert (
        await call("customer", "count", {"where": {"OR": [{"organizationId": b}, {"id": b_customer}]}}, **tenant) == 0
    )
    assert await call("customer", "findUnique", {"where": {"id": b_customer}}, **tenant) is None
    assert await call("customer", "findFirst", {"where": {"email": "b@example.com"}}, **tenant) is None
    assert await call("customerPaymentMethod", "findMany", {"where": {"customerId": b_customer}}, **tenant) == []
    loaded = await call(
        "customer", "findUnique", {"where": {"id": a_customer}, "include": {"paymentMethods": True}}, **tenant
    )
    assert loaded is not None and loaded["paymentMethods"] == []
    assert await call("customer", "updateMany", {"where": {"id": b_customer}, "data": {"name": "taken"}}, **tenant) == {
        "count": 0
    }
    assert await call("customer", "deleteMany", {"where": {"organizationId": b}}, **tenant) == {"count": 0}
    for method, args in (
        ("update", {"where": {"id": b_customer}, "data": {"name": "taken"}}),
        ("delete", {"where": {"id": b_customer}}),
        ("findUniqueOrThrow", {"where": {"id": b_customer}}),
    ):
        with pytest.raises(PrismaError) as refused:
            await call("customer", method, args, **tenant)
        assert refused.value.code == "P2025", (method, refused.value)
    with pytest.raises(PrismaError, match="cannot write rows of"):
        await call("customer", "create", {"data": {"id": f"cus_{uuid.uuid4().hex}", "organizationId": b}}, **tenant)
    # what the extension's filter would not stop, row-level security does: raw SQL sees A only
    assert await db.prisma.raw("SELECT id FROM customers", **tenant) == [{"id": a_customer}]
    assert await db.prisma.raw("SELECT count(*)::int AS n FROM customer_payment_methods", **tenant) == [{"n": 0}]
    assert await db.prisma.raw("SELECT current_user AS role", **tenant) == [{"role": "billing_tenant"}]
    with pytest.raises(PrismaError, match="row-level security"):
        await db.prisma.raw(
            "INSERT INTO customers (id, organization_id) VALUES ($1, $2)", f"cus_{uuid.uuid4().hex}", b, **tenant
        )
    # a row created through the scoped client belongs to A without saying so
    created = await call(
        "customer", "create", {"data": {"id": f"cus_{uuid.uuid4().hex}", "email": "new@example.com"}}, **tenant
    )
    assert created["organizationId"] == a
    # the organization itself: its own row, and never the encrypted secrets
    organizations = await call("organization", "findMany", {"select": {"id": True, "name": True}}, **tenant)
    assert [o["id"] for o in organizations] == [a]
    with pytest.raises(PrismaError, match="permission denied"):
        await call("organization", "findMany", {}, **tenant)
    # B's rows are as they were
    seen = await db.read_sqlalchemy("Customer", b_customer)
    assert seen is not None and seen["name"] is None and seen["organizationId"] == b
    async with db.sessions() as session:
        assert len((await session.scalars(select(Customer).where(Customer.organization_id == b))).all()) == 1
