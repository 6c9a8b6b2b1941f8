"""Invoice items: charges and credits waiting for a customer's next one-off invoice.
Writes are called inside a command's transaction and never commit; reads go through the
tenant session."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.pricing import quote
from billing.catalog.repository import get_product, price_terms
from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.invoices.collection import billing_currency
from billing.models import InvoiceItem
from billing.payments.repository import get_live_customer
from billing.subscriptions.changes import check_price_currency, usable_price
from contracts.enums import PriceType
from contracts.invoice_items import InvoiceItemCreate

# a one-off charge's period is the moment it was made: [t, t + 1 ms), timestamps' precision
INSTANT = timedelta(milliseconds=1)


async def get_invoice_item(session: AsyncSession, item_id: str, *, for_update: bool = False) -> InvoiceItem | None:
    return await get_one(session, InvoiceItem, InvoiceItem.id, item_id, for_update=for_update)


async def list_invoice_items(
    session: AsyncSession,
    page: PageRequest,
    *,
    customer: str | None = None,
    invoice: str | None = None,
    pending: bool | None = None,
) -> Page[InvoiceItem]:
    tenant_of(session)
    statement = select(InvoiceItem)
    if customer is not None:
        statement = statement.where(InvoiceItem.customer_id == customer)
    if invoice is not None:
        statement = statement.where(InvoiceItem.invoice_id == invoice)
    if pending is not None:
        statement = statement.where(InvoiceItem.invoice_id.is_(None) if pending else InvoiceItem.invoice_id.isnot(None))
    return await paginate(session, statement, InvoiceItem, page, "invoice_item")


def _pending_one_off(customer_id: str) -> ColumnElement[bool]:
    """The customer's items on no invoice and of no subscription (a subscription's wait for
    its own next invoice)."""
    return and_(
        InvoiceItem.customer_id == customer_id,
        InvoiceItem.subscription_id.is_(None),
        InvoiceItem.invoice_id.is_(None),
    )


async def pending_one_off_items(session: AsyncSession, customer_id: str, currency: str) -> list[InvoiceItem]:
    """The customer's items on no invoice and of no subscription, in `currency`, oldest first."""
    return list(
        (
            await session.scalars(
                select(InvoiceItem)
                .where(_pending_one_off(customer_id), InvoiceItem.currency == currency)
                .order_by(InvoiceItem.created_at, InvoiceItem.position, InvoiceItem.id)
                .with_for_update()
            )
        ).all()
    )


async def oldest_pending_currency(session: AsyncSession, customer_id: str) -> str | None:
    """The currency of the customer's oldest pending one-off item, if any."""
    return await session.scalar(
        select(InvoiceItem.currency)
        .where(_pending_one_off(customer_id))
        .order_by(InvoiceItem.created_at, InvoiceItem.id)
        .limit(1)
    )


async def create_invoice_item(session: AsyncSession, command: InvoiceItemCreate, now: datetime) -> InvoiceItem:
    if (command.amount is None) == (command.price is None):
        raise InvalidRequest(
            "Give exactly one of amount or price.",
            code="parameter_missing" if command.amount is None else "parameter_invalid",
            param="amount",
        )
    customer = await get_live_customer(session, command.customer)
    if customer is None:
        raise ResourceMissing("customer", command.customer, param="customer")
    price = (
        await usable_price(session, command.price, "price", PriceType.one_time) if command.price is not None else None
    )
    currency = billing_currency(
        customer.currency,
        command.currency,
        await oldest_pending_currency(session, customer.id),
        price.currency if price is not None else None,
        what="an invoice item",
    )
    start = command.periodStart or now
    end = command.periodEnd or start + INSTANT
    if end <= start:
        raise InvalidRequest("periodEnd must be after periodStart.", code="parameter_invalid", param="periodEnd")
    if price is not None:
        check_price_currency(price, currency, "price")
        priced = quote(price_terms(price), command.quantity, currency)
        product = await get_product(session, price.product_id)
        assert product is not None  # a price's product is kept while prices refer to it
        amount, quantity, description = priced.total, command.quantity, f"{command.quantity} × {product.name}"
        unit = priced.lines[0].unit_amount if len(priced.lines) == 1 and priced.lines[0].flat_amount == 0 else None
    else:
        assert command.amount is not None
        amount, quantity, description, unit = command.amount, 1, "Invoice item", None
    item = InvoiceItem(
        id=new_id("invoice_item"),
        organization_id=tenant_of(session),
        customer_id=customer.id,
        price_id=price.id if price is not None else None,
        description=command.description or description,
        quantity=quantity,
        unit_amount_decimal=unit,
        amount=amount,
        currency=currency,
        period_start=start,
        period_end=end,
        metadata_=dict(command.metadata),
    )
    session.add(item)
    await session.flush()
    return item


async def delete_invoice_item(session: AsyncSession, item_id: str) -> InvoiceItem:
    """Only a pending item: one on an invoice is a line of it (deleting a draft invoice
    makes its items pending again)."""
    item = await get_invoice_item(session, item_id, for_update=True)
    if item is None:
        raise ResourceMissing("invoice_item", item_id)
    if item.invoice_id is not None:
        raise InvalidRequest(
            f"This invoice item is on the invoice {item.invoice_id}; only a pending one can be deleted "
            "(delete the draft invoice to make its items pending again).",
            code="invoice_item_not_deletable",
        )
    await session.delete(item)
    await session.flush()
    return item
