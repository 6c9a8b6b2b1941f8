"""Stripe webhooks: signature verification and event-to-command mapping. Pure, no I/O.

Signature (Stripe's documented scheme, https://docs.stripe.com/webhooks#verify-manually):
the ``Stripe-Signature`` header is a comma-separated list of ``key=value`` items: one
``t=<unix seconds>`` and one or more ``v1=<hex>`` (several while the endpoint's secret is
being rolled; other schemes such as ``v0`` are ignored). Each ``v1`` is the hex
HMAC-SHA256, keyed with the endpoint's signing secret (the whole ``whsec_...`` string), of
``f"{t}.".encode() + raw_body``. The body must be the raw bytes as received, before any
JSON parsing. An event is accepted when one ``v1`` matches (compared in constant time)
for one of the secrets given, and ``t`` is within `tolerance` seconds of now (default
300; in both directions: Stripe's libraries only refuse old timestamps, we also refuse
ones from the future beyond the tolerance). Checks run in this order and each failure has
its own `SignatureFailure` reason: missing header, malformed header, no v1 signature,
no matching signature (a wrong secret and a tampered body are the same failure: an HMAC
cannot tell them apart), timestamp too old, timestamp in the future.

Mapping: `stripe_event_to_command(event)` turns a verified event into the command the
consumers apply, ``(command_type, payload)``, or None for event types we do not act on.
Payload keys are camelCase like the API; each payload carries ``stripeEventId`` (dedupe:
Stripe delivers at least once and may resend an event) and ``occurredAt`` (the event's
``created``, ISO-8601 UTC). Stripe delivers events in no particular order: the consumer
must not let an older event (``occurredAt``) undo a newer one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from billing.errors import BillingError
from billing.payments.gateway import GatewayError, payment_method_from_json, payment_result_from_json
from contracts.payments import (
    RecordPaymentFailed,
    RecordPaymentSucceeded,
    RecordSetupIntentSucceeded,
    SyncPaymentMethodAttached,
    SyncPaymentMethodDetached,
    SyncPaymentMethodUpdated,
)

StripeEventCommand = (
    SyncPaymentMethodAttached
    | SyncPaymentMethodUpdated
    | SyncPaymentMethodDetached
    | RecordSetupIntentSucceeded
    | RecordPaymentSucceeded
    | RecordPaymentFailed
)

SIGNATURE_HEADER = "Stripe-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300


class SignatureFailure(StrEnum):
    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    NO_SIGNATURE = "no_v1_signature"
    SIGNATURE_MISMATCH = "signature_mismatch"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"


class WebhookSignatureError(BillingError):
    """The webhook is not proven to come from Stripe; answer 400 and do nothing.

    `reason` is a `SignatureFailure`; `code` is ``webhook_<reason>``.
    """

    type = "invalid_request_error"
    status = 400

    def __init__(self, reason: SignatureFailure, message: str) -> None:
        super().__init__(message, code=f"webhook_{reason.value}")
        self.reason = reason


class WebhookPayloadError(BillingError):
    """A correctly signed body that is not a Stripe event we can read."""

    type = "invalid_request_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message, code="webhook_payload_invalid")


def _payload_bytes(payload: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return bytes(payload)


def compute_signature(payload: bytes | str, secret: str, timestamp: int) -> str:
    """The hex ``v1`` signature of `payload` at `timestamp` under `secret`."""
    signed = f"{int(timestamp)}.".encode("ascii") + _payload_bytes(payload)
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes | str, secret: str | Sequence[str], timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for `payload` (tests, local replays).

    With several secrets, one ``v1`` per secret (as Stripe sends while a secret is rolled).
    """
    t = int(time.time()) if timestamp is None else int(timestamp)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    return ",".join([f"t={t}"] + [f"{SCHEME}={compute_signature(payload, s, t)}" for s in secrets])


