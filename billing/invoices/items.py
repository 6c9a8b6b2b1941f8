"""Invoice items: charges and credits waiting for a customer's next one-off invoice.
Writes are called inside a command's transaction and never commit; reads go through the
tenant session."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.pricing import quote
from billing.catalog.repository import get_price, get_product, price_terms
from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.models import Customer, InvoiceItem, Price
from billing.money.currencies import currency_param
from billing.payments.repository import get_live_customer
from billing.subscriptions.changes import check_price_currency
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


async def pending_one_off_items(session: AsyncSession, customer_id: str, currency: str) -> list[InvoiceItem]:
    """The customer's items on no invoice and of no subscription, in `currency`, oldest first."""
    return list(
        (
            await session.scalars(
                select(InvoiceItem)
                .where(
                    InvoiceItem.customer_id == customer_id,
                    InvoiceItem.subscription_id.is_(None),
                    InvoiceItem.invoice_id.is_(None),
                    InvoiceItem.currency == currency,
                )
                .order_by(InvoiceItem.created_at, InvoiceItem.position, InvoiceItem.id)
                .with_for_update()
            )
        ).all()
    )


async def oldest_pending_currency(session: AsyncSession, customer_id: str) -> str | None:
    """The currency of the customer's oldest pending one-off item, if any."""
    return await session.scalar(
        select(InvoiceItem.currency)
        .where(
            InvoiceItem.customer_id == customer_id,
            InvoiceItem.subscription_id.is_(None),
            InvoiceItem.invoice_id.is_(None),
        )
        .order_by(InvoiceItem.created_at, InvoiceItem.id)
        .limit(1)
    )


def _currency(command: InvoiceItemCreate, customer: Customer, price: Price | None, pending: str | None) -> str:
    """As asked, else the customer's, else that of its pending items, else the price's; a
    customer bills in one currency."""
    if command.currency is not None:
        currency = currency_param(command.currency, "currency")
    elif customer.currency is not None:
        currency = customer.currency
    elif pending is not None:
        currency = pending
    elif price is not None:
        currency = price.currency
    else:
        raise InvalidRequest(
            "currency is required: the customer has no currency yet.", code="parameter_missing", param="currency"
        )
    if customer.currency is not None and customer.currency != currency:
        raise InvalidRequest(
            f"The customer bills in {customer.currency}; an invoice item in {currency} cannot be added.",
            code="currency_mismatch",
            param="currency",
        )
    return currency


async def _one_time_price(session: AsyncSession, price_id: str) -> Price:
    price = await get_price(session, price_id)
    if price is None:
        raise ResourceMissing("price", price_id, param="price")
    if not price.active:
        raise InvalidRequest(f"The price {price.id} is archived.", code="price_inactive", param="price")
    if price.type is not PriceType.one_time:
        raise InvalidRequest(
            f"The price {price.id} is recurring; an invoice item takes a one_time price.",
            code="price_not_one_time",
            param="price",
        )
    return price


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
    price = await _one_time_price(session, command.price) if command.price is not None else None
    currency = _currency(command, customer, price, await oldest_pending_currency(session, customer.id))
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
