"""The subscription status machine, Stripe's. Pure, no I/O.

Stripe's statuses and how a subscription moves between them:
- incomplete: the first invoice is not paid (its payment failed or needs action). Paid ->
  active; unpaid for 23 hours -> incomplete_expired (its invoice voided). Canceling an
  incomplete subscription also ends it as incomplete_expired, as Stripe does. Only
  metadata and the default payment method may change meanwhile.
- trialing: trial end with a successful (or nothing to) charge -> active; a failed charge
  -> past_due; no payment method and missingPaymentMethod=pause -> paused, =cancel ->
  canceled.
- active: a renewal's payment fails (or a sent invoice passes its due date) -> past_due.
- past_due: paid -> active; retries exhausted -> unpaid or canceled (the organization's
  setting); a further failure keeps it past_due.
- unpaid: paid -> active. paused: resumed -> active.
- canceled and incomplete_expired are terminal: nothing changes them any more.
Pausing collection (`pauseCollection`) is not a status: it leaves the status unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from billing.errors import InvalidRequest
from contracts.enums import SubscriptionStatus

S = SubscriptionStatus


class SubscriptionEvent(StrEnum):
    """What happened to a subscription, as far as its status is concerned."""

    invoice_paid = "invoice_paid"
    invoice_payment_failed = "invoice_payment_failed"
    first_invoice_expired = "first_invoice_expired"  # 23 hours after creation, still unpaid
    trial_ended = "trial_ended"  # the trial's invoice was paid or nothing was due
    trial_ended_without_payment_method = "trial_ended_without_payment_method"  # behaviour: pause
    resumed = "resumed"
    retries_exhausted = "retries_exhausted"  # the organization's setting: unpaid
    canceled = "canceled"


E = SubscriptionEvent

TERMINAL: Final = frozenset({S.canceled, S.incomplete_expired})

# (status, event) -> the next status. A pair that is absent cannot happen.
TRANSITIONS: Final[dict[tuple[SubscriptionStatus, SubscriptionEvent], SubscriptionStatus]] = {
    (S.incomplete, E.invoice_paid): S.active,
    (S.incomplete, E.invoice_payment_failed): S.incomplete,
    (S.incomplete, E.first_invoice_expired): S.incomplete_expired,
    (S.incomplete, E.canceled): S.incomplete_expired,
    (S.trialing, E.trial_ended): S.active,
    (S.trialing, E.invoice_payment_failed): S.past_due,
    (S.trialing, E.trial_ended_without_payment_method): S.paused,
    (S.trialing, E.canceled): S.canceled,
    (S.active, E.invoice_paid): S.active,
    (S.active, E.invoice_payment_failed): S.past_due,
    (S.active, E.canceled): S.canceled,
    (S.past_due, E.invoice_paid): S.active,
    (S.past_due, E.invoice_payment_failed): S.past_due,
    (S.past_due, E.retries_exhausted): S.unpaid,
    (S.past_due, E.canceled): S.canceled,
    (S.unpaid, E.invoice_paid): S.active,
    (S.unpaid, E.invoice_payment_failed): S.unpaid,
    (S.unpaid, E.canceled): S.canceled,
    (S.paused, E.resumed): S.active,
    (S.paused, E.canceled): S.canceled,
}

# What a subscription may start as: incomplete (first payment pending or failed), trialing,
# or active (the first invoice paid at once, or nothing due).
INITIAL: Final = frozenset({S.incomplete, S.trialing, S.active})

# Fields an update may change while the subscription is incomplete (Stripe's rule).
INCOMPLETE_UPDATABLE: Final = frozenset({"metadata", "defaultPaymentMethod"})


def is_live(status: SubscriptionStatus) -> bool:
    return status not in TERMINAL


def next_status(status: SubscriptionStatus, event: SubscriptionEvent) -> SubscriptionStatus:
    """The status after `event`, or a Stripe-shaped error if it cannot happen in `status`."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        if status in TERMINAL:
            raise _ended(status) from None
        raise InvalidRequest(
            f"A subscription that is {status} cannot be {_past_tense(event)}.",
            code="subscription_status_invalid",
        ) from None


def check_update(status: SubscriptionStatus, fields: frozenset[str]) -> None:
    """Refuse an update to a subscription in a status that does not allow those fields."""
    if status in TERMINAL:
        raise _ended(status)
    if status is S.incomplete:
        refused = sorted(fields - INCOMPLETE_UPDATABLE)
        if refused:
            raise InvalidRequest(
                "An incomplete subscription can only have its metadata and defaultPaymentMethod "
                "updated until its first invoice is paid.",
                code="subscription_incomplete",
                param=refused[0],
            )


def _ended(status: SubscriptionStatus) -> InvalidRequest:
    return InvalidRequest(
        f"This subscription is {status} and can no longer be changed.",
        code="subscription_inactive" if status is S.canceled else "subscription_incomplete_expired",
    )


def _past_tense(event: SubscriptionEvent) -> str:
    return {
        E.invoice_paid: "paid",
        E.invoice_payment_failed: "marked as failing payment",
        E.first_invoice_expired: "expired",
        E.trial_ended: "taken out of a trial",
        E.trial_ended_without_payment_method: "paused at a trial end",
        E.resumed: "resumed",
        E.retries_exhausted: "marked unpaid",
        E.canceled: "canceled",
    }[event]
