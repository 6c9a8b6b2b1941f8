"""Row-level security, table by table, with SQL written by hand: for every tenant-owned
model (the list comes from the schema, billing.db.tenant_owned_models) the tenant role
bound to organization A sees, changes and deletes only A's rows, and can neither insert a
row of B nor move its own row to B, whatever the statement says. The tenant role sees only
its own `organizations` row and never the encrypted Stripe secrets, and reads the shared
`exchange_rates` without writing them. The command consumer applies every command under
that wall (tested through the pipeline with a handler that asks Postgres who it is)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel
from sqlalchemy import ARRAY, JSON, BigInteger, Boolean, Date, DateTime, Enum, Integer, Numeric, String, Table, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db import TENANT_ROLE, tenant_owned_models
from billing.models import Base
from consumers.pipeline import apply_batch
from consumers.registry import Applied, CommandRouter
from tests.conftest import asyncpg_dsn
from tests.consumers.test_pipeline import command, record

TENANT_TABLES = sorted(model.__tablename__ for model in tenant_owned_models())
BIND = "SELECT set_config('role', $1, true), set_config('billing.organization_id', $2, true)"


def _value(column: Any) -> Any:
    """A value of the column's type that its NOT NULL and CHECK constraints accept."""
    kind = column.type
    if isinstance(kind, Enum):
        return kind.enums[0]
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, (Integer, BigInteger, Numeric)):
        return 1
    if isinstance(kind, DateTime):
        return datetime.now(UTC)
    if isinstance(kind, Date):
        return date.today()
    if isinstance(kind, (JSON, JSONB)):
        return json.dumps({})
    if isinstance(kind, ARRAY):
        return []
    if isinstance(kind, String):
        text_value = f"rls{uuid.uuid4().hex}"
        return text_value[: kind.length] if kind.length else text_value
    raise TypeError(f"no sample value for {column.table.name}.{column.name} ({kind!r})")


async def _seed(connection: asyncpg.Connection, table: Table, organization_id: str) -> None:
    """One row of `organization_id` in `table`, every required column filled by its type;
    foreign keys are not checked (replica mode), so no table needs another's rows."""
    columns = {"organization_id": organization_id}
    for column in table.columns:
        numbered = column.primary_key and isinstance(column.type, (Integer, BigInteger))  # a sequence's
        needed = not column.nullable and column.server_default is None and column.default is None and not numbered
        if column.name != "organization_id" and (needed or (column.primary_key and not numbered)):
            columns[column.name] = _value(column)
    names = ", ".join(f'"{name}"' for name in columns)
    casts = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    await connection.execute(f'INSERT INTO "{table.name}" ({names}) VALUES ({casts})', *columns.values())


@pytest.fixture(scope="module")
async def two_organizations(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, str, str]]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    a, b = f"org_rlsa{uuid.uuid4().hex[:12]}", f"org_rlsb{uuid.uuid4().hex[:12]}"
    async with connection.transaction():
        await connection.execute("SET LOCAL session_replication_role = replica")
        for organization in (a, b):
            await connection.execute("INSERT INTO organizations (id, name, stripe_secret_key_encrypted, updated_at) VALUES ($1, $1, 'ciphertext', now())", organization)
            for name in TENANT_TABLES:
                await _seed(connection, Base.metadata.tables[name], organization)
        # the seeded outbox rows name no real topic: marked sent, so no relay of the run picks them up
        await connection.execute("UPDATE outbox SET sent_at = now() WHERE organization_id IN ($1, $2)", a, b)
    try:
        yield connection, a, b
    finally:
        await connection.close()


