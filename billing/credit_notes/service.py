"""Credit note writes: what a request would credit (read before the gateway refunds
anything, and again in the issuing command's transaction), issuing and voiding. Never
commits, never calls a payment gateway."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.credit_notes.amounts import (
    CreditableLine,
    CreditedLine,
    CreditNoteTotals,
    check_allocation,
    credit_note_totals,
    custom_line,
    requested_lines,
)
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.invoices.repository import invoice_lines
from billing.invoices.service import stored_taxes, tax_amounts
from billing.invoices.status import InvoiceAction, after
from billing.invoices.totals import LineTaxes
from billing.models import (
    CreditNote,
    CreditNoteLineItem,
    Customer,
    Invoice,
    Payment,
    Refund,
    Subscription,
)
from billing.payments import attempts, refunds
from billing.subscriptions.status import SubscriptionEvent, next_status
from contracts.credit_notes import CreditNoteCreate, CreditNoteIssue
from contracts.enums import CreditNoteStatus, InvoiceStatus
from contracts.refunds import RefundCreate, RefundReason, RefundRecord

CREDITABLE: Final = frozenset({InvoiceStatus.open, InvoiceStatus.uncollectible, InvoiceStatus.paid})
# a refund's reason, from the credit note's (Stripe's refunds know fewer)
_REFUND_REASON: Final[dict[str, RefundReason]] = {"duplicate": "duplicate", "fraudulent": "fraudulent"}


def answers(request: CreditNoteCreate, credit_note: Mapping[str, Any]) -> bool:
    """Whether an issued credit note answers `request` (an Idempotency-Key repeats one
    request): the same invoice, split, reason, memo and metadata."""
    asked = (request.invoice, request.refundAmount, request.creditAmount, request.outOfBandAmount)
    issued = tuple(credit_note[key] for key in ("invoiceId", "refundAmount", "creditAmount", "outOfBandAmount"))
    return (
        asked == issued
        and request.amount in (None, credit_note["total"])
        and (request.reason, request.memo, request.metadata)
        == (credit_note["reason"], credit_note["memo"], credit_note["metadata"])
    )


@dataclass(frozen=True)
class CreditNotePlan:
    invoice: Invoice
    lines: list[CreditedLine]
    totals: CreditNoteTotals
    payment: Payment | None  # the succeeded payment the refund part goes back to


async def _creditable_lines(session: AsyncSession, invoice: Invoice) -> list[CreditableLine]:
    rows = await invoice_lines(session, invoice.id)
    credited = dict(
        (
            await session.execute(
                select(CreditNoteLineItem.invoice_line_item_id, func.sum(CreditNoteLineItem.amount))
                .join(CreditNote, CreditNote.id == CreditNoteLineItem.credit_note_id)
                .where(CreditNote.invoice_id == invoice.id, CreditNote.status == CreditNoteStatus.issued)
                .group_by(CreditNoteLineItem.invoice_line_item_id)
            )
        ).all()
    )
    return [
        CreditableLine(
            row.id,
            row.description,
            row.quantity,
            row.unit_amount_decimal,
            row.amount,
            stored_taxes(row).taxes,
            int(credited.get(row.id) or 0),
        )
        for row in rows
    ]


async def plan_credit_note(session: AsyncSession, request: CreditNoteCreate, *, for_update: bool) -> CreditNotePlan:
    """What `request` would credit, every rule checked; writes nothing. `for_update` locks
    the invoice (the issuing command's transaction), so credit notes of one invoice are
    computed one after the other."""
    invoice = await get_one(session, Invoice, Invoice.id, request.invoice, for_update=for_update)
    if invoice is None:
        raise ResourceMissing("invoice", request.invoice, param="invoice")
    if invoice.status not in CREDITABLE:
        raise InvalidRequest(
            f"This invoice is {invoice.status}: only a finalized invoice (open, uncollectible or paid) "
            "can be credited.",
            code="invoice_not_creditable",
            param="invoice",
        )
    if request.lines is not None:
        lines = requested_lines(request.lines, await _creditable_lines(session, invoice))
    elif request.amount is not None:
        lines = [custom_line("Adjustment", 1, request.amount)]
    else:
        raise InvalidRequest("Give lines or amount.", code="parameter_missing", param="lines")
    totals = credit_note_totals(
        lines,
        amount_remaining=invoice.amount_remaining,
        creditable=invoice.amount_remaining + invoice.amount_paid - invoice.post_payment_credit_notes_amount,
        asked_total=request.amount if request.lines is not None else None,
        param="lines" if request.amount is None else "amount",
    )
    check_allocation(
        totals, refund=request.refundAmount, credit=request.creditAmount, out_of_band=request.outOfBandAmount
    )
    if totals.pre_payment_amount:
        in_flight = await attempts.payment_in_flight(session, invoice.id)
        if in_flight is not None:
            raise InvalidRequest(
                f"A payment of this invoice is in progress ({in_flight}): what is left to pay cannot change "
                "until its outcome is known.",
                code="invoice_payment_in_progress",
                param="invoice",
            )
    payment = None
    if request.refundAmount:
        payment, _ = await refunds.payment_to_refund(
            session, RefundCreate(invoice=invoice.id, amount=request.refundAmount)
        )
    return CreditNotePlan(invoice, lines, totals, payment)


@dataclass(frozen=True)
class IssuedCreditNote:
    credit_note: CreditNote
    invoice: Invoice
    refund: Refund | None
    payment: Payment | None
    paid_invoice: bool  # the credit note left nothing to pay: the invoice is paid now
    subscription: Subscription | None  # the invoice's, when paying it changed its status


async def _record_refund(session: AsyncSession, command: CreditNoteIssue, plan: CreditNotePlan) -> Refund | None:
    if not command.refundAmount:
        if command.refund is not None:
            raise InvalidRequest("A refund came without refundAmount.", code="parameter_invalid", param="refund")
        return None
    made = command.refund
    if made is None or plan.payment is None or made.paymentId != plan.payment.id or made.amount != command.refundAmount:
        raise InvalidRequest(
            "refundAmount needs the gateway's refund of that amount of the invoice's payment "
            "(POST /v1/credit-notes makes it).",
            code="parameter_missing",
            param="refund",
        )
    if made.status in refunds.UNREFUNDED:
        raise InvalidRequest(
            f"Stripe did not refund: {made.failureReason or made.status}.", code="refund_failed", param="refundAmount"
        )
    refund, _, recorded = await refunds.record_refund(
        session,
        RefundRecord(
            paymentId=made.paymentId,
            amount=made.amount,
            status=made.status,
            gatewayRefundId=made.gatewayRefundId,
            failureReason=made.failureReason,
            reason=_REFUND_REASON.get(command.reason or ""),
        ),
    )
    if not recorded:
        raise InvalidRequest(
            f"The refund {refund.id} belongs to another credit note or refund already.",
            code="parameter_invalid",
            param="refund",
        )
    return refund


async def _next_number(session: AsyncSession, invoice: Invoice) -> str:
    """After its invoice's number (Stripe's INV-0001-CN-01): gapless per invoice, as the
    invoice row is locked while it is counted and void credit notes keep theirs."""
    earlier = await session.scalar(
        select(func.count()).select_from(CreditNote).where(CreditNote.invoice_id == invoice.id)
    )
    return f"{invoice.number}-CN-{(earlier or 0) + 1:02d}"


async def issue_credit_note(session: AsyncSession, command: CreditNoteIssue, now: datetime) -> IssuedCreditNote:
    plan = await plan_credit_note(session, command, for_update=True)
    invoice, totals = plan.invoice, plan.totals
    refund = await _record_refund(session, command, plan)
    organization_id = tenant_of(session)
    note = CreditNote(
        id=new_id("credit_note"),
        organization_id=organization_id,
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        number=await _next_number(session, invoice),
        status=CreditNoteStatus.issued,
        type=totals.type,
        currency=invoice.currency,
        subtotal=totals.subtotal,
        tax=totals.tax,
        total=totals.total,
        pre_payment_amount=totals.pre_payment_amount,
        post_payment_amount=totals.post_payment_amount,
        refund_amount=command.refundAmount,
        credit_amount=command.creditAmount,
        out_of_band_amount=command.outOfBandAmount,
        refund_id=refund.id if refund is not None else None,
        reason=command.reason,
        memo=command.memo,
        metadata_=dict(command.metadata),
    )
    session.add(note)
    await session.flush()
    session.add_all(
        CreditNoteLineItem(
            id=new_id("credit_note_line_item"),
            organization_id=organization_id,
            credit_note_id=note.id,
            type=line.type,
            invoice_line_item_id=line.invoice_line_item_id,
            position=position,
            description=line.description,
            quantity=line.quantity,
            unit_amount_decimal=line.unit_amount_decimal,
            amount=line.amount,
            tax_amounts=tax_amounts(LineTaxes(line.amount, line.taxes)),
        )
        for position, line in enumerate(plan.lines)
    )
    invoice.amount_due -= totals.pre_payment_amount
    invoice.amount_remaining -= totals.pre_payment_amount
    invoice.pre_payment_credit_notes_amount += totals.pre_payment_amount
    invoice.post_payment_credit_notes_amount += totals.post_payment_amount
    if command.creditAmount:
        customer = await get_one(session, Customer, Customer.id, invoice.customer_id, for_update=True)
        assert customer is not None  # an invoice's customer is kept (Restrict)
        customer.balance -= command.creditAmount  # negative: credit the customer holds
    paid_invoice = totals.pre_payment_amount > 0 and invoice.amount_remaining == 0
    subscription = None
    if paid_invoice:  # Stripe: a credit note that leaves nothing to pay pays the invoice
        invoice.status = after(invoice.status, InvoiceAction.pay)
        invoice.paid_at = now
        subscription = await _activated_subscription(session, invoice)
    await session.flush()
    return IssuedCreditNote(note, invoice, refund, plan.payment if refund else None, paid_invoice, subscription)


async def _activated_subscription(session: AsyncSession, invoice: Invoice) -> Subscription | None:
    """The invoice's subscription when its being paid changes its status (incomplete or
    past_due -> active), as a paid attempt would."""
    if invoice.subscription_id is None:
        return None
    subscription = await get_one(session, Subscription, Subscription.id, invoice.subscription_id, for_update=True)
    if subscription is None:
        return None
    before = subscription.status
    subscription.status = next_status(subscription.status, SubscriptionEvent.invoice_paid)
    return subscription if subscription.status != before else None


@dataclass(frozen=True)
class VoidedCreditNote:
    credit_note: CreditNote
    invoice: Invoice


async def void_credit_note(session: AsyncSession, credit_note_id: str, now: datetime) -> VoidedCreditNote:
    """issued -> void, undoing it: the amount it took off the invoice is due again and the
    credit it gave the customer's balance is taken back. One that refunded money cannot be
    voided (the money is gone), nor one whose invoice was paid or voided since."""
    note = await get_one(session, CreditNote, CreditNote.id, credit_note_id, for_update=True)
    if note is None:
        raise ResourceMissing("credit_note", credit_note_id)
    invoice = await get_one(session, Invoice, Invoice.id, note.invoice_id, for_update=True)
    assert invoice is not None  # a credit note's invoice is kept (Restrict)
    refusal = None
    if note.status is CreditNoteStatus.void:
        refusal = "This credit note is void already."
    elif note.refund_amount:
        refusal = f"This credit note refunded {note.refund_amount}; a refund cannot be undone, so it stays issued."
    elif note.pre_payment_amount and invoice.status not in (InvoiceStatus.open, InvoiceStatus.uncollectible):
        refusal = (
            f"This credit note reduced what was left to pay on an invoice that is {invoice.status} now; "
            "it stays issued."
        )
    if refusal is not None:
        raise InvalidRequest(refusal, code="credit_note_not_voidable")
    note.status = CreditNoteStatus.void
    note.voided_at = now
    invoice.amount_due += note.pre_payment_amount
    invoice.amount_remaining += note.pre_payment_amount
    invoice.pre_payment_credit_notes_amount -= note.pre_payment_amount
    invoice.post_payment_credit_notes_amount -= note.post_payment_amount
    if note.credit_amount:
        customer = await get_one(session, Customer, Customer.id, note.customer_id, for_update=True)
        assert customer is not None
        customer.balance += note.credit_amount
    await session.flush()
    return VoidedCreditNote(note, invoice)
