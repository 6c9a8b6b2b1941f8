"""Refunds of succeeded payments: what can be refunded (read before the gateway is
called) and the record of the gateway's answer (inside the recording command's
transaction; never commits)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.models import Invoice, Payment, Refund
from contracts.enums import PaymentStatus
from contracts.refunds import RefundCreate, RefundRecord

# a refund in these never moved money: it does not count against what is left to refund
UNREFUNDED: Final = frozenset({"failed", "canceled"})


def asks_for(request: RefundCreate, refund: Mapping[str, Any]) -> bool:
    """Whether a recorded refund answers `request`: a refund of what it names, with its
    amount (when it gave one), reason and metadata (an Idempotency-Key repeats one request)."""
    named = (
        refund["paymentId"] == request.payment
        if request.payment is not None
        else refund["invoiceId"] == request.invoice
    )
    return (
        named
        and request.amount in (None, refund["amount"])
        and (refund["reason"], refund["metadata"]) == (request.reason, request.metadata)
    )


def refundable_amount(payment: Payment) -> int:
    return payment.amount - payment.amount_refunded


async def payment_to_refund(session: AsyncSession, request: RefundCreate) -> tuple[Payment, int]:
    """The succeeded payment the request names (the invoice's, or the payment itself) and
    the amount to refund of it."""
    if (request.invoice is None) == (request.payment is None):
        raise InvalidRequest(
            "Give exactly one of invoice or payment.",
            code="parameter_missing" if request.invoice is None else "parameter_invalid",
            param="invoice",
        )
    if request.payment is not None:
        payment = await get_one(session, Payment, Payment.id, request.payment)
        if payment is None:
            raise ResourceMissing("payment", request.payment, param="payment")
    else:
        assert request.invoice is not None
        invoice = await get_one(session, Invoice, Invoice.id, request.invoice)
        if invoice is None:
            raise ResourceMissing("invoice", request.invoice, param="invoice")
        payment = await session.scalar(
            select(Payment)
            .where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.succeeded)
            .order_by(Payment.created_at.desc())
            .limit(1)
        )
        if payment is None:
            raise InvalidRequest(
                f"The invoice {invoice.id} has no succeeded payment to refund (it is {invoice.status}).",
                code="charge_not_refundable",
                param="invoice",
            )
    return payment, check_refund(payment, request.amount)


def check_refund(payment: Payment, amount: int | None) -> int:
    """The amount to refund: as asked or all that is left; never more than that."""
    param = "payment"
    if payment.status is not PaymentStatus.succeeded or payment.gateway_payment_intent_id is None:
        raise InvalidRequest(
            f"The payment {payment.id} is {payment.status}: only a succeeded payment can be refunded.",
            code="charge_not_refundable",
            param=param,
        )
    left = refundable_amount(payment)
    if left == 0:
        raise InvalidRequest(
            f"The payment {payment.id} is refunded in full already.", code="charge_already_refunded", param=param
        )
    if amount is not None and amount > left:
        raise InvalidRequest(
            f"The refund ({amount}) is more than what is left to refund of the payment ({left}).",
            code="amount_too_large",
            param="amount",
        )
    return left if amount is None else amount


async def record_refund(session: AsyncSession, command: RefundRecord) -> tuple[Refund, Payment, bool]:
    """The refund Stripe made, recorded once; (refund, its payment, whether this recorded it)."""
    payment = await get_one(session, Payment, Payment.id, command.paymentId, for_update=True)
    if payment is None:
        raise ResourceMissing("payment", command.paymentId, param="paymentId")
    earlier = await get_one(session, Refund, Refund.gateway_refund_id, command.gatewayRefundId)
    if earlier is not None:
        return earlier, payment, False
    counted = command.status not in UNREFUNDED
    if counted:
        check_refund(payment, command.amount)
    refund = Refund(
        id=new_id("refund"),
        organization_id=tenant_of(session),
        payment_id=payment.id,
        invoice_id=payment.invoice_id,
        customer_id=payment.customer_id,
        amount=command.amount,
        currency=payment.currency,
        status=command.status,
        reason=command.reason,
        gateway_refund_id=command.gatewayRefundId,
        failure_reason=command.failureReason,
        metadata_=dict(command.metadata),
    )
    session.add(refund)
    if counted:
        payment.amount_refunded += command.amount
    await session.flush()
    return refund, payment, True


async def get_refund(session: AsyncSession, refund_id: str) -> Refund | None:
    return await get_one(session, Refund, Refund.id, refund_id)


async def list_refunds(
    session: AsyncSession, page: PageRequest, *, payment: str | None = None, invoice: str | None = None
) -> Page[Refund]:
    tenant_of(session)
    statement = select(Refund)
    if payment is not None:
        statement = statement.where(Refund.payment_id == payment)
    if invoice is not None:
        statement = statement.where(Refund.invoice_id == invoice)
    return await paginate(session, statement, Refund, page, "refund")
