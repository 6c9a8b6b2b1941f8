"""Invoice writes: drafts from lines, finalization. Called inside a command's transaction;
never commits, never calls a payment gateway."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.invoices.collection import check_collection
from billing.invoices.items import oldest_pending_currency, pending_one_off_items
from billing.invoices.lines import DraftLine, item_line
from billing.invoices.numbering import InvoiceNumbering, take_invoice_number
from billing.invoices.repository import invoice_lines
from billing.invoices.status import InvoiceAction, after, check_deletable
from billing.invoices.totals import LineTaxes, LineTaxRates, TaxLine, invoice_totals, line_taxes
from billing.models import Customer, Invoice, InvoiceLineItem, Payment, Subscription
from billing.payments.attempts import payment_method_for, record_attempt
from billing.payments.repository import get_live_customer
from billing.subscriptions.periods import Period
from billing.tax_rates.repository import subscription_tax_rates
from contracts.enums import CollectionMethod, InvoiceStatus
from contracts.invoices import InvoiceCreate
from contracts.json_shapes import TaxAmount


@dataclass(frozen=True)
class FinalizedInvoice:
    invoice: Invoice
    payment: Payment | None  # the attempt the finalization asks the payment worker for


def tax_amounts(taxes: LineTaxes) -> list[TaxAmount]:
    """A line's taxes as stored on it and answered (Stripe's tax_amounts)."""
    return [
        TaxAmount(
            taxRateId=tax.tax_rate_id, inclusive=tax.inclusive, taxableAmount=tax.taxable_amount, amount=tax.amount
        )
        for tax in taxes.taxes
    ]


def stored_taxes(row: InvoiceLineItem) -> LineTaxes:
    """A line's taxes as computed when its invoice was drafted (rates never change after)."""
    return LineTaxes(
        row.amount,
        tuple(TaxLine(t["taxRateId"], t["inclusive"], t["taxableAmount"], t["amount"]) for t in row.tax_amounts),
    )


def drafted_taxes(lines: Sequence[DraftLine], rates: LineTaxRates) -> list[LineTaxes]:
    """Each line's taxes under `rates`, each rounded once (the draft and its preview)."""
    return [line_taxes(line.amount, rates.for_item(line.subscription_item_id)) for line in lines]


