"""Dunning: when a failed subscription payment is tried again, and what happens once the
retries are spent. Pure, no I/O.

The schedule is the organization's (`dunning.retryAfterDays`, Stripe's custom retry
schedule; default 1, 3, 5 and 7 days): retry n comes that many days after the attempt
before it. Only the schedule's own retries count toward its end: a payment asked for by
hand (`POST /v1/invoices/{id}/pay`) or set off by a new default payment method is not one
(polar#11905). A hard decline is never retried: the card cannot succeed again (lost,
stolen, expired, closed, fraud), so the retries end at once and what comes after the last
retry happens then."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from contracts.json_shapes import Dunning

# Stripe's decline codes (and card error codes) that no retry can turn into a payment
HARD_DECLINES: Final = frozenset(
    {
        "card_not_supported",
        "currency_not_supported",
        "do_not_try_again",
        "expired_card",
        "fraudulent",
        "incorrect_number",
        "invalid_account",
        "invalid_number",
        "lost_card",
        "merchant_blacklist",
        "new_account_information_available",
        "pickup_card",
        "restricted_card",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "security_violation",
        "stolen_card",
        "stop_payment_order",
        "transaction_not_allowed",
    }
)


def is_hard_decline(failure_code: str | None, decline_code: str | None) -> bool:
    """Whether the gateway's answer says the card can never pay (either code may carry it:
    Stripe answers an expired card with code expired_card, a stolen one with decline_code)."""
    return bool({failure_code, decline_code} & HARD_DECLINES)


def next_retry(settings: Dunning, retries_made: int, failed_at: datetime) -> datetime | None:
    """When the schedule retries after an attempt that failed at `failed_at`, once
    `retries_made` of its retries were made; None once they are spent."""
    days = settings["retryAfterDays"]
    if retries_made >= len(days):
        return None
    return failed_at + timedelta(days=days[retries_made])


@dataclass(frozen=True)
class AfterLastRetry:
    subscription: Literal["canceled", "unpaid", "past_due"]
    invoice: Literal["open", "uncollectible"]


def after_last_retry(settings: Dunning) -> AfterLastRetry:
    return AfterLastRetry(settings["subscriptionAfterLastRetry"], settings["invoiceAfterLastRetry"])
