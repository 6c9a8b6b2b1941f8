"""When a webhook delivery is tried again, and when a failing endpoint is disabled: pure
rules over moments, with every duration multiplied by a time scale (1 in production; a
test compresses three days into seconds with `BILLING_WEBHOOK_TIME_SCALE`).

The schedule follows Svix's and Stripe's shape: at once, then 5 seconds, 5 minutes, 30
minutes, 2 hours, 5 hours, 10 hours, then every 10 hours until three days have passed
since the event. An endpoint whose every delivery has failed for five days is disabled."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

FIRST_DELAYS: Final = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
THEN_EVERY: Final = timedelta(hours=10)
RETRY_FOR: Final = timedelta(days=3)
DISABLE_AFTER: Final = timedelta(days=5)


def retry_delay(scheduled_attempts: int, scale: float = 1.0) -> timedelta:
    """How long after the `scheduled_attempts`-th attempt (1 = the first) the next one comes."""
    if scheduled_attempts < 1:
        raise ValueError("the first attempt is made at once")
    delay = FIRST_DELAYS[scheduled_attempts - 1] if scheduled_attempts <= len(FIRST_DELAYS) else THEN_EVERY
    return delay * scale


def next_attempt(
    created_at: datetime, scheduled_attempts: int, attempted_at: datetime, scale: float = 1.0
) -> datetime | None:
    """When to try a delivery again after its `scheduled_attempts`-th attempt failed at
    `attempted_at`; None once that would be past three days from the event."""
    at = attempted_at + retry_delay(scheduled_attempts, scale)
    return at if at - created_at <= RETRY_FOR * scale else None


def should_disable(failing_since: datetime, now: datetime, scale: float = 1.0) -> bool:
    """Whether an endpoint that has failed every delivery since `failing_since` is disabled now."""
    return now - failing_since >= DISABLE_AFTER * scale
