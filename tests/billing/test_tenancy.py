"""A tenant session sees, changes and deletes only its organization's rows, whatever the
query forgets to say: the filter is added to every ORM statement of a tenant-owned model,
and Postgres row-level security holds even for SQL written by hand."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from billing.db.sessions import TENANT_KEY, tenant_of, tenant_owned_models, tenant_session
from billing.models import ApiKey, Customer, Organization, Outbox, Price, ProcessedCommand
from tests.conftest import asyncpg_dsn


async def _two_tenants_with_customers(session_factory) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    a, b = f"org_t{uuid.uuid4().hex[:10]}", f"org_t{uuid.uuid4().hex[:10]}"
    async with session_factory() as session, session.begin():
        session.add_all([Organization(id=a, name="A"), Organization(id=b, name="B")])
        for org in (a, b):
            session.add_all(
                Customer(id=f"cus_{uuid.uuid4().hex[:12]}", organization_id=org, name=f"{org}-{n}") for n in range(3)
            )
    return a, b


async def test_selects_updates_and_deletes_stay_inside_the_tenant(session_factory) -> None:  # type: ignore[no-untyped-def]
    a, b = await _two_tenants_with_customers(session_factory)
    async with tenant_session(session_factory, a) as session, session.begin():
        names = (await session.scalars(select(Customer.name).where(Customer.name.like("org_t%")))).all()
        assert names and all(name.startswith(a) for name in names)
        assert (
            await session.scalar(select(func.count()).select_from(Customer).where(Customer.organization_id == b)) == 0
        )
        # an unfiltered bulk update and delete: only A's rows
        await session.execute(update(Customer).values(description="touched"))
        await session.execute(delete(Customer).where(Customer.name == f"{b}-0"))
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(Customer.organization_id, Customer.description, Customer.name).where(
                    Customer.organization_id.in_([a, b])
                )
            )
        ).all()
    assert {r.description for r in rows if r.organization_id == a} == {"touched"}
    assert {r.description for r in rows if r.organization_id == b} == {None}
    assert len([r for r in rows if r.organization_id == b]) == 3


async def test_the_orm_filter_alone_keeps_the_tenant(session_factory) -> None:  # type: ignore[no-untyped-def]
    """The first wall on its own: a session bound to A without row-level security (it runs
    as the table owner, which RLS does not restrict) still sees and changes only A's rows."""
    a, b = await _two_tenants_with_customers(session_factory)
    async with session_factory() as session, session.begin():
        session.info[TENANT_KEY] = a  # the tenant filter, but not ROW_SECURITY_KEY
        owners = set((await session.scalars(select(Customer.organization_id))).all())
        assert owners == {a}
        foreign_id = await session.scalar(
            select(Customer.id).where(Customer.organization_id == b).execution_options(skip_tenant_filter=True).limit(1)
        )
        assert foreign_id is not None  # the rows are there: only the filter hides them
        assert (await session.scalars(select(Customer).where(Customer.id == foreign_id))).one_or_none() is None
        touched = await session.execute(
            update(Customer).where(Customer.organization_id == b).values(description="leak")
        )
        assert touched.rowcount == 0
        removed = await session.execute(delete(Customer).where(Customer.organization_id == b))
        assert removed.rowcount == 0


async def test_get_by_id_of_another_tenant_finds_nothing(session_factory) -> None:  # type: ignore[no-untyped-def]
    a, b = await _two_tenants_with_customers(session_factory)
    async with session_factory() as session:
        foreign_id = await session.scalar(select(Customer.id).where(Customer.organization_id == b).limit(1))
    async with tenant_session(session_factory, a) as session:
        assert await session.get(Customer, foreign_id) is None


@pytest.mark.unit
def test_every_table_with_an_organization_is_covered() -> None:
    covered = set(tenant_owned_models())
    assert {Customer, ApiKey, Price, ProcessedCommand, Outbox} <= covered
    assert Organization not in covered


async def test_reads_that_need_a_tenant_refuse_a_plain_session(session_factory) -> None:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        with pytest.raises(RuntimeError, match="tenant session"):
            tenant_of(session)


async def test_row_level_security_holds_even_for_sql_without_the_filter(session_factory) -> None:  # type: ignore[no-untyped-def]
    """The second wall: raw SQL in a tenant session sees and writes only its organization."""
    a, b = await _two_tenants_with_customers(session_factory)
    async with tenant_session(session_factory, a) as session, session.begin():
        organizations = (await session.scalars(text("SELECT DISTINCT organization_id FROM customers"))).all()
        assert organizations == [a]
        changed = await session.execute(
            text("UPDATE customers SET description = 'raw' WHERE organization_id = :b"), {"b": b}
        )
        assert changed.rowcount == 0
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(session_factory, a) as session, session.begin():
            await session.execute(
                text("INSERT INTO customers (id, organization_id) VALUES (:id, :b)"),
                {"id": f"cus_{uuid.uuid4().hex[:12]}", "b": b},
            )


async def test_every_tenant_owned_table_has_row_level_security(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        protected = {
            row["relname"]
            for row in await connection.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid "
                "WHERE c.relrowsecurity AND p.polname = 'tenant_isolation'"
            )
        }
    finally:
        await connection.close()
    # organizations too: its policy keys on `id`, the organization itself
    assert protected == {model.__tablename__ for model in tenant_owned_models()} | {"organizations"}
