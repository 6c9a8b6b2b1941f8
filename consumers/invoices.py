"""Invoice commands: pay (a new attempt, for the payment worker) and a payment attempt's
outcome, applied to the payment, its invoice and the invoice's subscription
(billing.payments.attempts)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing import clock
from billing.invoices import repository as invoice_reads
from billing.payments import attempts
from billing.subscriptions import repository as subscription_reads
from consumers.registry import Applied, CommandRouter
from contracts.events import (
    INVOICE_PAID,
    INVOICE_PAYMENT_ACTION_REQUIRED,
    INVOICE_PAYMENT_FAILED,
    PAYMENT_CREATED,
    PAYMENT_UPDATED,
    SUBSCRIPTION_UPDATED,
    DomainEvent,
)
from contracts.invoices import InvoiceDetails, InvoicePay, PaymentOutcome
from contracts.resources import Payment

router = CommandRouter()

_INVOICE_EVENT = {
    "succeeded": INVOICE_PAID,
    "failed": INVOICE_PAYMENT_FAILED,
    "requires_action": INVOICE_PAYMENT_ACTION_REQUIRED,
}


async def outcome_events(session: AsyncSession, applied: attempts.AppliedOutcome) -> list[DomainEvent]:
    """What an applied outcome tells: the payment, its invoice's news, its subscription's."""
    if not applied.changed:
        return []
    events = [PAYMENT_UPDATED.of(Payment.model_validate(applied.payment).model_dump(mode="json"))]
    invoice_event = _INVOICE_EVENT.get(applied.payment.status)
    if invoice_event is not None:
        (invoice,) = await invoice_reads.details(session, [applied.invoice])
        events.append(invoice_event.of(invoice.model_dump(mode="json")))
    if applied.subscription is not None and applied.subscription_changed:
        (subscription,) = await subscription_reads.details(session, [applied.subscription])
        events.append(SUBSCRIPTION_UPDATED.of(subscription.model_dump(mode="json")))
    return events


@router.handles(PaymentOutcome)
async def apply_outcome(session: AsyncSession, command: PaymentOutcome) -> Applied[Payment]:
    applied = await attempts.apply_outcome(session, command, clock.now())
    payment = Payment.model_validate(applied.payment).model_dump(mode="json")
    return Applied("payment", payment, await outcome_events(session, applied))


@router.handles(InvoicePay)
async def pay(session: AsyncSession, command: InvoicePay) -> Applied[InvoiceDetails]:
    requested = await attempts.pay_invoice(session, command.id, command.paymentMethod)
    (invoice,) = await invoice_reads.details(session, [requested.invoice])
    payment = Payment.model_validate(requested.payment).model_dump(mode="json")
    resource = invoice.model_dump(mode="json")
    return Applied("invoice", resource, [PAYMENT_CREATED.of(payment)])
