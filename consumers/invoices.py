"""Invoice commands: one-off invoices and their invoice items (create, finalize, void,
mark uncollectible, delete a draft), pay (a new attempt, for the payment worker) and a
payment attempt's outcome, applied to the payment, its invoice and the invoice's
subscription (billing.payments.attempts)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clocks import service as clocks
from billing.errors import ResourceMissing
from billing.invoices import drafts
from billing.invoices import items as invoice_items
from billing.invoices import repository as invoice_reads
from billing.invoices import service as invoices
from billing.models import Customer as CustomerRow
from billing.models import Invoice
from billing.models import Payment as PaymentRow
from billing.payments import attempts, retries
from billing.subscriptions import repository as subscription_reads
from consumers.registry import Applied, CommandRouter
from consumers.subscriptions import finalized_invoice_events
from contracts.enums import InvoiceStatus, SubscriptionStatus
from contracts.events import (
    INVOICE_CREATED,
    INVOICE_DELETED,
    INVOICE_FINALIZED,
    INVOICE_ITEM_CREATED,
    INVOICE_ITEM_DELETED,
    INVOICE_MARKED_UNCOLLECTIBLE,
    INVOICE_PAID,
    INVOICE_PAYMENT_ACTION_REQUIRED,
    INVOICE_PAYMENT_FAILED,
    INVOICE_VOIDED,
    PAYMENT_CREATED,
    PAYMENT_UPDATED,
    SUBSCRIPTION_DELETED,
    SUBSCRIPTION_UPDATED,
    DomainEvent,
    EventType,
)
from contracts.invoice_items import InvoiceItemCreate, InvoiceItemDelete
from contracts.invoices import (
    InvoiceCreate,
    InvoiceDelete,
    InvoiceDetails,
    InvoiceFinalize,
    InvoiceFinalizeDraft,
    InvoiceMarkUncollectible,
    InvoicePay,
    InvoiceRetryPayment,
    InvoiceVoid,
    PaymentOutcome,
)
from contracts.resources import InvoiceItem, Payment

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
        if applied.retries_ended and invoice.status is InvoiceStatus.uncollectible:
            events.append(INVOICE_MARKED_UNCOLLECTIBLE.of(invoice.model_dump(mode="json")))
    if applied.subscription is not None and applied.subscription_changed:
        (subscription,) = await subscription_reads.details(session, [applied.subscription])
        ended = subscription.status is SubscriptionStatus.canceled
        events.append(
            (SUBSCRIPTION_DELETED if ended else SUBSCRIPTION_UPDATED).of(subscription.model_dump(mode="json"))
        )
    return events


async def retried_with_new_default(session: AsyncSession, customer: CustomerRow) -> list[DomainEvent]:
    """A customer's new default payment method tries its open past_due invoices at once."""
    payments = await retries.retry_with_new_default(session, customer)
    return [PAYMENT_CREATED.of(Payment.model_validate(payment).model_dump(mode="json")) for payment in payments]


@router.handles(PaymentOutcome)
async def apply_outcome(session: AsyncSession, command: PaymentOutcome) -> Applied[Payment]:
    applied = await attempts.apply_outcome(session, command, await clocks.now_for(session, PaymentRow, command.payment))
    payment = Payment.model_validate(applied.payment).model_dump(mode="json")
    return Applied("payment", payment, await outcome_events(session, applied))


@router.handles(InvoiceRetryPayment)
async def retry_payment(session: AsyncSession, command: InvoiceRetryPayment) -> Applied[InvoiceDetails]:
    invoice, payment = await retries.retry_payment(session, command, await clocks.now_for(session, Invoice, command.id))
    (details,) = await invoice_reads.details(session, [invoice])
    events = [] if payment is None else [PAYMENT_CREATED.of(Payment.model_validate(payment).model_dump(mode="json"))]
    return Applied("invoice", details.model_dump(mode="json"), events)


@router.handles(InvoicePay)
async def pay(session: AsyncSession, command: InvoicePay) -> Applied[InvoiceDetails]:
    requested = await attempts.pay_invoice(session, command.id, command.paymentMethod)
    (invoice,) = await invoice_reads.details(session, [requested.invoice])
    payment = Payment.model_validate(requested.payment).model_dump(mode="json")
    resource = invoice.model_dump(mode="json")
    return Applied("invoice", resource, [PAYMENT_CREATED.of(payment)])