def parse_signature_header(header: str | None) -> tuple[int, list[str]]:
    """``(timestamp, v1 signatures)``; raises WebhookSignatureError for a missing or malformed header."""
    if header is None or not header.strip():
        raise WebhookSignatureError(SignatureFailure.MISSING_HEADER, f"No {SIGNATURE_HEADER} header.")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "t":
            if not (value.isascii() and value.isdigit()) or len(value) > 12:
                raise WebhookSignatureError(
                    SignatureFailure.MALFORMED_HEADER, f"Malformed {SIGNATURE_HEADER} header: bad timestamp."
                )
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError(
            SignatureFailure.MALFORMED_HEADER, f"Malformed {SIGNATURE_HEADER} header: no timestamp."
        )
    if not signatures:
        raise WebhookSignatureError(
            SignatureFailure.NO_SIGNATURE, f"No {SCHEME} signature in the {SIGNATURE_HEADER} header."
        )
    return timestamp, signatures


def verify_signature(
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    *,
    tolerance: int | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a webhook's signature; answer its timestamp or raise WebhookSignatureError.

    `secret` may be several secrets (the current and the previous one while rolling).
    `tolerance` None disables the timestamp check (replaying stored events only).
    """
    timestamp, signatures = parse_signature_header(header)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(isinstance(s, str) and s for s in secrets):
        raise ValueError("a webhook signing secret is required")
    matched = False
    for candidate in secrets:
        expected = compute_signature(payload, candidate, timestamp)
        for signature in signatures:
            # every comparison runs: no early exit that would time the match
            matched |= hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace"))
    if not matched:
        raise WebhookSignatureError(
            SignatureFailure.SIGNATURE_MISMATCH,
            "No signature matches the expected signature for the payload (wrong signing secret or altered body).",
        )
    if tolerance is not None:
        current = time.time() if now is None else now
        if timestamp < current - tolerance:
            raise WebhookSignatureError(
                SignatureFailure.TIMESTAMP_TOO_OLD,
                f"Timestamp {timestamp} is older than the tolerance of {tolerance} s.",
            )
        if timestamp > current + tolerance:
            raise WebhookSignatureError(
                SignatureFailure.TIMESTAMP_IN_FUTURE, f"Timestamp {timestamp} is more than {tolerance} s in the future."
            )
    return timestamp


def construct_event(
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    *,
    tolerance: int | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify the signature, then parse the body: the event as plain JSON."""
    verify_signature(payload, header, secret, tolerance=tolerance, now=now)
    try:
        event = json.loads(_payload_bytes(payload))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WebhookPayloadError(f"The webhook body is not JSON: {error}") from None
    if not isinstance(event, dict) or event.get("object") != "event" or not isinstance(event.get("id"), str):
        raise WebhookPayloadError("The webhook body is not a Stripe event.")
    return event


# ---------------------------------------------------------------------------- events to commands

# Stripe's event types we act on, and the command each becomes
EVENT_COMMANDS: Mapping[str, type[StripeEventCommand]] = {
    "payment_method.attached": SyncPaymentMethodAttached,
    "payment_method.detached": SyncPaymentMethodDetached,
    "payment_method.updated": SyncPaymentMethodUpdated,
    "payment_method.automatically_updated": SyncPaymentMethodUpdated,  # the card network updated the card
    "setup_intent.succeeded": RecordSetupIntentSucceeded,
    "payment_intent.succeeded": RecordPaymentSucceeded,
    "payment_intent.payment_failed": RecordPaymentFailed,
}


def _id_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    identifier = value.get("id") if isinstance(value, Mapping) else None
    return identifier if isinstance(identifier, str) else None


def _metadata(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _occurred_at(created: Any) -> str | None:
    if isinstance(created, bool) or not isinstance(created, int):
        return None
    return datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")


def _payment_method_payload(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    method = payment_method_from_json(obj)
    if method.payment_method_type is None:
        return None
    return {
        "gateway": "stripe",
        "gatewayPaymentMethodId": method.id,
        "gatewayCustomerId": method.gateway_customer_id,
        "type": method.type,
        "brand": method.brand,
        "last4": method.last4,
        "expMonth": method.exp_month,
        "expYear": method.exp_year,
        "country": method.country,
        "fingerprint": method.fingerprint,
        "billingDetails": method.billing_details,
        "metadata": _metadata(obj.get("metadata")),
    }


def _payment_payload(obj: Mapping[str, Any]) -> dict[str, Any]:
    result = payment_result_from_json(obj)
    return {
        "gatewayPaymentIntentId": result.id,
        "gatewayCustomerId": result.gateway_customer_id,
        "gatewayPaymentMethodId": result.gateway_payment_method_id,
        "status": result.status,
        "amount": result.amount,
        "amountReceived": result.amount_received,
        "currency": result.currency,
        "latestChargeId": _id_of(obj.get("latest_charge")),
        "metadata": _metadata(obj.get("metadata")),
    }


def stripe_event_to_command(event: Mapping[str, Any]) -> StripeEventCommand | None:
    """The command for a Stripe event we act on, None for the others.

    Also None for a payment method of a type we do not support (see `PaymentMethodType`),
    which we never stored. Raises WebhookPayloadError for an event missing what its type
    requires, or that the command refuses.
    """
    mapped = _event_payload(event)
    if mapped is None:
        return None
    command, payload = mapped
    try:
        return command.model_validate(payload)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise WebhookPayloadError(f"The {event.get('type')} event is malformed: {where}: {problem['msg']}") from None


def _event_payload(event: Mapping[str, Any]) -> tuple[type[StripeEventCommand], dict[str, Any]] | None:
    event_type = event.get("type")
    command = EVENT_COMMANDS.get(event_type) if isinstance(event_type, str) else None
    if command is None:
        return None
    event_id = event.get("id")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(event_id, str) or not isinstance(obj, Mapping) or not isinstance(obj.get("id"), str):
        raise WebhookPayloadError(f"The {event_type} event has no id or no data.object with an id.")
    previous = data.get("previous_attributes") if isinstance(data, Mapping) else None
    previous = previous if isinstance(previous, Mapping) else {}

    common: dict[str, Any] = {
        "stripeEventId": event_id,
        "occurredAt": _occurred_at(event.get("created")),
        "livemode": bool(event.get("livemode", False)),
    }
    if isinstance(event.get("account"), str):
        common["stripeAccount"] = event["account"]

    try:
        if command in (SyncPaymentMethodAttached, SyncPaymentMethodUpdated):
            payload = _payment_method_payload(obj)
            if payload is None:
                return None
            return command, {**common, **payload}
        if command is SyncPaymentMethodDetached:
            payload = _payment_method_payload(obj)
            if payload is None:
                return None
            # after a detach the object's customer is null; Stripe names the old one here
            payload["gatewayCustomerId"] = _id_of(previous.get("customer")) or payload["gatewayCustomerId"]
            return command, {**common, **payload}
        if command is RecordSetupIntentSucceeded:
            return command, {
                **common,
                "gatewaySetupIntentId": obj["id"],
                "gatewayCustomerId": _id_of(obj.get("customer")),
                "gatewayPaymentMethodId": _id_of(obj.get("payment_method")),
                "status": obj.get("status"),
                "usage": obj.get("usage"),
                "metadata": _metadata(obj.get("metadata")),
            }
        if command is RecordPaymentSucceeded:
            return command, {**common, **_payment_payload(obj)}
        # RecordPaymentFailed
        error = obj.get("last_payment_error")
        error = error if isinstance(error, Mapping) else {}
        payload = _payment_payload(obj)
        payload["gatewayPaymentMethodId"] = payload["gatewayPaymentMethodId"] or _id_of(error.get("payment_method"))
        return command, {
            **common,
            **payload,
            "failureCode": error.get("code"),
            "declineCode": error.get("decline_code"),
            "failureMessage": error.get("message"),
        }
    except GatewayError as error:  # e.g. a non-integer amount
        raise WebhookPayloadError(f"The {event_type} event is malformed: {error.message}") from None


__all__ = [
    "DEFAULT_TOLERANCE",
    "EVENT_COMMANDS",
    "SIGNATURE_HEADER",
    "SignatureFailure",
    "WebhookPayloadError",
    "WebhookSignatureError",
    "compute_signature",
    "construct_event",
    "parse_signature_header",
    "sign_payload",
    "stripe_event_to_command",
    "verify_signature",
]
