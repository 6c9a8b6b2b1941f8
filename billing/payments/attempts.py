"""Payment attempts on invoices: recorded inside a command's transaction, charged by the
payment worker after commit, their outcome applied by a command of its own.

Never a gateway call inside a transaction: `record_attempt` only writes the attempt (and
the command emits payment.created); the worker (consumers/payment_worker.py) calls the
gateway with the attempt's idempotency key, derived from the invoice and the attempt
number, so a crash before the outcome is applied repeats the same call and the gateway
answers the same PaymentIntent; `apply_outcome` then settles the payment, the invoice and
the subscription once, whether the answer comes from the worker or again from a webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.invoices import dunning
from billing.invoices.status import InvoiceAction, after
from billing.models import Customer, CustomerPaymentMethod, Invoice, Organization, Payment, Subscription
from billing.organizations.service import own_column
from billing.payments.gateway import PaymentResult
from billing.subscriptions.ending import end_canceled
from billing.subscriptions.status import SubscriptionEvent, next_status
from contracts.enums import InvoiceStatus, PaymentStatus, SubscriptionStatus
from contracts.invoices import PaymentOutcome
from contracts.payments import RecordPaymentFailed, RecordPaymentSucceeded


def idempotency_key(invoice_id: str, attempt: int) -> str:
    """What the gateway dedupes an attempt on: the same invoice and attempt, the same charge."""
    return f"{invoice_id}:attempt:{attempt}"


def outcome_of(payment_id: str, result: PaymentResult) -> PaymentOutcome:
    """The command for what the gateway answered (Stripe's PaymentIntent statuses)."""
    if result.succeeded:
        status = "succeeded"
    elif result.status == "processing":
        status = "processing"
    elif result.status == "requires_action":
        status = "requires_action"
    else:  # requires_payment_method (declined), canceled, or anything that did not charge
        status = "failed"
    return PaymentOutcome(
        payment=payment_id,
        status=status,
        gatewayPaymentIntentId=result.id,
        failureCode=result.failure_code if status == "failed" else None,
        declineCode=result.decline_code if status == "failed" else None,
        failureMessage=(result.failure_message or f"The payment was not completed ({result.status}).")[:1000]
        if status == "failed"
        else None,
        nextActionUrl=result.next_action_url if status == "requires_action" else None,
    )


async def payment_method_for(
    session: AsyncSession, customer: Customer, subscription: Subscription | None
) -> CustomerPaymentMethod | None:
    """Stripe's order: the subscription's default payment method, else the customer's."""
    for candidate in (
        subscription.default_payment_method_id if subscription else None,
        customer.default_payment_method_id,
    ):
        if candidate is not None:
            method = await get_one(session, CustomerPaymentMethod, CustomerPaymentMethod.id, candidate)
            if method is not None and method.customer_id == customer.id:
                return method
    return None


async def record_attempt(session: AsyncSession, invoice: Invoice, method: CustomerPaymentMethod) -> Payment:
    """The next attempt to collect `invoice`'s amount remaining with `method` (pending)."""
    organization_id = tenant_of(session)
    if invoice.status not in (InvoiceStatus.open, InvoiceStatus.uncollectible):
        after(invoice.status, InvoiceAction.pay)  # raises the Stripe-shaped refusal
    attempts = await session.scalar(select(func.count()).select_from(Payment).where(Payment.invoice_id == invoice.id))
    attempt = (attempts or 0) + 1
    payment = Payment(
        id=new_id("payment"),
        organization_id=organization_id,
        customer_id=invoice.customer_id,
        invoice_id=invoice.id,
        payment_method_id=method.id,
        amount=invoice.amount_remaining,
        currency=invoice.currency,
        status=PaymentStatus.pending,
        attempt_number=attempt,
        idempotency_key=idempotency_key(invoice.id, attempt),
    )
    session.add(payment)
    invoice.attempt_count = attempt
    await session.flush()
    return payment


@dataclass(frozen=True)
class AppliedOutcome:
    payment: Payment
    invoice: Invoice
    subscription: Subscription | None
    changed: bool  # False: the outcome was applied before (a repeat from the worker or a webhook)
    subscription_changed: bool
    # this failure spent the dunning schedule (or was a hard decline): what comes after it happened
    retries_ended: bool = False


_SETTLED = frozenset({PaymentStatus.succeeded, PaymentStatus.failed})


async def apply_outcome(session: AsyncSession, outcome: PaymentOutcome, now: datetime) -> AppliedOutcome:
    """Settles the attempt, its invoice and the invoice's subscription (Stripe's rules: a
    paid first invoice activates an incomplete subscription, a paid one recovers a
    past_due or unpaid one; a failure keeps incomplete, makes active past_due)."""
    payment = await get_one(session, Payment, Payment.id, outcome.payment, for_update=True)
    if payment is None:
        raise ResourceMissing("payment", outcome.payment, param="payment")
    invoice = await get_one(session, Invoice, Invoice.id, payment.invoice_id, for_update=True)
    assert invoice is not None  # a payment's invoice is never deleted (Restrict)
    subscription = (
        await get_one(session, Subscription, Subscription.id, invoice.subscription_id, for_update=True)
        if invoice.subscription_id
        else None
    )
    status = PaymentStatus(outcome.status)
    if payment.status in _SETTLED or payment.status is status:
        return AppliedOutcome(payment, invoice, subscription, changed=False, subscription_changed=False)
    payment.status = status
    payment.gateway_payment_intent_id = outcome.gatewayPaymentIntentId or payment.gateway_payment_intent_id
    payment.failure_code, payment.decline_code = outcome.failureCode, outcome.declineCode
    payment.failure_message, payment.next_action_url = outcome.failureMessage, outcome.nextActionUrl
    invoice.gateway_payment_intent_id = payment.gateway_payment_intent_id
    subscription_before = subscription.status if subscription else None
    retries_ended = False
    if status is PaymentStatus.succeeded:
        if invoice.status not in (InvoiceStatus.open, InvoiceStatus.uncollectible):
            raise InvalidRequest(
                f"The invoice {invoice.id} is {invoice.status}; the payment {payment.id} cannot settle it.",
                code="invoice_not_payable",
                param="payment",
            )
        invoice.status = after(invoice.status, InvoiceAction.pay)
        invoice.amount_paid += payment.amount
        invoice.amount_remaining = invoice.amount_due - invoice.amount_paid
        invoice.paid_at = now
        invoice.next_payment_attempt = None  # paid: nothing left to retry
        if subscription is not None:
            subscription.status = next_status(subscription.status, SubscriptionEvent.invoice_paid)
    elif status is PaymentStatus.failed and subscription is not None:
        subscription.status = next_status(subscription.status, SubscriptionEvent.invoice_payment_failed)
        hard = dunning.is_hard_decline(payment.failure_code, payment.decline_code)
        retries_ended = await after_failure(session, invoice, subscription, now, hard_decline=hard)
    await session.flush()
    return AppliedOutcome(
        payment,
        invoice,
        subscription,
        changed=True,
        subscription_changed=subscription is not None and subscription.status != subscription_before,
        retries_ended=retries_ended,
    )


async def after_failure(
    session: AsyncSession, invoice: Invoice, subscription: Subscription, now: datetime, *, hard_decline: bool
) -> bool:
    """Dunning (billing/invoices/dunning.py) after a failed payment of a subscription's
    invoice: the next scheduled retry, or, once they are spent or the decline is hard,
    what the organization says comes after the last one. A first invoice is not retried
    (its subscription expires instead); while a retry is scheduled, a failure of a payment
    asked for by hand changes nothing. Whether this ended the retries."""
    if (
        subscription.status is SubscriptionStatus.incomplete
        or invoice.status is not InvoiceStatus.open
        or invoice.next_payment_attempt is not None
        or invoice.retries_ended_at is not None
    ):
        return False
    settings = await own_column(session, Organization.dunning)
    if not hard_decline:
        retry_at = dunning.next_retry(settings, invoice.scheduled_retries, now)
        if retry_at is not None:
            invoice.next_payment_attempt = retry_at
            return False
    invoice.retries_ended_at = now
    after_last = dunning.after_last_retry(settings)
    if after_last.invoice == "uncollectible":
        invoice.status = after(invoice.status, InvoiceAction.mark_uncollectible)
    if after_last.subscription == "canceled":
        end_canceled(subscription, now, "payment_failed")
    elif after_last.subscription == "unpaid":
        subscription.status = next_status(subscription.status, SubscriptionEvent.retries_exhausted)
    return True


# a payment in these is at the gateway: its outcome is still to come, as a command
IN_FLIGHT: Final = frozenset({PaymentStatus.pending, PaymentStatus.processing})


async def payment_in_flight(session: AsyncSession, invoice_id: str) -> str | None:
    """The id of a payment of the invoice that is at the gateway, if one is."""
    return await session.scalar(
        select(Payment.id).where(Payment.invoice_id == invoice_id, Payment.status.in_(IN_FLIGHT)).limit(1)
    )


@dataclass(frozen=True)
class RequestedPayment:
    invoice: Invoice
    payment: Payment


async def pay_invoice(session: AsyncSession, invoice_id: str, payment_method_id: str | None) -> RequestedPayment:
    """A new attempt on an open or uncollectible invoice (`invoice.pay`), for the worker."""
    invoice = await get_one(session, Invoice, Invoice.id, invoice_id, for_update=True)
    if invoice is None:
        raise ResourceMissing("invoice", invoice_id)
    after(invoice.status, InvoiceAction.pay)  # a draft, paid or void invoice is refused here
    if invoice.amount_remaining <= 0:
        raise InvalidRequest("This invoice has nothing left to pay.", code="invoice_not_payable")
    in_flight = await payment_in_flight(session, invoice.id)
    if in_flight is not None:
        raise InvalidRequest(
            f"A payment of this invoice is already in progress ({in_flight}); its outcome comes first.",
            code="invoice_payment_in_progress",
        )
    customer = await get_one(session, Customer, Customer.id, invoice.customer_id)
    assert customer is not None  # an invoice's customer is kept (Restrict)
    if payment_method_id is not None:
        method = await get_one(session, CustomerPaymentMethod, CustomerPaymentMethod.id, payment_method_id)
        if method is None or method.customer_id != customer.id:
            raise ResourceMissing("payment_method", payment_method_id, param="paymentMethod")
    else:
        subscription = (
            await get_one(session, Subscription, Subscription.id, invoice.subscription_id)
            if invoice.subscription_id
            else None
        )
        found = await payment_method_for(session, customer, subscription)
        if found is None:
            raise InvalidRequest(
                "The customer has no default payment method and none was given: pass paymentMethod.",
                code="invoice_no_payment_method",
                param="paymentMethod",
            )
        method = found
    return RequestedPayment(invoice, await record_attempt(session, invoice, method))


async def attempt_for_gateway_payment(
    session: AsyncSession, payment_id: str | None, gateway_payment_intent_id: str
) -> Payment | None:
    """Our attempt behind a Stripe PaymentIntent: named by the `payment` metadata the worker
    sends (the webhook may come before the worker's answer is applied), else found by the
    PaymentIntent's id. A PaymentIntent that is not ours (made elsewhere) has none."""
    if payment_id:
        payment = await get_one(session, Payment, Payment.id, payment_id)
        if payment is not None and payment.gateway_payment_intent_id in (None, gateway_payment_intent_id):
            return payment
    return (
        await session.scalars(
            select(Payment).where(Payment.gateway_payment_intent_id == gateway_payment_intent_id).limit(1)
        )
    ).one_or_none()


def webhook_outcome(payment_id: str, event: RecordPaymentSucceeded | RecordPaymentFailed) -> PaymentOutcome:
    """Stripe's payment_intent.succeeded / payment_failed as the outcome of our attempt."""
    succeeded = isinstance(event, RecordPaymentSucceeded)
    return PaymentOutcome(
        payment=payment_id,
        status="succeeded" if succeeded else "failed",
        gatewayPaymentIntentId=event.gatewayPaymentIntentId,
        failureCode=None if succeeded else (event.failureCode or "payment_failed")[:100],
        declineCode=None if succeeded else event.declineCode,
        failureMessage=None if succeeded else (event.failureMessage or "The payment failed.")[:1000],
    )
