"""Tenant-scoped invoice reads, answered as `InvoiceDetails` (the invoice with its lines)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import CreatedRange, Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.models import Invoice, InvoiceLineItem
from contracts.enums import InvoiceStatus
from contracts.invoices import InvoiceDetails
from contracts.resources import Invoice as InvoiceResource
from contracts.resources import InvoiceLineItem as InvoiceLineItemResource


async def invoice_lines(session: AsyncSession, invoice_id: str) -> list[InvoiceLineItem]:
    """An invoice's lines in their order on it."""
    return list(
        (
            await session.scalars(
                select(InvoiceLineItem)
                .where(InvoiceLineItem.invoice_id == invoice_id)
                .order_by(InvoiceLineItem.position, InvoiceLineItem.id)
            )
        ).all()
    )


async def details(session: AsyncSession, invoices: Sequence[Invoice]) -> list[InvoiceDetails]:
    ids = [invoice.id for invoice in invoices]
    lines = (
        await session.scalars(
            select(InvoiceLineItem)
            .where(InvoiceLineItem.invoice_id.in_(ids))
            .order_by(InvoiceLineItem.position, InvoiceLineItem.id)
        )
    ).all()
    return [
        InvoiceDetails(
            **InvoiceResource.model_validate(invoice).model_dump(),
            lines=[InvoiceLineItemResource.model_validate(line) for line in lines if line.invoice_id == invoice.id],
        )
        for invoice in invoices
    ]


async def get_invoice(session: AsyncSession, invoice_id: str) -> InvoiceDetails | None:
    invoice = await get_one(session, Invoice, Invoice.id, invoice_id)
    if invoice is None:
        return None
    (found,) = await details(session, [invoice])
    return found


async def list_invoices(
    session: AsyncSession,
    page: PageRequest,
    *,
    customer: str | None = None,
    subscription: str | None = None,
    status: InvoiceStatus | None = None,
    created: CreatedRange = CreatedRange(),
) -> Page[InvoiceDetails]:
    tenant_of(session)
    statement = select(Invoice)
    if customer is not None:
        statement = statement.where(Invoice.customer_id == customer)
    if subscription is not None:
        statement = statement.where(Invoice.subscription_id == subscription)
    if status is not None:
        statement = statement.where(Invoice.status == status)
    statement = created.apply(statement, Invoice.created_at)
    found = await paginate(session, statement, Invoice, page, "invoice")
    return Page(await details(session, found.items), found.has_more)
