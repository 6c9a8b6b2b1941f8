"""Which customer email an event calls for, from whom, to whom, and when a card is about
to expire: pure rules over the organization's email settings (`emails` of
/v1/billing-settings) and the API's JSON, with no I/O.

The kinds follow Stripe's customer emails: a finalized invoice (its PDF attached), a
receipt when an invoice is paid, a failed payment (with the link to update the card),
a trial ending in three days (the scheduler's `customer.subscription.trial_will_end`), and
a card that expires within 30 days (the hourly sweep, once per card and expiry month)."""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Final

from billing.documents.formatting import DEFAULT_LOCALE
from billing.notifications.emails import Recipient, Sender
from contracts.events import INVOICE_FINALIZED, INVOICE_PAID, INVOICE_PAYMENT_FAILED, SUBSCRIPTION_TRIAL_WILL_END
from contracts.json_shapes import Emails

CARD_NOTICE: Final = timedelta(days=30)


class EmailKind(StrEnum):
    invoice_finalized = "invoice_finalized"
    payment_receipt = "payment_receipt"
    payment_failed = "payment_failed"
    trial_will_end = "trial_will_end"
    card_expiring = "card_expiring"


KIND_OF_EVENT: Final = {
    INVOICE_FINALIZED.name: EmailKind.invoice_finalized,
    INVOICE_PAID.name: EmailKind.payment_receipt,
    INVOICE_PAYMENT_FAILED.name: EmailKind.payment_failed,
    SUBSCRIPTION_TRIAL_WILL_END.name: EmailKind.trial_will_end,
}
# the organization's switch for each kind, in `emails` of /v1/billing-settings
SETTING_OF_KIND: Final = {
    EmailKind.invoice_finalized: "invoiceFinalized",
    EmailKind.payment_receipt: "paymentReceipt",
    EmailKind.payment_failed: "paymentFailed",
    EmailKind.trial_will_end: "trialWillEnd",
    EmailKind.card_expiring: "cardExpiring",
}


def kind_for(event_type: str, resource: Mapping[str, Any], settings: Emails) -> EmailKind | None:
    """The email an event calls for under the organization's settings, if any. As in
    Stripe, a finalized invoice is emailed when the customer is to pay it (send_invoice);
    one charged automatically is followed by its receipt instead."""
    kind = KIND_OF_EVENT.get(event_type)
    if kind is None or not settings[SETTING_OF_KIND[kind]]:  # type: ignore[literal-required]
        return None
    if kind is EmailKind.invoice_finalized and resource.get("collectionMethod") != "send_invoice":
        return None
    return kind


def sender_for(organization_name: str, settings: Emails, default_address: str) -> Sender:
    return Sender(organization_name, settings["fromAddress"] or default_address, settings["replyTo"])


def recipient_for(customer: Mapping[str, Any]) -> Recipient | None:
    """The customer as a recipient (API JSON), or None when it has no email address."""
    address = customer.get("email")
    if not address or customer.get("deleted"):
        return None
    locales: Sequence[str] = customer.get("preferredLocales") or ()
    return Recipient(address, customer.get("name"), locales[0] if locales else DEFAULT_LOCALE)


def last_valid_day(exp_year: int, exp_month: int) -> date:
    """A card is valid through the last day of its expiry month."""
    return date(exp_year, exp_month, calendar.monthrange(exp_year, exp_month)[1])


def expires_soon(exp_year: int, exp_month: int, today: date) -> bool:
    """Whether a card still valid today expires within CARD_NOTICE."""
    return today <= last_valid_day(exp_year, exp_month) < today + CARD_NOTICE


def months_to_check(today: date) -> list[tuple[int, int]]:
    """The (year, month) expiries `expires_soon` can accept today: this month and the next."""
    following = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return [(today.year, today.month), (following.year, following.month)]


def card_expiry_key(payment_method_id: str, exp_year: int, exp_month: int) -> str:
    """One card_expiring email per card and expiry (a renewed card with a new date gets its own)."""
    return f"{payment_method_id}:{exp_year:04d}-{exp_month:02d}"
