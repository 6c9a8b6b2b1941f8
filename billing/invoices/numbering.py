"""Invoice numbers: gapless per organization or per customer, given at finalization.

A number is taken from a counter row in the same transaction that finalizes the invoice:
`INSERT .. ON CONFLICT DO UPDATE SET last_number = last_number + 1 RETURNING` is one atomic
statement that locks the counter row until commit, so concurrent finalizations queue on it
and each gets the next number, and a transaction that rolls back gives its number back (the
next one takes it). Drafts never hold a number.

Numbers read as Stripe's: the prefix, a dash, the sequence zero-padded to four digits
(`6E1F2A3B-0001`, then `-0002` .. `-9999`, `-10000`). The organization's sequence uses a
prefix derived from the organization's id; a customer's uses its `invoicePrefix`, or one
derived from the customer's id when it has none.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Final

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import tenant_of
from billing.models import Customer, InvoiceNumberCounter

ORGANIZATION_SCOPE: Final = "organization"
SEQUENCE_DIGITS: Final = 4


class InvoiceNumbering(StrEnum):
    """Stripe's two schemes: one sequence for the whole account, or one per customer."""

    organization = "organization"
    customer = "customer"


def derived_prefix(owner_id: str) -> str:
    """Eight uppercase hex characters from an id: stable, and unlikely to collide."""
    return hashlib.sha256(owner_id.encode()).hexdigest()[:8].upper()


def format_invoice_number(prefix: str, sequence: int) -> str:
    if sequence < 1:
        raise ValueError(f"invoice sequences start at 1, got {sequence}.")
    return f"{prefix}-{sequence:0{SEQUENCE_DIGITS}d}"


async def take_invoice_number(session: AsyncSession, customer: Customer, numbering: InvoiceNumbering) -> str:
    """The next number of the sequence `numbering` picks for `customer`'s invoice, taken
    inside the caller's transaction (which must commit it with the finalized invoice)."""
    organization_id = tenant_of(session)
    if numbering is InvoiceNumbering.customer:
        scope, prefix = customer.id, customer.invoice_prefix or derived_prefix(customer.id)
    else:
        scope, prefix = ORGANIZATION_SCOPE, derived_prefix(organization_id)
    counter = InvoiceNumberCounter.__table__.c
    statement = (
        insert(InvoiceNumberCounter)
        .values(organization_id=organization_id, scope=scope, last_number=1)
        .on_conflict_do_update(
            index_elements=[counter.organization_id, counter.scope],
            set_={"last_number": counter.last_number + 1, "updated_at": func.now()},
        )
        .returning(counter.last_number)
    )
    sequence = (await session.execute(statement)).scalar_one()
    return format_invoice_number(prefix, sequence)
