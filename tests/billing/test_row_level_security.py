"""Row-level security, table by table, with SQL written by hand: for every tenant-owned
model (the list comes from the schema, billing.db.sessions.tenant_owned_models) the tenant role
bound to organization A sees, changes and deletes only A's rows, and can neither insert a
row of B nor move its own row to B, whatever the statement says. The tenant role sees only
its own `organizations` row and never the encrypted Stripe secrets, and reads the shared
`exchange_rates` without writing them. The command consumer applies every command under
that wall (tested through the pipeline with a handler that asks Postgres who it is)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, ClassVar

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import TENANT_ROLE, tenant_owned_models
from billing.models import Base
from consumers.pipeline import apply_batch
from consumers.registry import Applied, CommandRouter
from contracts.commands import Command
from tests.billing.rows import Rows
from tests.conftest import asyncpg_dsn
from tests.consumers.test_pipeline import command, record

TENANT_TABLES = sorted(model.__tablename__ for model in tenant_owned_models())
BIND = "SELECT set_config('role', $1, true), set_config('billing.organization_id', $2, true)"


@pytest.fixture(scope="module")
async def two_organizations(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, str, str]]:
    """Organizations A and B with rows in every tenant-owned table (committed: the
    consumer test reads them from its own sessions)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    rows = Rows(connection, Base.metadata.tables)
    async with connection.transaction():
        a, b = await rows.organization(), await rows.organization()
        for organization in (a, b):
            for name in TENANT_TABLES:
                await rows.insert(Base.metadata.tables[name], {}, organization)
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
        owners = await connection.fetch(
            f'SELECT organization_id FROM "{table}" WHERE organization_id IN ($1, $2)', a, b
        )
        assert owners and {row["organization_id"] for row in owners} == {a}
        # B's rows can be neither changed nor deleted: they are not there
        assert (
            await connection.execute(
                f'UPDATE "{table}" SET organization_id = organization_id WHERE organization_id = $1', b
            )
            == "UPDATE 0"
        )
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
    owners = await connection.fetch(
        f'SELECT DISTINCT organization_id FROM "{table}" WHERE organization_id IN ($1, $2)', a, b
    )
    assert {row["organization_id"] for row in owners} == {a, b}


async def test_the_tenant_role_sees_its_own_organization_and_never_the_secrets(two_organizations: Any) -> None:
    connection, a, b = two_organizations
    async with connection.transaction():
        await _as_tenant(connection, a)
        ids = await connection.fetch(
            "SELECT id, name, reporting_currency FROM organizations WHERE id IN ($1, $2)", a, b
        )
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
    for statement in (
        "INSERT INTO organizations (id, name) VALUES ('org_x', 'x')",
        "DELETE FROM organizations",
        "UPDATE organizations SET name = 'x'",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            async with connection.transaction():
                await _as_tenant(connection, a)
                await connection.execute(statement)


async def test_exchange_rates_are_read_only_for_the_tenant_role(two_organizations: Any) -> None:
    connection, a, _ = two_organizations
    source = f"rls-{a}"
    await connection.execute(
        "INSERT INTO exchange_rates (id, base, quote, rate, source, as_of) VALUES (gen_random_uuid(), 'usd', 'eur', 0.92, $1, now())",
        source,
    )
    async with connection.transaction():
        await _as_tenant(connection, a)
        # shared reference data: every organization reads it
        assert await connection.fetchval("SELECT rate FROM exchange_rates WHERE source = $1", source) == Decimal("0.92")
    for statement in (
        "INSERT INTO exchange_rates (id, base, quote, rate, source, as_of) VALUES (gen_random_uuid(), 'USD', 'EUR', 1, 'x', now())",
        "UPDATE exchange_rates SET rate = 2",
        "DELETE FROM exchange_rates",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            async with connection.transaction():
                await _as_tenant(connection, a)
                await connection.execute(statement)


class _WhoAmI(Command[dict[str, Any]]):
    command_type: ClassVar[str] = "test.who_am_i"


async def test_the_consumer_applies_each_command_under_its_organizations_wall(
    session_factory, two_organizations: Any, caplog
) -> None:  # type: ignore[no-untyped-def]
    """A handler's SQL, unfiltered, as the pipeline runs it: the tenant role, bound to the
    command's organization, in a batch that switches organization at every command; the
    batch's bookkeeping rows go in under each one's own organization, in the one optimistic
    pass (no fallback to a savepoint per command)."""
    caplog.set_level(logging.INFO, logger="consumers.pipeline")
    _, a, b = two_organizations
    who = CommandRouter()

    @who.handles(_WhoAmI)
    async def who_am_i(session: AsyncSession, command: _WhoAmI) -> Applied[dict[str, Any]]:
        row = (
            await session.execute(
                text(
                    "SELECT current_user AS role, current_setting('billing.organization_id', true) AS organization,"
                    " (SELECT array_agg(DISTINCT organization_id) FROM customers) AS customers_of"
                )
            )
        ).one()
        return Applied(
            "who", {"id": None, "role": row.role, "organization": row.organization, "customersOf": row.customers_of}
        )

    envelopes = [command(org, _WhoAmI.command_type, {}) for org in (a, b, a, a, b)]
    result = await apply_batch(session_factory, who.routes, [record(e, n) for n, e in enumerate(envelopes)])
    assert result.applied == len(envelopes)
    assert [r.getMessage() for r in caplog.records if r.name == "consumers.pipeline"] == []
    seen = {
        e.payload["data"]["commandId"]: e.payload["data"]["result"]
        for e in result.events
        if e.payload["type"] == "command.succeeded"
    }
    assert set(seen) == {envelope.commandId for envelope in envelopes}
    for envelope in envelopes:
        assert seen[envelope.commandId] == {
            "id": None,
            "role": TENANT_ROLE,
            "organization": envelope.organizationId,
            "customersOf": [envelope.organizationId],
        }
