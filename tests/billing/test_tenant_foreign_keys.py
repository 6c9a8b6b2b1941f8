"""The database refuses a reference from one organization's row to another's.

Every foreign key between tenant-owned tables is (organization_id, x_id) -> (organization_id,
id). For each such key, read from the SQLAlchemy metadata (generated from the Prisma schema),
raw SQL inserts a row of organization A naming organization B's row and Postgres refuses it
with that key's name, while the same reference inside A is accepted. The inserts run as the
connecting role, which row-level security does not restrict (the consumers' multi-tenant
sessions use it): the key alone stands between the two tenants.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import ForeignKeyConstraint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from billing.models import Base, Customer, CustomerPaymentMethod, Organization, PaymentMethodType
from tests.billing.rows import TENANT, Rows, reference_column, tenant_owned
from tests.conftest import asyncpg_dsn

TABLES = Base.metadata.tables

TENANT_KEYS = [
    key
    for table in Base.metadata.sorted_tables
    for key in sorted(table.foreign_key_constraints, key=lambda k: str(k.name))
    if tenant_owned(table) and tenant_owned(key.referred_table)
]
SET_NULL_KEYS = [key for key in TENANT_KEYS if str(key.ondelete).startswith("SET NULL")]


def _key_id(key: ForeignKeyConstraint) -> str:
    return str(key.name)


@pytest.fixture
async def rows(database_url: str) -> AsyncIterator[Rows]:
    """Each test's rows live in a transaction that is rolled back."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    transaction = connection.transaction()
    await transaction.start()
    try:
        yield Rows(connection, TABLES)
    finally:
        await transaction.rollback()
        await connection.close()


@pytest.mark.unit
def test_every_reference_between_tenant_owned_tables_carries_the_organization() -> None:
    assert len(TENANT_KEYS) >= 15
    for key in TENANT_KEYS:
        assert key.column_keys[0] == TENANT, key.name
        assert [e.column.name for e in key.elements] == [TENANT, "id"], key.name


@pytest.mark.parametrize("key", TENANT_KEYS, ids=_key_id)
async def test_a_reference_to_another_organizations_row_is_refused(rows: Rows, key: ForeignKeyConstraint) -> None:
    ours, theirs = await rows.organization(), await rows.organization()
    table, target, column = key.table, key.referred_table, reference_column(key)

    their_row = await rows.insert(target, {}, theirs)
    with pytest.raises(asyncpg.ForeignKeyViolationError) as refused:
        async with rows.connection.transaction():
            await rows.insert(table, {column: their_row}, ours)
    assert refused.value.constraint_name == key.name

    our_row = await rows.insert(target, {}, ours)
    accepted = await rows.insert(table, {column: our_row}, ours)
    assert await rows.connection.fetchval(f'select "{column}" from "{table.name}" where id = $1', accepted) == our_row


@pytest.mark.parametrize("key", SET_NULL_KEYS, ids=_key_id)
async def test_deleting_the_referenced_row_clears_the_reference_and_keeps_the_organization(
    rows: Rows, key: ForeignKeyConstraint
) -> None:
    """ON DELETE SET NULL (column): a plain SET NULL would null organization_id too, and
    deleting e.g. a customer's default payment method would fail."""
    ours = await rows.organization()
    table, target, column = key.table, key.referred_table, reference_column(key)
    referenced = await rows.insert(target, {}, ours)
    referring = await rows.insert(table, {column: referenced}, ours)

    await rows.connection.execute(f'delete from "{target.name}" where id = $1', referenced)

    after = await rows.connection.fetchrow(f'select "{column}", {TENANT} from "{table.name}" where id = $1', referring)
    assert after is not None and tuple(after) == (None, ours)


async def test_an_orm_relationship_sets_the_reference_but_never_the_organization(engine: AsyncEngine) -> None:
    """Assigning another organization's row keeps organization_id (the relationship joins on
    it but does not write it), so the key refuses the row instead of moving it to B."""
    async with AsyncSession(engine) as session:
        ours = Organization(id=f"org_{uuid.uuid4().hex}", name="ours")
        theirs = Organization(id=f"org_{uuid.uuid4().hex}", name="theirs")
        our_customer, their_customer = (
            Customer(id=f"cus_{uuid.uuid4().hex}", organization_id=org.id) for org in (ours, theirs)
        )
        session.add_all([ours, theirs, our_customer, their_customer])
        await session.flush()

        def method(customer: Customer) -> CustomerPaymentMethod:
            return CustomerPaymentMethod(
                id=f"pm_{uuid.uuid4().hex}",
                organization_id=ours.id,
                customer=customer,
                gateway_payment_method_id=f"pm_{uuid.uuid4().hex}",
                type=PaymentMethodType.card,
            )

        accepted = method(our_customer)
        session.add(accepted)
        await session.flush()
        assert (accepted.organization_id, accepted.customer_id) == (ours.id, our_customer.id)

        refused = method(their_customer)
        session.add(refused)
        assert (refused.organization_id, refused.customer_id) == (ours.id, None)
        with pytest.raises(IntegrityError) as error:
            await session.flush()
        assert "customer_payment_methods_organization_id_customer_id_fkey" in str(error.value.orig)
