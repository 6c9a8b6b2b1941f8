"""Stripe's errors that stripe-mock never answers, through the real SDK, mapped to ours.

stripe-mock never declines, rate-limits or fails. Here the SDK's own HTTPX client is
subclassed to answer Stripe's documented error bodies (https://docs.stripe.com/api/errors)
instead of going to the network, so the SDK itself picks the exception class from the
status and body, exactly as it does for api.stripe.com, and `StripeGateway` maps it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import stripe

from billing.errors import BillingError
from billing.payments.gateway import (
    GatewayAuthenticationError,
    GatewayCardError,
    GatewayError,
    GatewayInvalidRequest,
    GatewayUnavailable,
    PaymentResult,
)
from billing.payments.stripe_gateway import StripeGateway, already_detached, map_stripe_error

pytestmark = pytest.mark.unit


class CannedHTTPXClient(stripe.HTTPXClient):
    """Answers the given (status, body, headers) responses in turn, recording the requests."""

    def __init__(self, *responses: tuple[int, Any, Mapping[str, str]]) -> None:
        super().__init__()
        self.responses = list(responses)
        self.requests: list[dict[str, Any]] = []

    async def request_async(self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None) -> Any:
        self.requests.append({"method": method, "url": url, "headers": dict(headers)})
        status, body, response_headers = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return content, status, {"request-id": "req_canned", **response_headers}


def _gateway(
    *responses: tuple[int, Any, Mapping[str, str]], retries: int = 0
) -> tuple[StripeGateway, CannedHTTPXClient]:
    http = CannedHTTPXClient(*responses)
    return StripeGateway(
        "sk_test_123", api_base="http://stripe.invalid", http_client=http, max_network_retries=retries
    ), http


DECLINED_INTENT = {
    "id": "pi_3Declined",
    "object": "payment_intent",
    "amount": 1999,
    "amount_received": 0,
    "currency": "usd",
    "customer": "cus_123",
    "payment_method": "pm_123",
    "status": "requires_payment_method",
    "last_payment_error": {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
    },
}


def _card_error(**extra: Any) -> dict[str, Any]:
    return {
        "error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            **extra,
        }
    }


async def test_declined_off_session_charge_answers_the_failed_payment_intent() -> None:
    gateway, http = _gateway((402, _card_error(payment_intent=DECLINED_INTENT), {}))
    result = await gateway.charge_off_session("cus_123", "pm_123", 1999, "usd", "cmd_1:charge")
    assert isinstance(result, PaymentResult)
    assert (result.id, result.status, result.amount, result.currency) == (
        "pi_3Declined",
        "requires_payment_method",
        1999,
        "usd",
    )
    assert (result.failure_code, result.decline_code) == ("card_declined", "insufficient_funds")
    assert result.failure_message == "Your card has insufficient funds."
    assert result.failed and not result.succeeded
    assert http.requests[0]["headers"]["Idempotency-Key"] == "cmd_1:charge"


async def test_authentication_required_off_session_is_recorded_too() -> None:
    intent = {**DECLINED_INTENT, "last_payment_error": None}
    body = _card_error(
        code="authentication_required",
        decline_code="authentication_required",
        message="Your card was declined. This transaction requires authentication.",
        payment_intent=intent,
    )
    gateway, _ = _gateway((402, body, {}))
    result = await gateway.charge_off_session("cus_123", "pm_123", 1999, "usd", "k")
    assert (result.failure_code, result.decline_code) == ("authentication_required", "authentication_required")


async def test_card_error_without_payment_intent_raises() -> None:
    gateway, _ = _gateway((402, _card_error(), {}))
    with pytest.raises(GatewayCardError) as caught:
        await gateway.charge_off_session("cus_123", "pm_123", 1999, "usd", "k")
    error = caught.value
    assert (error.type, error.status, error.http_status) == ("card_error", 402, 402)
    assert (error.code, error.decline_code) == ("card_declined", "insufficient_funds")
    assert error.message == "Your card has insufficient funds."
    assert error.request_id == "req_canned"
    assert error.to_dict()["decline_code"] == "insufficient_funds"


async def test_card_error_on_attach_keeps_code_and_param() -> None:
    body = {
        "error": {
            "type": "card_error",
            "code": "expired_card",
            "param": "exp_year",
            "message": "Your card has expired.",
        }
    }
    gateway, _ = _gateway((402, body, {}))
    with pytest.raises(GatewayCardError) as caught:
        await gateway.attach_payment_method("pm_123", "cus_123", "k")
    assert (caught.value.code, caught.value.param, caught.value.decline_code) == ("expired_card", "exp_year", None)
    assert "decline_code" not in caught.value.to_dict()


async def test_invalid_request_keeps_stripe_code_and_param() -> None:
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_invalid_integer",
            "param": "amount",
            "message": "Invalid integer: abc",
        }
    }
    gateway, _ = _gateway((400, body, {}))
    with pytest.raises(GatewayInvalidRequest) as caught:
        await gateway.refund("pi_123", 5, "k")
    assert (caught.value.type, caught.value.code, caught.value.param, caught.value.status) == (
        "invalid_request_error",
        "parameter_invalid_integer",
        "amount",
        400,
    )
    assert caught.value.message == "Invalid integer: abc"


async def test_missing_object_is_a_404() -> None:
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "param": "payment_method",
            "message": "No such PaymentMethod: 'pm_404'",
        }
    }
    gateway, _ = _gateway((404, body, {}))
    with pytest.raises(GatewayInvalidRequest) as caught:
        await gateway.retrieve_payment_method("pm_404")
    assert (caught.value.code, caught.value.param, caught.value.status) == ("resource_missing", "payment_method", 404)


async def test_idempotency_key_reused_with_other_params() -> None:
    body = {
        "error": {
            "type": "idempotency_error",
            "message": "Keys for idempotent requests can only be used with the same parameters they were first used with.",
        }
    }
    gateway, _ = _gateway((400, body, {}))
    with pytest.raises(GatewayInvalidRequest) as caught:
        await gateway.create_customer("a@example.com", None, None, "k")
    assert (caught.value.type, caught.value.code, caught.value.status) == (
        "idempotency_error",
        "idempotency_key_in_use",
        400,
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "gateway_authentication_failed"), (403, "gateway_permission_denied")],
)
async def test_key_problems_are_authentication_errors(status: int, code: str) -> None:
    body = {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****1234"}}
    gateway, _ = _gateway((status, body, {}))
    with pytest.raises(GatewayAuthenticationError) as caught:
        await gateway.create_customer(None, None, None, "k")
    assert (caught.value.code, caught.value.status, caught.value.type) == (code, 400, "invalid_request_error")
    assert "Invalid API Key provided" in caught.value.message


@pytest.mark.parametrize(
    ("headers", "retry_after"), [({"Retry-After": "7"}, 7), ({}, 1), ({"Retry-After": "9999"}, 300)]
)
async def test_rate_limit_is_unavailable_with_retry_after(headers: dict[str, str], retry_after: int) -> None:
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": "Too many requests hit the API too quickly.",
        }
    }
    gateway, _ = _gateway((429, body, headers))
    with pytest.raises(GatewayUnavailable) as caught:
        await gateway.create_customer(None, None, None, "k")
    assert (caught.value.code, caught.value.status, caught.value.retry_after) == (
        "gateway_rate_limited",
        503,
        retry_after,
    )


async def test_stripe_5xx_is_retried_with_the_same_key_then_unavailable() -> None:
    body = {"error": {"type": "api_error", "message": "An unknown error occurred"}}
    gateway, http = _gateway((500, body, {}), retries=2)
    with pytest.raises(GatewayUnavailable) as caught:
        await gateway.charge_off_session("cus_123", "pm_123", 100, "usd", "cmd_2:charge")
    assert (caught.value.code, caught.value.status, caught.value.type) == ("gateway_error", 503, "api_error")
    assert len(http.requests) == 3
    assert {r["headers"]["Idempotency-Key"] for r in http.requests} == {"cmd_2:charge"}


async def test_retry_then_success() -> None:
    ok = {"id": "cus_ok", "object": "customer"}
    gateway, http = _gateway((503, b"<html>upstream</html>", {}), (200, ok, {}), retries=2)
    assert await gateway.create_customer(None, None, None, "k") == "cus_ok"
    assert len(http.requests) == 2


async def test_non_json_error_page_is_unavailable() -> None:
    gateway, _ = _gateway((502, b"<html>Bad Gateway</html>", {}))
    with pytest.raises(GatewayUnavailable) as caught:
        await gateway.create_customer(None, None, None, "k")
    assert caught.value.status == 503


def test_unknown_stripe_errors_are_gateway_errors() -> None:
    error = map_stripe_error(stripe.SignatureVerificationError("bad", "t=1"))
    assert type(error) is GatewayError
    assert (error.type, error.status, error.code) == ("api_error", 502, "gateway_error")


@pytest.mark.parametrize(
    "error",
    [
        stripe.CardError("declined", "number", "card_declined", json_body=_card_error(), http_status=402),
        stripe.InvalidRequestError("bad", "amount", "parameter_invalid_integer", http_status=400),
        stripe.AuthenticationError("no"),
        stripe.PermissionError("no"),
        stripe.RateLimitError("slow down"),
        stripe.APIConnectionError("down"),
        stripe.APIError("boom"),
        stripe.IdempotencyError("again"),
    ],
)
def test_every_mapped_error_is_a_billing_error_that_survives_the_pipeline(error: stripe.StripeError) -> None:
    mapped = map_stripe_error(error)
    assert isinstance(mapped, BillingError) and isinstance(mapped, GatewayError)
    assert mapped.code  # always a code the API can answer
    recorded = mapped.to_dict()
    json.dumps(recorded)
    again = BillingError.from_dict(recorded)
    assert (again.type, again.code, again.param, again.status, again.message) == (
        mapped.type,
        mapped.code,
        mapped.param,
        mapped.status,
        mapped.message,
    )


def test_already_detached_reads_stripe_answers_to_detaching_what_is_not_attached() -> None:
    assert already_detached(GatewayInvalidRequest("No such PaymentMethod: 'pm_x'", code="resource_missing", status=404))
    assert already_detached(
        GatewayInvalidRequest(
            "The payment method you provided is not attached to a customer so detachment is impossible.",
            code="payment_method_unexpected_state",
            status=400,
        )
    )
    assert not already_detached(GatewayInvalidRequest("Invalid string: x", code="parameter_invalid_string", status=400))
