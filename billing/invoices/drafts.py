"""A renewal's draft, finalized by the scheduler once the organization's draft period is over
(`invoice.finalize_draft`): its metered lines priced at the usage the scheduler read from
ClickHouse (billing/scheduling/usage.py), the invoice's taxes and totals computed again,
then finalized and charged as the subscription's invoices are (subscriptions.service.collect).

The usage is read when the draft period ends, not when the period does: usage events of
the period that reach ClickHouse within the draft period are billed (the documented
cut-off); later ones are not. The quantities travel in the command, so the invoice is
what the command says, however often it is delivered."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.repository import get_price
from billing.db.sessions import get_one
from billing.errors import InvalidRequest, ResourceMissing
from billing.invoices.lines import usage_line
from billing.invoices.repository import invoice_lines
from billing.invoices.service import stored_taxes, tax_amounts
from billing.invoices.totals import invoice_totals, line_taxes
from billing.models import Invoice, InvoiceLineItem, Payment, Subscription
from billing.payments.repository import get_live_customer
from billing.subscriptions.changes import billed_item
from billing.subscriptions.periods import Period
from billing.subscriptions.service import collect
from billing.tax_rates.repository import subscription_tax_rates
from contracts.enums import InvoiceStatus, UsageType
from contracts.invoices import InvoiceFinalizeDraft


async def _price_usage(session: AsyncSession, invoice: Invoice, row: InvoiceLineItem, quantity: int) -> None:
    price = await get_price(session, row.price_id) if row.price_id is not None else None
    if price is None or price.recurring_usage_type is not UsageType.metered or row.subscription_item_id is None:
        raise InvalidRequest(f"Line {row.id} is not a metered item's line.", code="parameter_invalid", param="usage")
    billed = await billed_item(session, row.subscription_item_id, price, quantity)
    line = usage_line(billed.item, invoice.currency, Period(row.period_start, row.period_end), quantity)
    row.quantity, row.amount, row.description = line.quantity, line.amount, line.description
    row.unit_amount_decimal, row.breakdown = line.unit_amount_decimal, line.breakdown


async def finalize_draft(
    session: AsyncSession, command: InvoiceFinalizeDraft, now: datetime
) -> tuple[Invoice, Payment | None, bool]:
    """The invoice, the payment its finalization asks for, and whether this finalized it."""
    invoice = await get_one(session, Invoice, Invoice.id, command.id, for_update=True)
    if invoice is None:
        raise ResourceMissing("invoice", command.id)
    if (
        invoice.status is not InvoiceStatus.draft
        or invoice.automatically_finalizes_at != command.automaticallyFinalizesAt
    ):
        return invoice, None, False  # finalized (by hand, or by a repeat) or rescheduled since
    if now < command.automaticallyFinalizesAt:
        raise InvalidRequest(
            f"The draft {invoice.id} is finalized at {command.automaticallyFinalizesAt.isoformat()}, not before.",
            code="invoice_not_due",
        )
    if invoice.subscription_id is None:
        raise InvalidRequest("Only a subscription's draft is finalized by the scheduler.", code="invoice_not_editable")
    rows = await invoice_lines(session, invoice.id)
    by_id = {row.id: row for row in rows}
    rates = await subscription_tax_rates(session, invoice.subscription_id)
    for index, usage in enumerate(command.usage):
        row = by_id.get(usage.line)
        if row is None:
            raise InvalidRequest(
                f"No line {usage.line} on invoice {invoice.id}.", code="resource_missing", param=f"usage[{index}][line]"
            )
        await _price_usage(session, invoice, row, usage.quantity)
        row.tax_amounts = tax_amounts(line_taxes(row.amount, rates.for_item(row.subscription_item_id)))
    totals = invoice_totals([stored_taxes(row) for row in rows])
    invoice.subtotal, invoice.tax, invoice.total = totals.subtotal, totals.tax, totals.total
    invoice.amount_due, invoice.amount_remaining = totals.amount_due, totals.amount_remaining
    invoice.automatically_finalizes_at = None
    subscription = await get_one(session, Subscription, Subscription.id, invoice.subscription_id, for_update=True)
    customer = await get_live_customer(session, invoice.customer_id, for_update=True)
    if subscription is None or customer is None:
        raise InvalidRequest(
            "This draft's subscription or customer was deleted; finalize it by hand.", code="invoice_not_editable"
        )
    payment = await collect(session, subscription, invoice, rows, customer, now)
    return invoice, payment, True
