"""Invoice writes: drafts from lines, finalization. Called inside a command's transaction;
never commits, never calls a payment gateway."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import tenant_of
from billing.ids import new_id
from billing.invoices.lines import DraftLine
from billing.invoices.numbering import InvoiceNumbering, take_invoice_number
from billing.invoices.status import InvoiceAction, after
from billing.invoices.totals import invoice_totals, line_taxes
from billing.models import Customer, Invoice, InvoiceLineItem, Subscription
from billing.subscriptions.periods import Period
from contracts.enums import CollectionMethod, InvoiceStatus


def _line_row(organization_id: str, invoice: Invoice, position: int, line: DraftLine) -> InvoiceLineItem:
    return InvoiceLineItem(
        id=new_id("invoice_line_item"),
        organization_id=organization_id,
        invoice_id=invoice.id,
        position=position,
        subscription_item_id=line.subscription_item_id,
        price_id=line.price_id,
        description=line.description,
        quantity=line.quantity,
        unit_amount_decimal=line.unit_amount_decimal,
        amount=line.amount,
        currency=invoice.currency,
        period_start=line.period.start,
        period_end=line.period.end,
        proration=line.proration,
        breakdown=line.breakdown,
    )


async def create_draft(
    session: AsyncSession,
    customer: Customer,
    lines: Sequence[DraftLine],
    *,
    currency: str,
    period: Period,
    billing_reason: str,
    subscription: Subscription | None = None,
) -> tuple[Invoice, list[InvoiceLineItem]]:
    """A draft invoice with `lines`, its totals computed (the balance is applied at finalization)."""
    organization_id = tenant_of(session)
    totals = invoice_totals([line_taxes(line.amount, ()) for line in lines])
    invoice = Invoice(
        id=new_id("invoice"),
        organization_id=organization_id,
        customer_id=customer.id,
        subscription_id=subscription.id if subscription is not None else None,
        status=InvoiceStatus.draft,
        currency=currency,
        collection_method=subscription.collection_method if subscription else CollectionMethod.charge_automatically,
        billing_reason=billing_reason,
        period_start=period.start,
        period_end=period.end,
        subtotal=totals.subtotal,
        tax=totals.tax,
        total=totals.total,
        amount_due=totals.amount_due,
        amount_remaining=totals.amount_remaining,
    )
    session.add(invoice)
    await session.flush()
    rows = [_line_row(organization_id, invoice, position, line) for position, line in enumerate(lines)]
    session.add_all(rows)
    await session.flush()
    return invoice, rows


async def finalize(
    session: AsyncSession,
    invoice: Invoice,
    lines: Sequence[InvoiceLineItem],
    customer: Customer,
    now: datetime,
    *,
    days_until_due: int | None = None,
) -> Invoice:
    """draft -> open with a gapless number, the customer's balance applied; an invoice with
    nothing left to pay is paid at once, as Stripe does."""
    invoice.status = after(invoice.status, InvoiceAction.finalize)
    totals = invoice_totals([line_taxes(line.amount, ()) for line in lines], customer_balance=customer.balance)
    invoice.number = await take_invoice_number(session, customer, InvoiceNumbering.organization)
    invoice.starting_balance = totals.starting_balance
    invoice.ending_balance = totals.ending_balance
    invoice.amount_due = totals.amount_due
    invoice.amount_remaining = totals.amount_remaining
    invoice.finalized_at = now
    customer.balance = totals.ending_balance
    if invoice.collection_method is CollectionMethod.send_invoice:
        invoice.due_date = now + timedelta(days=days_until_due or 0)
    if totals.amount_due == 0:
        invoice.status = after(invoice.status, InvoiceAction.pay)
        invoice.paid_at = now
    await session.flush()
    return invoice


async def void_open_invoices(session: AsyncSession, subscription: Subscription, now: datetime) -> Invoice | None:
    """Voids the subscription's open invoice (the first one of an incomplete subscription
    that ends), answering it; None when there is none."""
    invoice = (
        await session.scalars(
            select(Invoice)
            .where(Invoice.subscription_id == subscription.id, Invoice.status == InvoiceStatus.open)
            .order_by(Invoice.created_at.desc())
            .limit(1)
            .with_for_update()
        )
    ).one_or_none()
    if invoice is None:
        return None
    invoice.status = after(invoice.status, InvoiceAction.void)
    invoice.voided_at = now
    await session.flush()
    return invoice
