"""The payment gateway seen by the services: a protocol, its results, its errors. No I/O.

A gateway keeps card data on its side and gives us tokens: a gateway customer (``cus_...``),
payment methods (``pm_...``), setup intents (``seti_...``, their client secret goes to the
browser so Stripe.js can collect the card), payment intents (``pi_...``) and refunds.

Money is an int in the currency's minor unit, never a float; currencies are lowercase
ISO 4217 codes. Every call that creates or changes something takes an idempotency key,
passed to the gateway as is: derive it from the command id (``f"{command_id}:attach"``) so
a redelivered command repeats the same request instead of charging twice.

Errors are `BillingError`s (Stripe's shape: type, code, param, message, status) so a
consumer can record them as the command's outcome and the API can answer them unchanged:

| class | type | status | when |
| --- | --- | --- | --- |
| `GatewayCardError` | card_error | 402 | the card was declined or is invalid; `code` is Stripe's (``card_declined``, ``expired_card``, ``incorrect_cvc``...), `decline_code` the issuer's reason (``insufficient_funds``...) |
| `GatewayInvalidRequest` | invalid_request_error (or idempotency_error) | 400, 404 | Stripe refused the parameters or does not know the object (``resource_missing``, 404); Stripe's `code` and `param` are kept |
| `GatewayAuthenticationError` | invalid_request_error | 400 | the organization's Stripe secret key is missing, wrong, revoked or lacks a permission (code ``gateway_not_configured``, ``gateway_authentication_failed``, ``gateway_permission_denied``); not 401, which would tell the API caller that ITS key is wrong; not 5xx, which clients retry |
| `GatewayUnavailable` | api_error | 503 | Stripe cannot be reached, timed out, rate-limited us or failed (code ``gateway_unavailable``, ``gateway_rate_limited``, ``gateway_error``); `retry_after` in seconds |
| `GatewayError` | api_error | 502 | anything else Stripe answered that we do not know (base class of the above) |

Each carries `http_status` (= `status`), `retry_after`, `decline_code`, `request_id`
(Stripe's request id, for support), `gateway_type` (Stripe's own error type) and, for a
card error on a charge, `payment_intent_id`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from billing.errors import BillingError
from billing.money.currencies import is_known_currency
from contracts.enums import PaymentMethodType
from contracts.json_shapes import StripeAddress, StripeBillingDetails

# ---------------------------------------------------------------------------- errors


class GatewayError(BillingError):
    """A failure answered by (or on the way to) the payment gateway."""

    type = "api_error"
    status = 502
    default_code: str | None = "gateway_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        status: int | None = None,
        decline_code: str | None = None,
        retry_after: int | None = None,
        request_id: str | None = None,
        gateway_type: str | None = None,
        payment_intent_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code or self.default_code, param=param, type=type, status=status)
        self.decline_code = decline_code
        self.retry_after = retry_after
        self.request_id = request_id
        self.gateway_type = gateway_type
        self.payment_intent_id = payment_intent_id

    @property
    def http_status(self) -> int:
        return self.status

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        if self.decline_code is not None:
            body["decline_code"] = self.decline_code
        return body

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, type={self.type!r}, code={self.code!r}, "
            f"param={self.param!r}, status={self.status}, decline_code={self.decline_code!r}, "
            f"retry_after={self.retry_after!r}, request_id={self.request_id!r})"
        )


class GatewayCardError(GatewayError):
    """The card was declined or its details are wrong (Stripe's card_error, 402)."""

    type = "card_error"
    status = 402
    default_code = "card_declined"


class GatewayInvalidRequest(GatewayError):
    """Stripe refused the request's parameters (400) or does not know the object (404)."""

    type = "invalid_request_error"
    status = 400
    default_code = "parameter_invalid"


class GatewayAuthenticationError(GatewayError):
    """The organization's Stripe secret key is missing, wrong, revoked or not allowed this call."""

    type = "invalid_request_error"
    status = 400
    default_code = "gateway_authentication_failed"


class GatewayUnavailable(GatewayError):
    """Stripe could not be reached or failed; try again after `retry_after` seconds."""

    type = "api_error"
    status = 503
    default_code = "gateway_unavailable"
    default_retry_after = 1

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(
            message, retry_after=self.default_retry_after if retry_after is None else retry_after, **kwargs
        )


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class SetupIntent:
    id: str
    client_secret: str | None
    status: str  # requires_payment_method, requires_confirmation, requires_action, processing, canceled, succeeded
    gateway_customer_id: str | None = None
    gateway_payment_method_id: str | None = None
    usage: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayPaymentMethod:
    """What we keep of a payment method: never the number, only its description."""

    id: str
    type: str  # Stripe's type; `payment_method_type` says whether we support it
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    country: str | None
    fingerprint: str | None
    billing_details: dict[str, Any] = field(default_factory=dict)
    gateway_customer_id: str | None = None  # the customer it is attached to, None when detached

    @property
    def payment_method_type(self) -> PaymentMethodType | None:
        """Our enum for `type`, or None for a type we do not support (e.g. ``paypal``)."""
        try:
            return PaymentMethodType(self.type)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """A payment intent after an off-session confirmation.

    `status` is Stripe's: ``succeeded``; ``processing`` (bank debits settle later, the outcome
    comes as a webhook); ``requires_payment_method`` after a decline (then `failure_code`,
    `decline_code`, `failure_message` say why); ``requires_action`` when the customer must
    authenticate (not possible off session: ask them to come back).
    """

    id: str
    status: str
    amount: int
    currency: str
    failure_code: str | None = None
    failure_message: str | None = None
    decline_code: str | None = None
    gateway_customer_id: str | None = None
    gateway_payment_method_id: str | None = None
    amount_received: int | None = None
    # requires_action: where the customer authenticates (Stripe's next_action.redirect_to_url)
    next_action_url: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed(self) -> bool:
        return self.status in ("requires_payment_method", "canceled") and self.failure_code is not None


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    status: str | None  # pending, requires_action, succeeded, failed, canceled
    amount: int
    currency: str | None = None
    payment_intent_id: str | None = None
    failure_reason: str | None = None


# ---------------------------------------------------------------------------- protocol


@runtime_checkable
class PaymentGateway(Protocol):
    """One organization's account at a payment gateway. All calls are async."""

    name: str  # stored in customer_payment_methods.gateway ("stripe")

    async def create_customer(
        self, email: str | None, name: str | None, metadata: Mapping[str, str] | None, idempotency_key: str
    ) -> str:
        """Create the gateway customer; answers its id (``cus_...``)."""
        ...

    async def create_setup_intent(
        self,
        gateway_customer_id: str,
        payment_method_types: Sequence[str],
        idempotency_key: str,
        *,
        usage: str = "off_session",
        metadata: Mapping[str, str] | None = None,
    ) -> SetupIntent:
        """A setup intent whose client secret lets the browser collect a payment method."""
        ...

    async def attach_payment_method(
        self, gateway_pm_id: str, gateway_customer_id: str, idempotency_key: str
    ) -> GatewayPaymentMethod: ...

    async def detach_payment_method(
        self, gateway_pm_id: str, idempotency_key: str | None = None
    ) -> GatewayPaymentMethod: ...

    async def retrieve_payment_method(self, gateway_pm_id: str) -> GatewayPaymentMethod: ...

    async def charge_off_session(
        self,
        gateway_customer_id: str,
        gateway_pm_id: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> PaymentResult:
        """Charge a saved payment method without the customer present.

        A decline answers a PaymentResult with the failure (so the attempt can be recorded
        against the payment intent); GatewayCardError only when the gateway made no payment
        intent.
        """
        ...

    async def refund(self, payment_intent_id: str, amount: int | None, idempotency_key: str) -> Refund:
        """Refund all (`amount` None) or part of a payment."""
        ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------- checks before calling out

_GATEWAY_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_METADATA_KEY_MAX = 40
_METADATA_VALUE_MAX = 500
IDEMPOTENCY_KEY_MAX = 255


def check_gateway_id(value: object, param: str) -> str:
    """A gateway object id: letters, digits and underscores (``pm_1Pgag7B7WZ01zgkW``).

    Checked before calling out so an id never changes the request's URL; a malformed id
    is answered like an unknown one (404 resource_missing), a missing one 400.
    """
    if isinstance(value, str) and _GATEWAY_ID.fullmatch(value):
        return value
    if value is None or value == "":
        raise GatewayInvalidRequest(f"Missing required param: {param}.", code="parameter_missing", param=param)
    if not isinstance(value, str):
        raise GatewayInvalidRequest(f"Invalid {param}: a string id is required.", code="parameter_invalid", param=param)
    raise GatewayInvalidRequest(f"No such {param}: {value[:64]!r}", code="resource_missing", param=param, status=404)


def check_amount(value: object, param: str = "amount") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GatewayInvalidRequest(
            f"Invalid {param}: an integer in the currency's minor unit is required, not {type(value).__name__}.",
            code="parameter_invalid_integer",
            param=param,
        )
    if value <= 0:
        raise GatewayInvalidRequest(
            f"Invalid {param}: must be greater than 0.", code="parameter_invalid_integer", param=param
        )
    return value


def check_currency(value: object, param: str = "currency") -> str:
    if not is_known_currency(value):
        raise GatewayInvalidRequest(f"Invalid currency: {value!r}.", code="parameter_invalid", param=param)
    assert isinstance(value, str)
    return value.lower()


def check_idempotency_key(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > IDEMPOTENCY_KEY_MAX:
        raise GatewayInvalidRequest(
            f"An idempotency key of 1 to {IDEMPOTENCY_KEY_MAX} characters is required.",
            code="idempotency_key_invalid",
            param="idempotency_key",
        )
    return value


def check_metadata(value: Mapping[str, Any] | None, param: str = "metadata") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise GatewayInvalidRequest(f"Invalid {param}: an object is required.", code="parameter_invalid", param=param)
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > _METADATA_KEY_MAX:
            raise GatewayInvalidRequest(
                f"Invalid {param} key: 1 to {_METADATA_KEY_MAX} characters.",
                code="parameter_invalid",
                param=f"{param}[{key}]",
            )
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise GatewayInvalidRequest(
                f"Invalid {param}[{key}]: a string is required.", code="parameter_invalid", param=f"{param}[{key}]"
            )
        text = str(item)
        if len(text) > _METADATA_VALUE_MAX:
            raise GatewayInvalidRequest(
                f"Invalid {param}[{key}]: at most {_METADATA_VALUE_MAX} characters.",
                code="parameter_invalid_string_too_long",
                param=f"{param}[{key}]",
            )
        out[key] = text
    return out


def check_payment_method_types(values: Sequence[str], param: str = "payment_method_types") -> list[str]:
    if isinstance(values, str) or not values:
        raise GatewayInvalidRequest(
            f"Invalid {param}: a non-empty list is required.", code="parameter_invalid", param=param
        )
    out: list[str] = []
    for index, value in enumerate(values):
        try:
            out.append(PaymentMethodType(value).value)
        except ValueError:
            supported = ", ".join(t.value for t in PaymentMethodType)
            raise GatewayInvalidRequest(
                f"Invalid {param}[{index}]: {value!r} is not one of {supported}.",
                code="parameter_invalid",
                param=f"{param}[{index}]",
            ) from None
    return out


# ---------------------------------------------------------------------------- parsing gateway JSON
# Pure functions over Stripe's JSON (plain dicts), shared with the webhook mapper.


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _id_of(value: Any) -> str | None:
    """An expandable field: an id string, or an expanded object with an id."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return None


def _require_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GatewayError(f"The gateway answered a non-integer {what}: {value!r}.", code="gateway_response_invalid")
    return value


def _billing_details(raw: object) -> dict[str, Any]:
    """Stripe's billing_details with the keys of its shape (prisma/json-shapes.toml) only:
    a key Stripe adds one day is not stored, so every stored row reads back as the
    shape the API promises."""
    if not isinstance(raw, Mapping):
        return {}
    kept = {key: raw[key] for key in sorted(StripeBillingDetails.__optional_keys__) if key in raw}
    address = kept.get("address")
    if isinstance(address, Mapping):
        kept["address"] = {key: address.get(key) for key in sorted(StripeAddress.__required_keys__)}
    return kept


def payment_method_from_json(data: Mapping[str, Any]) -> GatewayPaymentMethod:
    """A Stripe PaymentMethod object (as JSON) to our description of it."""
    pm_type = str(data.get("type") or "")
    details = data.get(pm_type) if pm_type else None
    details = details if isinstance(details, Mapping) else {}
    brand = details.get("brand") if pm_type == "card" else None  # cards only: bank names do not fit
    country = details.get("country")
    return GatewayPaymentMethod(
        id=str(data["id"]),
        type=pm_type,
        brand=brand,
        last4=details.get("last4"),
        exp_month=_int_or_none(details.get("exp_month")),
        exp_year=_int_or_none(details.get("exp_year")),
        country=country if isinstance(country, str) else None,
        fingerprint=details.get("fingerprint"),
        billing_details=_billing_details(data.get("billing_details")),
        gateway_customer_id=_id_of(data.get("customer")),
    )


def setup_intent_from_json(data: Mapping[str, Any]) -> SetupIntent:
    return SetupIntent(
        id=str(data["id"]),
        client_secret=data.get("client_secret"),
        status=str(data.get("status")),
        gateway_customer_id=_id_of(data.get("customer")),
        gateway_payment_method_id=_id_of(data.get("payment_method")),
        usage=data.get("usage"),
    )


def payment_result_from_json(data: Mapping[str, Any], error: Mapping[str, Any] | None = None) -> PaymentResult:
    """A Stripe PaymentIntent (as JSON), with the error of a failed confirmation if any."""
    failure = error if error else data.get("last_payment_error")
    failure = failure if isinstance(failure, Mapping) else {}
    return PaymentResult(
        id=str(data["id"]),
        status=str(data.get("status")),
        amount=_require_int(data.get("amount"), "amount"),
        currency=str(data.get("currency")),
        failure_code=failure.get("code"),
        failure_message=failure.get("message"),
        decline_code=failure.get("decline_code"),
        gateway_customer_id=_id_of(data.get("customer")),
        gateway_payment_method_id=_id_of(data.get("payment_method")),
        amount_received=_int_or_none(data.get("amount_received")),
        next_action_url=_redirect_url(data.get("next_action")),
    )


def _redirect_url(next_action: object) -> str | None:
    if not isinstance(next_action, Mapping):
        return None
    redirect = next_action.get("redirect_to_url")
    url = redirect.get("url") if isinstance(redirect, Mapping) else None
    return url if isinstance(url, str) else None


def refund_from_json(data: Mapping[str, Any]) -> Refund:
    return Refund(
        id=str(data["id"]),
        status=data.get("status"),
        amount=_require_int(data.get("amount"), "amount"),
        currency=data.get("currency"),
        payment_intent_id=_id_of(data.get("payment_intent")),
        failure_reason=data.get("failure_reason"),
    )


__all__ = [
    "GatewayAuthenticationError",
    "GatewayCardError",
    "GatewayError",
    "GatewayInvalidRequest",
    "GatewayPaymentMethod",
    "GatewayUnavailable",
    "PaymentGateway",
    "PaymentResult",
    "Refund",
    "SetupIntent",
    "payment_method_from_json",
    "payment_result_from_json",
    "refund_from_json",
    "setup_intent_from_json",
]
