"""`paymentBehavior: error_if_incomplete`: a new subscription is answered only once its
first payment is known. The payment worker charges it after the creating command commits
(never inside it), so the request waits for the attempt's outcome: paid, the subscription
(active) is answered; declined or needing 3-D Secure, the subscription is ended
(incomplete_expired, its invoice voided, by the cancel command under a key derived from
the subscription, so a retried request ends it once) and the answer is Stripe's 402."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from litestar import Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from api.bus import CommandBus
from billing.db.sessions import tenant_session
from billing.errors import BillingError, ServiceUnavailable
from billing.payments.repository import latest_attempt
from billing.subscriptions.repository import get_subscription
from contracts.enums import PaymentStatus, SubscriptionStatus
from contracts.subscriptions import SubscriptionCancel

_WAITING: Final = frozenset({SubscriptionStatus.incomplete, SubscriptionStatus.incomplete_expired})
_POLL_SECONDS: Final = 0.1


class FirstPaymentFailed(BillingError):
    type = "card_error"
    status = 402


def _refusal(status: PaymentStatus, failure_code: str | None, decline_code: str | None, message: str | None) -> str:
    if status is PaymentStatus.requires_action:
        return "The first payment needs the customer's authentication (3-D Secure); error_if_incomplete refuses it."
    reason = f" ({decline_code})" if decline_code else ""
    return f"The first payment failed{reason}: {message or failure_code or 'declined'}"


async def settled_or_refused(
    response: Response[Any],
    caller: Caller,
    bus: CommandBus,
    sessions: async_sessionmaker[AsyncSession],
    wait_seconds: float,
) -> Response[Any]:
    """`response` (a created subscription) once its first payment succeeded, refreshed;
    else the subscription ended and a 402 raised. Within `wait_seconds`, or 503."""
    created = response.content
    if SubscriptionStatus(created["status"]) not in _WAITING:
        return response  # nothing to charge (a trial, nothing due, send_invoice)
    deadline = time.monotonic() + wait_seconds
    while True:
        async with tenant_session(sessions, caller.organization_id) as session:
            payment = await latest_attempt(session, created["latestInvoice"])
            subscription = await get_subscription(session, created["id"])
        assert payment is not None and subscription is not None  # error_if_incomplete records the attempt
        if payment.status is PaymentStatus.succeeded:
            return Response(subscription.model_dump(mode="json"), status_code=201, headers=response.headers)
        if payment.status in (PaymentStatus.failed, PaymentStatus.requires_action):
            break
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"The first payment of {created['id']} has no outcome yet; the subscription stays incomplete "
                "until it has (GET /v1/subscriptions/{id}).",
                code="payment_outcome_pending",
            )
        await asyncio.sleep(_POLL_SECONDS)
    await bus.execute(
        caller.organization_id,
        caller.actor,
        SubscriptionCancel(id=created["id"]),
        f"error_if_incomplete:{created['id']}",
    )
    raise FirstPaymentFailed(
        _refusal(payment.status, payment.failure_code, payment.decline_code, payment.failure_message),
        code=(
            "invoice_payment_intent_requires_action"
            if payment.status is PaymentStatus.requires_action
            else payment.failure_code or "card_declined"
        ),
    )