async def _invoice(
    session: AsyncSession, invoice: Invoice, *events: EventType[InvoiceDetails]
) -> Applied[InvoiceDetails]:
    (details,) = await invoice_reads.details(session, [invoice])
    resource = details.model_dump(mode="json")
    return Applied("invoice", resource, [event.of(resource) for event in events])


@router.handles(InvoiceItemCreate)
async def create_item(session: AsyncSession, command: InvoiceItemCreate) -> Applied[InvoiceItem]:
    item = InvoiceItem.model_validate(
        await invoice_items.create_invoice_item(
            session, command, await clocks.now_for_customer(session, command.customer)
        )
    )
    resource = item.model_dump(mode="json")
    return Applied("invoice_item", resource, [INVOICE_ITEM_CREATED.of(resource)])


@router.handles(InvoiceItemDelete)
async def delete_item(session: AsyncSession, command: InvoiceItemDelete) -> Applied[InvoiceItem]:
    item = InvoiceItem.model_validate(await invoice_items.delete_invoice_item(session, command.id))
    resource = item.model_dump(mode="json")
    return Applied("invoice_item", resource, [INVOICE_ITEM_DELETED.of(resource)])


@router.handles(InvoiceCreate)
async def create(session: AsyncSession, command: InvoiceCreate) -> Applied[InvoiceDetails]:
    created = await invoices.create_one_off(session, command, await clocks.now_for_customer(session, command.customer))
    return await _invoice(session, created, INVOICE_CREATED)


@router.handles(InvoiceFinalize)
async def finalize(session: AsyncSession, command: InvoiceFinalize) -> Applied[InvoiceDetails]:
    finalized = await invoices.finalize_invoice(session, command.id, await clocks.now_for(session, Invoice, command.id))
    paid = [INVOICE_PAID] if finalized.invoice.status is InvoiceStatus.paid else []
    applied = await _invoice(session, finalized.invoice, INVOICE_FINALIZED, *paid)
    if finalized.payment is not None:
        applied.events.append(PAYMENT_CREATED.of(Payment.model_validate(finalized.payment).model_dump(mode="json")))
    return applied


@router.handles(InvoiceFinalizeDraft)
async def finalize_draft(session: AsyncSession, command: InvoiceFinalizeDraft) -> Applied[InvoiceDetails]:
    invoice, payment, finalized = await drafts.finalize_draft(
        session, command, await clocks.now_for(session, Invoice, command.id)
    )
    (details,) = await invoice_reads.details(session, [invoice])
    events = finalized_invoice_events(details) if finalized else []
    if payment is not None:
        events.append(PAYMENT_CREATED.of(Payment.model_validate(payment).model_dump(mode="json")))
    return Applied("invoice", details.model_dump(mode="json"), events)


@router.handles(InvoiceVoid)
async def void(session: AsyncSession, command: InvoiceVoid) -> Applied[InvoiceDetails]:
    return await _invoice(
        session,
        await invoices.void_invoice(session, command.id, await clocks.now_for(session, Invoice, command.id)),
        INVOICE_VOIDED,
    )


@router.handles(InvoiceMarkUncollectible)
async def mark_uncollectible(session: AsyncSession, command: InvoiceMarkUncollectible) -> Applied[InvoiceDetails]:
    invoice = await invoices.mark_uncollectible(session, command.id)
    return await _invoice(session, invoice, INVOICE_MARKED_UNCOLLECTIBLE)


@router.handles(InvoiceDelete)
async def delete(session: AsyncSession, command: InvoiceDelete) -> Applied[InvoiceDetails]:
    """Answers the draft as it was (its lines included), as the invoice.deleted event does."""
    invoice = await invoice_reads.get_invoice(session, command.id)
    if invoice is None:
        raise ResourceMissing("invoice", command.id)
    await invoices.delete_draft(session, command.id)
    resource = invoice.model_dump(mode="json")
    return Applied("invoice", resource, [INVOICE_DELETED.of(resource)])
