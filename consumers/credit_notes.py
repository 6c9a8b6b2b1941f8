"""Credit note commands: issue (with the refund Stripe made for it, recorded once) and
void; each reports the credit note, its invoice's new amounts and what else changed."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clocks import service as clocks
from billing.credit_notes import repository as credit_note_reads
from billing.credit_notes import service
from billing.invoices import repository as invoice_reads
from billing.models import CreditNote, Invoice
from billing.subscriptions import repository as subscription_reads
from consumers.registry import Applied, CommandRouter
from contracts.credit_notes import CreditNoteDetails, CreditNoteIssue, CreditNoteVoid
from contracts.events import (
    CREDIT_NOTE_CREATED,
    CREDIT_NOTE_VOIDED,
    INVOICE_PAID,
    INVOICE_UPDATED,
    PAYMENT_UPDATED,
    REFUND_CREATED,
    SUBSCRIPTION_UPDATED,
    DomainEvent,
    EventType,
)
from contracts.invoices import InvoiceDetails
from contracts.resources import Payment, Refund

router = CommandRouter()


async def _applied(
    session: AsyncSession,
    note: CreditNote,
    invoice: Invoice,
    event: EventType[CreditNoteDetails],
    invoice_event: EventType[InvoiceDetails],
) -> Applied[CreditNoteDetails]:
    (details,) = await credit_note_reads.details(session, [note])
    (invoice_details,) = await invoice_reads.details(session, [invoice])
    resource = details.model_dump(mode="json")
    events: list[DomainEvent] = [event.of(resource), invoice_event.of(invoice_details.model_dump(mode="json"))]
    return Applied("credit_note", resource, events)


@router.handles(CreditNoteIssue)
async def issue(session: AsyncSession, command: CreditNoteIssue) -> Applied[CreditNoteDetails]:
    issued = await service.issue_credit_note(session, command, await clocks.now_for(session, Invoice, command.invoice))
    invoice_event = INVOICE_PAID if issued.paid_invoice else INVOICE_UPDATED
    applied = await _applied(session, issued.credit_note, issued.invoice, CREDIT_NOTE_CREATED, invoice_event)
    if issued.refund is not None and issued.payment is not None:
        applied.events.append(REFUND_CREATED.of(Refund.model_validate(issued.refund).model_dump(mode="json")))
        applied.events.append(PAYMENT_UPDATED.of(Payment.model_validate(issued.payment).model_dump(mode="json")))
    if issued.subscription is not None:
        (subscription,) = await subscription_reads.details(session, [issued.subscription])
        applied.events.append(SUBSCRIPTION_UPDATED.of(subscription.model_dump(mode="json")))
    return applied


@router.handles(CreditNoteVoid)
async def void(session: AsyncSession, command: CreditNoteVoid) -> Applied[CreditNoteDetails]:
    voided = await service.void_credit_note(session, command.id, await clocks.now_for(session, CreditNote, command.id))
    return await _applied(session, voided.credit_note, voided.invoice, CREDIT_NOTE_VOIDED, INVOICE_UPDATED)
