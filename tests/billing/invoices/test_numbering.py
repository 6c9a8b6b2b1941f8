"""Invoice numbers against the real test database: gapless and unique under concurrency,
given back by a rollback, per organization or per customer, and walled per tenant."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from billing.db.sessions import tenant_session
from billing.ids import new_id
from billing.invoices.numbering import InvoiceNumbering, derived_prefix, format_invoice_number, take_invoice_number
from billing.models import Customer, Invoice
from billing.organizations.service import create_organization
from contracts.enums import InvoiceStatus

FINALIZATIONS = 200
PERIOD = datetime(2027, 1, 1, tzinfo=UTC)


class Abandoned(Exception):
    """A finalization that fails after taking its number (its transaction rolls back)."""


async def organization_with_drafts(
    session_factory: Any, drafts: int, prefix: str | None = None
) -> tuple[str, str, list[str]]:
    async with session_factory() as session, session.begin():
        organization, _ = await create_organization(session, "Numbering test")
    async with tenant_session(session_factory, organization.id) as session, session.begin():
        customer = Customer(id=new_id("customer"), organization_id=organization.id, invoice_prefix=prefix)
        session.add(customer)
        invoices = [
            Invoice(
                id=new_id("invoice"),
                organization_id=organization.id,
                customer_id=customer.id,
                currency="usd",
                period_start=PERIOD,
                period_end=PERIOD,
            )
            for _ in range(drafts)
        ]
        session.add_all(invoices)
    return organization.id, customer.id, [invoice.id for invoice in invoices]


async def finalize(
    session_factory: Any,
    organization_id: str,
    customer_id: str,
    invoice_id: str,
    numbering: InvoiceNumbering,
    *,
    abandon: bool = False,
) -> str:
    async with tenant_session(session_factory, organization_id) as session, session.begin():
        customer = (await session.scalars(select(Customer).where(Customer.id == customer_id))).one()
        number = await take_invoice_number(session, customer, numbering)
        await session.execute(
            update(Invoice).where(Invoice.id == invoice_id).values(number=number, status=InvoiceStatus.open)
        )
        if abandon:
            raise Abandoned(number)
    return number


async def numbers_of(session_factory: Any, organization_id: str) -> list[str | None]:
    async with tenant_session(session_factory, organization_id) as session:
        return list(await session.scalars(select(Invoice.number).order_by(Invoice.number)))


async def test_concurrent_finalizations_get_gapless_unique_numbers(session_factory: Any) -> None:
    organization_id, customer_id, invoice_ids = await organization_with_drafts(session_factory, FINALIZATIONS)
    # every seventh finalization fails after taking a number: its number must be given back
    outcomes = await asyncio.gather(
        *(
            finalize(
                session_factory,
                organization_id,
                customer_id,
                invoice_id,
                InvoiceNumbering.organization,
                abandon=index % 7 == 3,
            )
            for index, invoice_id in enumerate(invoice_ids)
        ),
        return_exceptions=True,
    )
    abandoned = [outcome for outcome in outcomes if isinstance(outcome, Abandoned)]
    assert len(abandoned) == len([i for i in range(FINALIZATIONS) if i % 7 == 3])
    assert not [
        outcome for outcome in outcomes if isinstance(outcome, BaseException) and not isinstance(outcome, Abandoned)
    ]
    finalized = FINALIZATIONS - len(abandoned)
    prefix = derived_prefix(organization_id)
    expected = [format_invoice_number(prefix, n) for n in range(1, finalized + 1)]
    stored = [number for number in await numbers_of(session_factory, organization_id) if number is not None]
    assert stored == expected  # 1..finalized, each once: no gap where a rollback was
    assert sorted(outcome for outcome in outcomes if isinstance(outcome, str)) == expected


async def test_per_customer_sequences_use_the_customers_prefix_and_tenants_do_not_share(session_factory: Any) -> None:
    first_org, first_customer, first_drafts = await organization_with_drafts(session_factory, 3, prefix="ACME")
    other_org, other_customer, other_drafts = await organization_with_drafts(session_factory, 1)
    numbers = [
        await finalize(session_factory, first_org, first_customer, invoice_id, InvoiceNumbering.customer)
        for invoice_id in first_drafts[:2]
    ]
    assert numbers == ["ACME-0001", "ACME-0002"]
    organization_number = await finalize(
        session_factory, first_org, first_customer, first_drafts[2], InvoiceNumbering.organization
    )
    assert organization_number == f"{derived_prefix(first_org)}-0001"  # its own sequence
    # another organization starts at 1 however far this one has gone
    assert await finalize(
        session_factory, other_org, other_customer, other_drafts[0], InvoiceNumbering.organization
    ) == (f"{derived_prefix(other_org)}-0001")


def test_numbers_are_zero_padded_and_grow_past_four_digits() -> None:
    assert format_invoice_number("ACME", 7) == "ACME-0007"
    assert format_invoice_number("ACME", 12345) == "ACME-12345"
    with pytest.raises(ValueError):
        format_invoice_number("ACME", 0)
    assert derived_prefix("org_1") == derived_prefix("org_1") != derived_prefix("org_2")
    assert len(derived_prefix("org_1")) == 8 and derived_prefix("org_1").isupper()
