"""Stripe webhook signatures (Stripe's documented scheme) and event-to-command mapping."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from billing.errors import BillingError
from billing.payments.webhooks import (
    SignatureFailure,
    WebhookPayloadError,
    WebhookSignatureError,
    compute_signature,
    construct_event,
    sign_payload,
    stripe_event_to_command,
    verify_signature,
)
from contracts.payments import (
    RecordPaymentFailed,
    RecordPaymentSucceeded,
    RecordSetupIntentSucceeded,
    SyncPaymentMethodAttached,
    SyncPaymentMethodDetached,
    SyncPaymentMethodUpdated,
)

pytestmark = pytest.mark.unit

SECRET = "whsec_test_5f3c1a2b9d8e7f6a5b4c3d2e1f0a9b8c"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
BODY = json.dumps(
    {
        "id": "evt_1",
        "object": "event",
        "type": "payment_method.attached",
        "created": NOW,
        "data": {"object": {"id": "pm_1", "object": "payment_method", "type": "card"}},
    }
).encode()


def _reason(payload: bytes | str, header: str | None, secret: Any = SECRET, **kwargs: Any) -> SignatureFailure:
    with pytest.raises(WebhookSignatureError) as caught:
        verify_signature(payload, header, secret, now=kwargs.pop("now", NOW), **kwargs)
    assert isinstance(caught.value, BillingError) and caught.value.status == 400
    assert caught.value.code == f"webhook_{caught.value.reason.value}"
    return caught.value.reason


def test_valid_signature_is_accepted() -> None:
    header = sign_payload(BODY, SECRET, NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify_signature(BODY, header, SECRET, now=NOW) == NOW
    assert verify_signature(BODY.decode(), header, SECRET, now=NOW + 299) == NOW  # str bodies are their UTF-8 bytes
    event = construct_event(BODY, header, SECRET, now=NOW)
    assert event["id"] == "evt_1"


def test_signature_is_stripes_scheme_by_hand() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(BODY, SECRET, NOW) == expected


def test_compatible_with_the_stripe_sdk_both_ways() -> None:
    now = int(time.time())
    ours = sign_payload(BODY, SECRET, now)
    assert stripe.WebhookSignature.verify_header(BODY.decode(), ours, SECRET, tolerance=300)
    event = stripe.Webhook.construct_event(BODY.decode(), ours, SECRET)
    assert event.id == "evt_1"
    # and a header made by the SDK's own signer verifies with ours
    theirs = f"t={now},v1={stripe.WebhookSignature._compute_signature(f'{now}.{BODY.decode()}', SECRET)}"
    assert verify_signature(BODY, theirs, SECRET) == now


def test_several_v1_signatures_any_one_matches() -> None:
    header = f"t={NOW},v1={'0' * 64},v1={compute_signature(BODY, SECRET, NOW)},v0=ignored"
    assert verify_signature(BODY, header, SECRET, now=NOW) == NOW
    # Stripe signs with the old and the new secret while an endpoint secret is rolled
    rolled = sign_payload(BODY, ["whsec_old", SECRET], NOW)
    assert rolled.count("v1=") == 2
    assert verify_signature(BODY, rolled, SECRET, now=NOW) == NOW
    # and we can accept either of our own two secrets
    assert verify_signature(BODY, sign_payload(BODY, "whsec_old", NOW), [SECRET, "whsec_old"], now=NOW) == NOW


def test_header_items_may_carry_spaces_and_unknown_keys() -> None:
    sig = compute_signature(BODY, SECRET, NOW)
    assert verify_signature(BODY, f" t={NOW} , v1={sig} , foo=bar, junk", SECRET, now=NOW) == NOW


def test_wrong_secret_is_rejected() -> None:
    header = sign_payload(BODY, "whsec_someone_else", NOW)
    assert _reason(BODY, header) is SignatureFailure.SIGNATURE_MISMATCH


def test_tampered_body_is_rejected() -> None:
    header = sign_payload(BODY, SECRET, NOW)
    tampered = BODY.replace(b"pm_1", b"pm_2")
    assert _reason(tampered, header) is SignatureFailure.SIGNATURE_MISMATCH
    assert _reason(BODY + b" ", header) is SignatureFailure.SIGNATURE_MISMATCH
    # re-serialized JSON is another body: verify the raw bytes as received
    reserialized = json.dumps(json.loads(BODY), indent=2).encode()
    assert _reason(reserialized, header) is SignatureFailure.SIGNATURE_MISMATCH


def test_tampered_timestamp_is_rejected() -> None:
    sig = compute_signature(BODY, SECRET, NOW)
    assert _reason(BODY, f"t={NOW + 1},v1={sig}") is SignatureFailure.SIGNATURE_MISMATCH


def test_old_timestamp_is_rejected() -> None:
    header = sign_payload(BODY, SECRET, NOW - 301)
    assert _reason(BODY, header) is SignatureFailure.TIMESTAMP_TOO_OLD
    assert verify_signature(BODY, sign_payload(BODY, SECRET, NOW - 300), SECRET, now=NOW) == NOW - 300
    assert _reason(BODY, sign_payload(BODY, SECRET, NOW - 31), tolerance=30) is SignatureFailure.TIMESTAMP_TOO_OLD
    # tolerance None: replaying a stored event
    assert verify_signature(BODY, header, SECRET, now=NOW, tolerance=None) == NOW - 301


def test_timestamp_far_in_the_future_is_rejected() -> None:
    header = sign_payload(BODY, SECRET, NOW + 301)
    assert _reason(BODY, header) is SignatureFailure.TIMESTAMP_IN_FUTURE


def test_default_uses_the_clock() -> None:
    stale = sign_payload(BODY, SECRET, int(time.time()) - 3600)
    with pytest.raises(WebhookSignatureError) as caught:
        verify_signature(BODY, stale, SECRET)
    assert caught.value.reason is SignatureFailure.TIMESTAMP_TOO_OLD
    assert verify_signature(BODY, sign_payload(BODY, SECRET), SECRET) > 0


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_is_rejected(header: str | None) -> None:
    assert _reason(BODY, header) is SignatureFailure.MISSING_HEADER


@pytest.mark.parametrize(
    "header",
    [
        "v1=abc",
        "t=abc,v1=abc",
        "t=-5,v1=abc",
        "garbage",
        "t=,v1=abc",
        "t=1e9,v1=abc",
        "t=\u00b2,v1=abc",
        "t=1234567890123,v1=abc",
    ],
)
def test_malformed_header_is_rejected(header: str) -> None:
    assert _reason(BODY, header) is SignatureFailure.MALFORMED_HEADER


@pytest.mark.parametrize("header", [f"t={NOW}", f"t={NOW},v0=abc", f"t={NOW},v1="])
def test_header_without_v1_is_rejected(header: str) -> None:
    assert _reason(BODY, header) is SignatureFailure.NO_SIGNATURE


def test_distinct_reasons() -> None:
    good = sign_payload(BODY, SECRET, NOW)
    reasons = {
        _reason(BODY, None),
        _reason(BODY, "t=x"),
        _reason(BODY, f"t={NOW}"),
        _reason(BODY, sign_payload(BODY, "whsec_wrong", NOW)),
        _reason(b"{}", good),
        _reason(BODY, sign_payload(BODY, SECRET, NOW - 10_000)),
    }
    assert len(reasons) == 5  # wrong secret and tampered body are one reason: an HMAC cannot tell them apart


def test_empty_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        verify_signature(BODY, sign_payload(BODY, SECRET, NOW), "", now=NOW)


def test_signed_garbage_is_a_payload_error() -> None:
    for body in (b"not json", b"[1, 2]", b'{"object": "customer", "id": "cus_1"}', b"\xff\xfe"):
        with pytest.raises(WebhookPayloadError):
            construct_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW)


@hsettings(max_examples=100)
@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=10**12 - 1))
def test_any_body_round_trips_and_any_flipped_byte_fails(body: bytes, timestamp: int) -> None:
    header = sign_payload(body, SECRET, timestamp)
    assert verify_signature(body, header, SECRET, tolerance=None) == timestamp
    if body:
        flipped = bytes([body[0] ^ 1]) + body[1:]
        with pytest.raises(WebhookSignatureError) as caught:
            verify_signature(flipped, header, SECRET, tolerance=None)
        assert caught.value.reason is SignatureFailure.SIGNATURE_MISMATCH


# ---------------------------------------------------------------------------- events to commands

CARD_PM = {
    "id": "pm_1Pgag7B7WZ01zgkW",
    "object": "payment_method",
    "type": "card",
    "customer": "cus_Q1",
    "billing_details": {
        "address": {
            "city": "Paris",
            "country": "FR",
            "line1": "1 rue de Rivoli",
            "line2": None,
            "postal_code": "75001",
            "state": None,
        },
        "email": "jenny@example.com",
        "name": "Jenny Rosen",
        "phone": None,
    },
    "card": {
        "brand": "visa",
        "country": "US",
        "exp_month": 8,
        "exp_year": 2030,
        "fingerprint": "AOB934RVNwzk6xtn",
        "funding": "credit",
        "last4": "4242",
    },
    "metadata": {"source": "portal"},
    "livemode": False,
}


def _event(event_type: str, obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "evt_1QxYz",
        "object": "event",
        "type": event_type,
        "created": NOW,
        "livemode": False,
        "api_version": "2024-06-20",
        "data": {"object": obj, **extra},
    }


def test_payment_method_attached() -> None:
    command = stripe_event_to_command(_event("payment_method.attached", CARD_PM))
    assert command is not None
    command_type, payload = command.command_type, command.payload()
    assert command_type == SyncPaymentMethodAttached.command_type
    assert payload == {
        "stripeEventId": "evt_1QxYz",
        "occurredAt": "2026-01-01T00:00:00Z",
        "livemode": False,
        "gateway": "stripe",
        "gatewayPaymentMethodId": "pm_1Pgag7B7WZ01zgkW",
        "gatewayCustomerId": "cus_Q1",
        "type": "card",
        "brand": "visa",
        "last4": "4242",
        "expMonth": 8,
        "expYear": 2030,
        "country": "US",
        "fingerprint": "AOB934RVNwzk6xtn",
        "billingDetails": CARD_PM["billing_details"],
        "metadata": {"source": "portal"},
    }
    json.dumps(payload)


def test_payment_method_updated_and_automatically_updated() -> None:
    updated = {**CARD_PM, "card": {**CARD_PM["card"], "exp_year": 2031}}
    for event_type in ("payment_method.updated", "payment_method.automatically_updated"):
        command = stripe_event_to_command(_event(event_type, updated, previous_attributes={"card": {"exp_year": 2030}}))
        assert command is not None
        assert command.command_type == SyncPaymentMethodUpdated.command_type
        assert command.payload()["expYear"] == 2031


def test_payment_method_detached_names_the_previous_customer() -> None:
    detached = {**CARD_PM, "customer": None}
    command = stripe_event_to_command(
        _event("payment_method.detached", detached, previous_attributes={"customer": "cus_Q1"})
    )
    assert command is not None
    assert command.command_type == SyncPaymentMethodDetached.command_type
    assert command.payload()["gatewayPaymentMethodId"] == "pm_1Pgag7B7WZ01zgkW"
    assert command.payload()["gatewayCustomerId"] == "cus_Q1"
    # without previous_attributes the customer is unknown, the payment method id is enough
    command = stripe_event_to_command(_event("payment_method.detached", detached))
    assert command is not None and command.payload()["gatewayCustomerId"] is None


def test_sepa_and_bank_account_payment_methods() -> None:
    sepa = {
        "id": "pm_sepa",
        "object": "payment_method",
        "type": "sepa_debit",
        "customer": {"id": "cus_Q1", "object": "customer"},
        "billing_details": {},
        "sepa_debit": {"bank_code": "37040044", "country": "DE", "fingerprint": "fp1", "last4": "3000"},
    }
    command = stripe_event_to_command(_event("payment_method.attached", sepa))
    assert command is not None
    payload = command.payload()
    assert (payload["type"], payload["last4"], payload["country"], payload["brand"], payload["expMonth"]) == (
        "sepa_debit",
        "3000",
        "DE",
        None,
        None,
    )
    assert payload["gatewayCustomerId"] == "cus_Q1"  # an expanded customer gives its id


def test_unsupported_payment_method_types_are_not_commands() -> None:
    paypal = {"id": "pm_pp", "object": "payment_method", "type": "paypal", "customer": "cus_Q1", "paypal": {}}
    assert stripe_event_to_command(_event("payment_method.attached", paypal)) is None


def test_setup_intent_succeeded() -> None:
    intent = {
        "id": "seti_1",
        "object": "setup_intent",
        "customer": "cus_Q1",
        "payment_method": "pm_1",
        "status": "succeeded",
        "usage": "off_session",
        "metadata": {"customer": "cust_local"},
        "client_secret": "seti_1_secret_x",
    }
    command = stripe_event_to_command(_event("setup_intent.succeeded", intent))
    assert command is not None
    assert (command.command_type, command.payload()) == (
        RecordSetupIntentSucceeded.command_type,
        {
            "stripeEventId": "evt_1QxYz",
            "occurredAt": "2026-01-01T00:00:00Z",
            "livemode": False,
            "gatewaySetupIntentId": "seti_1",
            "gatewayCustomerId": "cus_Q1",
            "gatewayPaymentMethodId": "pm_1",
            "status": "succeeded",
            "usage": "off_session",
            "metadata": {"customer": "cust_local"},
        },
    )
    assert "client_secret" not in json.dumps(command.payload())  # the secret stays out of commands


PAYMENT_INTENT = {
    "id": "pi_3Ab",
    "object": "payment_intent",
    "amount": 1999,
    "amount_received": 1999,
    "currency": "eur",
    "customer": "cus_Q1",
    "payment_method": "pm_1",
    "status": "succeeded",
    "latest_charge": "ch_1",
    "metadata": {"invoice": "in_local_1"},
    "last_payment_error": None,
}


def test_payment_intent_succeeded() -> None:
    command = stripe_event_to_command(_event("payment_intent.succeeded", PAYMENT_INTENT))
    assert command is not None
    command_type, payload = command.command_type, command.payload()
    assert command_type == RecordPaymentSucceeded.command_type
    assert payload == {
        "stripeEventId": "evt_1QxYz",
        "occurredAt": "2026-01-01T00:00:00Z",
        "livemode": False,
        "gatewayPaymentIntentId": "pi_3Ab",
        "gatewayCustomerId": "cus_Q1",
        "gatewayPaymentMethodId": "pm_1",
        "status": "succeeded",
        "amount": 1999,
        "amountReceived": 1999,
        "currency": "eur",
        "latestChargeId": "ch_1",
        "metadata": {"invoice": "in_local_1"},
    }
    assert type(payload["amount"]) is int


def test_payment_intent_failed() -> None:
    failed = {
        **PAYMENT_INTENT,
        "status": "requires_payment_method",
        "amount_received": 0,
        "payment_method": None,
        "latest_charge": {"id": "ch_2", "object": "charge"},
        "last_payment_error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
            "payment_method": {"id": "pm_1", "type": "card"},
        },
    }
    command = stripe_event_to_command(_event("payment_intent.payment_failed", failed))
    assert command is not None
    command_type, payload = command.command_type, command.payload()
    assert command_type == RecordPaymentFailed.command_type
    assert (payload["failureCode"], payload["declineCode"], payload["failureMessage"]) == (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    )
    assert payload["gatewayPaymentMethodId"] == "pm_1"
    assert payload["latestChargeId"] == "ch_2"
    assert payload["status"] == "requires_payment_method"


def test_connect_account_is_carried() -> None:
    command = stripe_event_to_command({**_event("payment_intent.succeeded", PAYMENT_INTENT), "account": "acct_1"})
    assert command is not None and command.payload()["stripeAccount"] == "acct_1"


@pytest.mark.parametrize(
    "event_type", ["customer.created", "charge.succeeded", "invoice.paid", "setup_intent.created", None, 5]
)
def test_other_events_are_not_commands(event_type: Any) -> None:
    assert stripe_event_to_command(_event(event_type, {"id": "x"})) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "payment_intent.succeeded", "data": {"object": PAYMENT_INTENT}},  # no id
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {}},
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"amount": 5}}},
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {**PAYMENT_INTENT, "amount": 19.99}}},
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {**PAYMENT_INTENT, "amount": "1999"}}},
    ],
)
def test_malformed_events_raise(event: dict[str, Any]) -> None:
    with pytest.raises(WebhookPayloadError):
        stripe_event_to_command(event)


def test_end_to_end_verify_then_map() -> None:
    body = json.dumps(_event("payment_method.attached", CARD_PM)).encode()
    event = construct_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW + 5)
    command = stripe_event_to_command(event)
    assert command is not None and command.command_type == SyncPaymentMethodAttached.command_type