def _line_row(
    organization_id: str, invoice: Invoice, position: int, line: DraftLine, taxes: LineTaxes
) -> InvoiceLineItem:
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
        tax_amounts=tax_amounts(taxes),
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
    collection_method: CollectionMethod | None = None,
) -> tuple[Invoice, list[InvoiceLineItem]]:
    """A draft invoice with `lines`, taxed by the subscription's tax rates, its totals
    computed (the balance is applied at finalization)."""
    organization_id = tenant_of(session)
    rates = await subscription_tax_rates(session, subscription.id) if subscription is not None else LineTaxRates()
    taxes = drafted_taxes(lines, rates)
    totals = invoice_totals(taxes)
    invoice = Invoice(
        id=new_id("invoice"),
        organization_id=organization_id,
        customer_id=customer.id,
        subscription_id=subscription.id if subscription is not None else None,
        status=InvoiceStatus.draft,
        currency=currency,
        collection_method=collection_method
        or (subscription.collection_method if subscription else CollectionMethod.charge_automatically),
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
    rows = [
        _line_row(organization_id, invoice, position, line, line_tax)
        for position, (line, line_tax) in enumerate(zip(lines, taxes, strict=True))
    ]
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
    invoice.automatically_finalizes_at = None  # finalized by hand, or by the scheduler
    totals = invoice_totals([stored_taxes(line) for line in lines], customer_balance=customer.balance)
    invoice.number = await take_invoice_number(session, customer, InvoiceNumbering.organization)
    invoice.starting_balance = totals.starting_balance
    invoice.ending_balance = totals.ending_balance
    invoice.amount_due = totals.amount_due
    invoice.amount_remaining = totals.amount_remaining
    invoice.finalized_at = now
    customer.balance = totals.ending_balance
    if invoice.collection_method is CollectionMethod.send_invoice and (
        days_until_due is not None or not invoice.due_date
    ):
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


# ---------------------------------------------------------------- one-off invoices and their actions


async def create_one_off(session: AsyncSession, command: InvoiceCreate, now: datetime) -> Invoice:
    """A draft of the customer's pending one-off items (billing.invoices.items), in the
    customer's currency (else the oldest pending item's, which then becomes the customer's)."""
    check_collection(command.collectionMethod, command.daysUntilDue)
    customer = await get_live_customer(session, command.customer, for_update=True)
    if customer is None:
        raise ResourceMissing("customer", command.customer, param="customer")
    currency = customer.currency or await oldest_pending_currency(session, customer.id)
    pending = await pending_one_off_items(session, customer.id, currency) if currency else []
    if not pending or currency is None:
        raise InvalidRequest(
            "Nothing to invoice: the customer has no pending invoice items (POST /v1/invoiceitems first).",
            code="invoice_no_customer_line_items",
            param="customer",
        )
    period = Period(min(i.period_start for i in pending), max(i.period_end for i in pending))
    invoice, _ = await create_draft(
        session,
        customer,
        [item_line(item) for item in pending],
        currency=currency,
        period=period,
        billing_reason="manual",
        collection_method=command.collectionMethod,
    )
    invoice.metadata_ = dict(command.metadata)
    if command.daysUntilDue is not None:
        invoice.due_date = now + timedelta(days=command.daysUntilDue)
    for item in pending:
        item.invoice_id = invoice.id
    customer.currency = currency
    await session.flush()
    return invoice


async def _invoice_for_update(session: AsyncSession, invoice_id: str) -> Invoice:
    invoice = await get_one(session, Invoice, Invoice.id, invoice_id, for_update=True)
    if invoice is None:
        raise ResourceMissing("invoice", invoice_id)
    return invoice


async def finalize_invoice(session: AsyncSession, invoice_id: str, now: datetime) -> FinalizedInvoice:
    """draft -> open (or paid, when nothing is due), numbered; charge_automatically with an
    amount due records a payment attempt for the payment worker, as a subscription's does."""
    invoice = await _invoice_for_update(session, invoice_id)
    customer = await get_live_customer(session, invoice.customer_id, for_update=True)
    if customer is None:
        raise InvalidRequest(
            "This invoice's customer was deleted; it cannot be finalized.", code="invoice_not_editable"
        )
    rows = await invoice_lines(session, invoice.id)
    await finalize(session, invoice, rows, customer, now)
    payment = None
    if invoice.status is InvoiceStatus.open and invoice.collection_method is CollectionMethod.charge_automatically:
        subscription = (
            await get_one(session, Subscription, Subscription.id, invoice.subscription_id)
            if invoice.subscription_id
            else None
        )
        method = await payment_method_for(session, customer, subscription)
        if method is not None:  # without one the invoice waits, open, for POST /pay
            payment = await record_attempt(session, invoice, method)
    await session.flush()
    return FinalizedInvoice(invoice, payment)


async def void_invoice(session: AsyncSession, invoice_id: str, now: datetime) -> Invoice:
    invoice = await _invoice_for_update(session, invoice_id)
    invoice.status = after(invoice.status, InvoiceAction.void)
    invoice.voided_at = now
    await session.flush()
    return invoice


async def mark_uncollectible(session: AsyncSession, invoice_id: str) -> Invoice:
    invoice = await _invoice_for_update(session, invoice_id)
    invoice.status = after(invoice.status, InvoiceAction.mark_uncollectible)
    await session.flush()
    return invoice


async def delete_draft(session: AsyncSession, invoice_id: str) -> Invoice:
    """Only a draft; its lines go with it and its invoice items are pending again (the
    foreign keys: lines cascade, items set null)."""
    invoice = await _invoice_for_update(session, invoice_id)
    check_deletable(invoice.status)
    await session.delete(invoice)
    await session.flush()
    return invoice
