"""`paymentBehavior: error_if_incomplete`: a new subscription is answered only once its
first payment is known (billing.subscriptions.payment_behavior says what it means). The
payment worker charges it after the creating command commits (never inside it), so the
request waits for the attempt's outcome. A refused one ends the subscription by the
cancel command, under a key derived from the subscription, so a retried request ends it
once and is answered the same."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from litestar import Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from api.bus import CommandBus
from billing.db.sessions import tenant_session
from billing.errors import ServiceUnavailable
from billing.payments.repository import latest_attempt
from billing.subscriptions.payment_behavior import first_payment_outcome
from billing.subscriptions.repository import get_subscription
from contracts.enums import SubscriptionStatus
from contracts.subscriptions import SubscriptionCancel

_WAITING: Final = frozenset({SubscriptionStatus.incomplete, SubscriptionStatus.incomplete_expired})
_POLL_SECONDS: Final = 0.1


async def settled_or_refused(
    response: Response[Any],
    caller: Caller,
    bus: CommandBus,
    sessions: async_sessionmaker[AsyncSession],
    wait_seconds: float,
) -> Response[Any]:
    """`response` (a created subscription) once its first payment succeeded, refreshed;
    else the subscription ended and the refusal raised. Within `wait_seconds`, or 503."""
    created = response.content
    if SubscriptionStatus(created["status"]) not in _WAITING:
        return response  # nothing to charge (a trial, nothing due, send_invoice)
    deadline = time.monotonic() + wait_seconds
    while True:
        async with tenant_session(sessions, caller.organization_id) as session:
            payment = await latest_attempt(session, created["latestInvoice"])
            subscription = await get_subscription(session, created["id"])
        assert payment is not None and subscription is not None  # error_if_incomplete records the attempt
        outcome = first_payment_outcome(payment)
        if outcome is not None and outcome.refusal is None:
            return Response(subscription.model_dump(mode="json"), status_code=201, headers=response.headers)
        if outcome is not None:
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
    assert outcome.refusal is not None
    raise outcome.refusal