async def _as_tenant(connection: asyncpg.Connection, organization_id: str) -> None:
    await connection.execute(BIND, TENANT_ROLE, organization_id)


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_the_tenant_role_keeps_to_its_organization(table: str, two_organizations: Any) -> None:
    connection, a, b = two_organizations
    tx = connection.transaction()
    await tx.start()
    try:
        await _as_tenant(connection, a)
        # reads: only A's rows, whatever the WHERE says
        owners = await connection.fetch(f'SELECT organization_id FROM "{table}" WHERE organization_id IN ($1, $2)', a, b)
        assert [row["organization_id"] for row in owners] == [a]
        # B's rows can be neither changed nor deleted: they are not there
        assert await connection.execute(f'UPDATE "{table}" SET organization_id = organization_id WHERE organization_id = $1', b) == "UPDATE 0"
        assert await connection.execute(f'DELETE FROM "{table}" WHERE organization_id = $1', b) == "DELETE 0"
        # nor can A's row move to B, nor can a row of B be written
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with connection.transaction():
                await connection.execute(f'UPDATE "{table}" SET organization_id = $1 WHERE organization_id = $2', b, a)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with connection.transaction():
                await connection.execute(f'INSERT INTO "{table}" (organization_id) VALUES ($1)', b)
    finally:
        await tx.rollback()
    # the owner (no tenant role) sees both: the rows are there, only the policy hid B's
    count = await connection.fetchval(f'SELECT count(*) FROM "{table}" WHERE organization_id IN ($1, $2)', a, b)
    assert count == 2


async def test_the_tenant_role_sees_its_own_organization_and_never_the_secrets(two_organizations: Any) -> None:
    connection, a, b = two_organizations
    async with connection.transaction():
        await _as_tenant(connection, a)
        ids = await connection.fetch("SELECT id, name, reporting_currency FROM organizations WHERE id IN ($1, $2)", a, b)
        assert [row["id"] for row in ids] == [a]
    for column in ("stripe_secret_key_encrypted", "stripe_webhook_secret_encrypted"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            async with connection.transaction():
                await _as_tenant(connection, a)
                await connection.fetch(f"SELECT {column} FROM organizations WHERE id = $1", a)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        async with connection.transaction():
            await _as_tenant(connection, a)
            await connection.fetch("SELECT * FROM organizations")
    for statement in ("INSERT INTO organizations (id, name) VALUES ('org_x', 'x')", "DELETE FROM organizations", "UPDATE organizations SET name = 'x'"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            async with connection.transaction():
                await _as_tenant(connection, a)
                await connection.execute(statement)


async def test_exchange_rates_are_read_only_for_the_tenant_role(two_organizations: Any) -> None:
    connection, a, _ = two_organizations
    async with connection.transaction():
        await _as_tenant(connection, a)
        assert await connection.fetchval("SELECT count(*) FROM exchange_rates") >= 0
    for statement in (
        "INSERT INTO exchange_rates (id, base, quote, rate, source, as_of) VALUES (gen_random_uuid(), 'USD', 'EUR', 1, 'x', now())",
        "UPDATE exchange_rates SET rate = 2",
        "DELETE FROM exchange_rates",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            async with connection.transaction():
                await _as_tenant(connection, a)
                await connection.execute(statement)


class _Nothing(BaseModel):
    pass


async def test_the_consumer_applies_each_command_under_its_organizations_wall(session_factory, two_organizations: Any) -> None:  # type: ignore[no-untyped-def]
    """A handler's SQL, unfiltered, as the pipeline runs it: the tenant role, bound to the
    command's organization, in a batch that switches organization at every command."""
    _, a, b = two_organizations
    who = CommandRouter()

    @who.command("test.who_am_i", _Nothing)
    async def who_am_i(session: AsyncSession, payload: _Nothing) -> Applied:
        row = (await session.execute(text(
            "SELECT current_user AS role, current_setting('billing.organization_id', true) AS organization,"
            " (SELECT array_agg(DISTINCT organization_id) FROM customers) AS customers_of"
        ))).one()
        return Applied("who", {"id": None, "role": row.role, "organization": row.organization, "customersOf": row.customers_of})

    envelopes = [command(org, "test.who_am_i", {}) for org in (a, b, a, a, b)]
    result = await apply_batch(session_factory, who.routes, [record(e, n) for n, e in enumerate(envelopes)])
    assert result.applied == len(envelopes)
    seen = {e.payload["data"]["commandId"]: e.payload["data"]["result"] for e in result.events if e.payload["type"] == "command.succeeded"}
    assert set(seen) == {envelope.commandId for envelope in envelopes}
    for envelope in envelopes:
        assert seen[envelope.commandId] == {"id": None, "role": TENANT_ROLE, "organization": envelope.organizationId, "customersOf": [envelope.organizationId]}
