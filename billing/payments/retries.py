"""Dunning's attempts: the schedule's retries (`invoice.retry_payment`, published by the
scheduler at the invoice's `nextPaymentAttempt`) and the retry at once that a customer's
new default payment method sets off. Both record an attempt for the payment worker, as
every charge is; its outcome schedules the next retry or ends them
(billing/payments/attempts.after_failure)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import get_one
from billing.errors import InvalidRequest, ResourceMissing
from billing.models import Customer, CustomerPaymentMethod, Invoice, Payment, Subscription
from billing.payments import attempts
from billing.payments.repository import get_live_customer
from billing.subscriptions.status import TERMINAL
from contracts.enums import InvoiceStatus, SubscriptionStatus
from contracts.invoices import InvoiceRetryPayment

# what a customer's new default payment method is tried on at once (Stripe's behaviour)
_BEHIND: Final = (SubscriptionStatus.past_due, SubscriptionStatus.unpaid)


async def retry_payment(
    session: AsyncSession, command: InvoiceRetryPayment, now: datetime
) -> tuple[Invoice, Payment | None]:
    """The invoice, and the attempt this retry recorded (None: nothing to retry)."""
    invoice = await get_one(session, Invoice, Invoice.id, command.id, for_update=True)
    if invoice is None:
        raise ResourceMissing("invoice", command.id)
    if invoice.status is not InvoiceStatus.open or invoice.next_payment_attempt != command.nextPaymentAttempt:
        return invoice, None  # paid, retried or rescheduled since
    if now < command.nextPaymentAttempt:
        raise InvalidRequest(
            f"The retry of {invoice.id} is due at {command.nextPaymentAttempt.isoformat()}, not before.",
            code="invoice_retry_not_due",
            param="nextPaymentAttempt",
        )
    invoice.next_payment_attempt = None
    subscription = (
        await get_one(session, Subscription, Subscription.id, invoice.subscription_id, for_update=True)
        if invoice.subscription_id
        else None
    )
    if subscription is None or subscription.status in TERMINAL:
        invoice.retries_ended_at = now  # retries stop the moment a subscription ends (polar#6542)
        return invoice, None
    if await attempts.payment_in_flight(session, invoice.id) is not None:
        return invoice, None  # an attempt asked for by hand is at the gateway: its outcome reschedules
    invoice.scheduled_retries += 1
    customer = await get_live_customer(session, invoice.customer_id)
    method = await attempts.payment_method_for(session, customer, subscription) if customer else None
    if method is None:  # nothing to charge: this retry failed as a declined one would
        await attempts.after_failure(session, invoice, subscription, now, hard_decline=False)
        return invoice, None
    return invoice, await attempts.record_attempt(session, invoice, method)


async def retry_with_new_default(session: AsyncSession, customer: Customer) -> list[Payment]:
    """An attempt at once, with the customer's new default payment method, on each open
    invoice of its past_due or unpaid subscriptions that no attempt is under way for. Not
    one of the schedule's retries: the schedule goes on if it fails."""
    if customer.default_payment_method_id is None:
        return []
    method = await get_one(session, CustomerPaymentMethod, CustomerPaymentMethod.id, customer.default_payment_method_id)
    assert method is not None  # a customer's default payment method is its own (a foreign key)
    behind = (
        await session.scalars(
            select(Invoice)
            .join(
                Subscription,
                and_(
                    Subscription.organization_id == Invoice.organization_id, Subscription.id == Invoice.subscription_id
                ),
            )
            .where(
                Invoice.customer_id == customer.id,
                Invoice.status == InvoiceStatus.open,
                Invoice.amount_remaining > 0,
                Subscription.status.in_(_BEHIND),
                ~exists().where(Payment.invoice_id == Invoice.id, Payment.status.in_(attempts.IN_FLIGHT)),
            )
            .order_by(Invoice.created_at)
            .with_for_update(of=Invoice)
        )
    ).all()
    return [await attempts.record_attempt(session, invoice, method) for invoice in behind]
