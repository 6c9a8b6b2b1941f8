"""A tenant session sees, changes and deletes only its organization's rows, whatever the
query forgets to say: the filter is added to every ORM statement of a tenant-owned model."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, func, select, update

from billing.db import tenant_of, tenant_owned_models, tenant_session
from billing.models import ApiKey, Customer, Organization, Outbox, Price, ProcessedCommand


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
        assert await session.scalar(select(func.count()).select_from(Customer).where(Customer.organization_id == b)) == 0
        # an unfiltered bulk update and delete: only A's rows
        await session.execute(update(Customer).values(description="touched"))
        await session.execute(delete(Customer).where(Customer.name == f"{b}-0"))
    async with session_factory() as session:
        rows = (await session.execute(select(Customer.organization_id, Customer.description, Customer.name).where(Customer.organization_id.in_([a, b])))).all()
    assert {r.description for r in rows if r.organization_id == a} == {"touched"}
    assert {r.description for r in rows if r.organization_id == b} == {None}
    assert len([r for r in rows if r.organization_id == b]) == 3


async def test_get_by_id_of_another_tenant_finds_nothing(session_factory) -> None:  # type: ignore[no-untyped-def]
    a, b = await _two_tenants_with_customers(session_factory)
    async with session_factory() as session:
        foreign_id = await session.scalar(select(Customer.id).where(Customer.organization_id == b).limit(1))
    async with tenant_session(session_factory, a) as session:
        assert await session.get(Customer, foreign_id) is None


def test_every_table_with_an_organization_is_covered() -> None:
    covered = set(tenant_owned_models())
    assert {Customer, ApiKey, Price, ProcessedCommand, Outbox} <= covered
    assert Organization not in covered


async def test_reads_that_need_a_tenant_refuse_a_plain_session(session_factory) -> None:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        with pytest.raises(RuntimeError, match="tenant session"):
            tenant_of(session)
