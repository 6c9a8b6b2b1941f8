"""The customer email rules, pure: which event calls for which email under the
organization's settings (none unless enabled; a finalized invoice only when the customer
pays it by hand), who sends and receives it, and when a card expires soon."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.notifications.email_rules import (
    CARD_NOTICE,
    EmailKind,
    card_expiry_key,
    expires_soon,
    kind_for,
    last_valid_day,
    months_to_check,
    recipient_for,
    sender_for,
)
from contracts.json_shapes import Emails

pytestmark = pytest.mark.unit

OFF: Emails = {
    "replyTo": None,
    "portalUrl": None,
    "fromAddress": None,
    "cardExpiring": False,
    "trialWillEnd": False,
    "paymentFailed": False,
    "paymentReceipt": False,
    "invoiceFinalized": False,
}
ON: Emails = {
    **OFF,
    "cardExpiring": True,
    "trialWillEnd": True,
    "paymentFailed": True,
    "paymentReceipt": True,
    "invoiceFinalized": True,
}  # type: ignore[typeddict-item]
SENT_INVOICE = {"collectionMethod": "send_invoice"}
CHARGED_INVOICE = {"collectionMethod": "charge_automatically"}


@pytest.mark.parametrize(
    ("event_type", "resource", "kind"),
    [
        ("invoice.finalized", SENT_INVOICE, EmailKind.invoice_finalized),
        ("invoice.finalized", CHARGED_INVOICE, None),  # its receipt follows instead
        ("invoice.paid", CHARGED_INVOICE, EmailKind.payment_receipt),
        ("invoice.payment_failed", CHARGED_INVOICE, EmailKind.payment_failed),
        ("customer.subscription.trial_will_end", {}, EmailKind.trial_will_end),
        ("customer.created", {}, None),
        ("invoice.voided", SENT_INVOICE, None),
    ],
)
def test_which_event_calls_for_which_email(event_type: str, resource: dict[str, Any], kind: EmailKind | None) -> None:
    assert kind_for(event_type, resource, ON) == kind
    assert kind_for(event_type, resource, OFF) is None  # nothing is sent until the organization enables it


def test_each_email_has_its_own_switch() -> None:
    only_receipts: Emails = {**OFF, "paymentReceipt": True}  # type: ignore[typeddict-item]
    assert kind_for("invoice.paid", CHARGED_INVOICE, only_receipts) == EmailKind.payment_receipt
    assert kind_for("invoice.payment_failed", CHARGED_INVOICE, only_receipts) is None
    assert kind_for("invoice.finalized", SENT_INVOICE, only_receipts) is None


def test_the_sender_is_the_organization_at_its_address_or_the_platforms() -> None:
    platform = sender_for("Acme", OFF, "billing@localhost")
    assert (platform.name, platform.address, platform.reply_to) == ("Acme", "billing@localhost", None)
    own: Emails = {**OFF, "fromAddress": "billing@acme.test", "replyTo": "help@acme.test"}  # type: ignore[typeddict-item]
    acme = sender_for("Acme", own, "billing@localhost")
    assert (acme.address, acme.reply_to) == ("billing@acme.test", "help@acme.test")


def test_the_recipient_is_the_customer_in_its_first_locale() -> None:
    customer = {"email": "jan@example.de", "name": "Jan", "preferredLocales": ["de-DE", "en"]}
    recipient = recipient_for(customer)
    assert recipient is not None and (recipient.address, recipient.name, recipient.locale) == (
        "jan@example.de",
        "Jan",
        "de-DE",
    )
    assert recipient_for({**customer, "preferredLocales": []}).locale == "en-US"  # type: ignore[union-attr]
    assert recipient_for({**customer, "email": None}) is None
    assert recipient_for({**customer, "deleted": True}) is None


dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))
expiries = st.tuples(st.integers(2000, 2091), st.integers(1, 12))


@given(dates, expiries)
def test_a_card_expires_soon_within_30_days_of_its_last_valid_day(today: date, expiry: tuple[int, int]) -> None:
    year, month = expiry
    last = last_valid_day(year, month)
    assert last.month == month and (last + timedelta(days=1)).month != month
    soon = expires_soon(year, month, today)
    assert soon == (today <= last < today + CARD_NOTICE)
    if soon:
        assert expiry in months_to_check(today)  # the sweep's query looks at those months


@given(dates)
def test_a_card_expiring_this_month_is_warned_about_and_one_three_months_out_is_not(today: date) -> None:
    thirty_one_days = last_valid_day(today.year, today.month).day == 31
    assert expires_soon(today.year, today.month, today) or (today.day == 1 and thirty_one_days)
    later = date(today.year + (today.month + 2) // 12, (today.month + 2) % 12 + 1, 1)
    assert not expires_soon(later.year, later.month, today)
    assert not expires_soon(today.year - 1, today.month, today)  # expired already: too late to warn


def test_one_email_per_card_and_expiry() -> None:
    assert card_expiry_key("pm_1", 2027, 3) == "pm_1:2027-03"
    assert card_expiry_key("pm_1", 2027, 3) != card_expiry_key("pm_1", 2030, 3)
