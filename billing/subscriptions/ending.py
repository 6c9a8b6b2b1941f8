"""A subscription's end: canceled at a moment, with nothing left scheduled to cancel it."""

from __future__ import annotations

from datetime import datetime

from billing.models import Subscription
from billing.subscriptions.status import SubscriptionEvent, next_status


def end_canceled(subscription: Subscription, at: datetime, reason: str | None = None) -> None:
    """canceled (or incomplete_expired, for an incomplete one) as of `at`; `reason` is kept
    as the cancellation reason when given."""
    subscription.status = next_status(subscription.status, SubscriptionEvent.canceled)
    subscription.canceled_at = subscription.ended_at = at
    subscription.cancel_at_period_end, subscription.cancel_at = False, None
    if reason is not None:
        subscription.cancellation_reason = reason
