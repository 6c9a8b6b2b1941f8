"""`StripeGateway` against the REAL stripe-mock, through the real `stripe` SDK and httpx.

stripe-mock (Stripe's own mock server, run by `billing stack up` on STRIPE_API_BASE) is
STATELESS: it validates each request against Stripe's OpenAPI spec and answers a fixture
object, with our ids only sometimes echoed back. It keeps nothing between calls (an
attached payment method is not attached afterwards, any `pm_...` id "exists"), never
declines a card and never answers 402. So these tests assert what it can show:

- our requests are accepted by Stripe's spec (paths, parameter names and types);
- responses are parsed into our frozen dataclasses with the right types (amounts are ints);
- the idempotency key is sent as the `Idempotency-Key` header (recorded on the way out by a
  subclass of the SDK's own HTTPX client) and echoed back by stripe-mock, and stays the
  same across the SDK's network retries;
- the error mapping for what stripe-mock really answers: 400 for a request that breaks the
  spec, 404 for an unknown URL, 401 for a key that does not look like a Stripe key; and
  GatewayUnavailable when nothing listens.

Card declines (402), rate limits and Stripe's 5xx cannot come from stripe-mock: they are
tested in `test_gateway_errors.py` with Stripe's documented error bodies.

If stripe-mock is not reachable these tests FAIL (never skip): run `billing stack up`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import FrozenInstanceError
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import stripe
from pydantic import TypeAdapter

from billing.payments.gateway import (
    GatewayAuthenticationError,
    GatewayInvalidRequest,
    GatewayPaymentMethod,
    GatewayUnavailable,
    PaymentGateway,
    PaymentResult,
    Refund,
    SetupIntent,
    payment_method_from_json,
)
from billing.payments.stripe_gateway import StripeGateway, StripeGatewayPool
from billing.secrets.encryption import Keyring, generate_key
from contracts.enums import PaymentMethodType
from contracts.json_shapes import StripeBillingDetails

TEST_KEY = "sk_test_123"

# the SDK's HTTPX client posts its form as `data=<str>`, which httpx deprecates; not ours to fix
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)


class RecordingHTTPXClient(stripe.HTTPXClient):
    """The SDK's own async HTTPX client, recording each request and its response headers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests: list[dict[str, Any]] = []

    async def request_async(self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None) -> Any:
        record: dict[str, Any] = {
            "method": method.upper(),
            "path": urlsplit(url).path,
            "query": dict(parse_qsl(urlsplit(url).query)),
            "headers": {k.lower(): v for k, v in headers.items()},
            "form": dict(parse_qsl(post_data, keep_blank_values=True)) if isinstance(post_data, str) else {},
        }
        self.requests.append(record)
        content, status, response_headers = await super().request_async(method, url, headers, post_data)
        record["status"] = status
        record["response_headers"] = {k.lower(): v for k, v in response_headers.items()}
        return content, status, response_headers

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


@pytest.fixture
async def recorder() -> RecordingHTTPXClient:
    return RecordingHTTPXClient(timeout=httpx.Timeout(10.0, connect=2.0))


@pytest.fixture
async def gateway(stripe_api_base: str, recorder: RecordingHTTPXClient) -> AsyncIterator[StripeGateway]:
    async with StripeGateway(TEST_KEY, api_base=stripe_api_base, http_client=recorder, max_network_retries=0) as gw:
        yield gw


def _assert_idempotency(record: dict[str, Any], key: str) -> None:
    assert record["headers"].get("idempotency-key") == key
    # stripe-mock echoes the header back: it reached the server as sent
    assert record["response_headers"].get("idempotency-key") == key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_stripe_gateway_satisfies_the_protocol(stripe_api_base: str) -> None:
    assert isinstance(StripeGateway(TEST_KEY, api_base=stripe_api_base), PaymentGateway)


async def test_create_customer(gateway: StripeGateway, recorder: RecordingHTTPXClient) -> None:
    customer_id = await gateway.create_customer(
        "jenny@example.com", "Jenny Rosen", {"org_customer": "cus_local_1"}, "cmd_1:customer"
    )
    assert isinstance(customer_id, str) and customer_id.startswith("cus_")
    record = recorder.last
    assert (record["method"], record["path"], record["status"]) == ("POST", "/v1/customers", 200)
    assert record["form"] == {
        "email": "jenny@example.com",
        "name": "Jenny Rosen",
        "metadata[org_customer]": "cus_local_1",
    }
    assert record["headers"]["authorization"] == f"Bearer {TEST_KEY}"
    _assert_idempotency(record, "cmd_1:customer")


async def test_create_customer_without_email_or_name(gateway: StripeGateway, recorder: RecordingHTTPXClient) -> None:
    assert (await gateway.create_customer(None, None, None, "cmd_2")).startswith("cus_")
    assert recorder.last["form"] == {}


async def test_create_setup_intent(gateway: StripeGateway, recorder: RecordingHTTPXClient) -> None:
    intent = await gateway.create_setup_intent("cus_123", ["card", "sepa_debit"], "cmd_3:setup", metadata={"a": "b"})
    assert isinstance(intent, SetupIntent)
    assert intent.id.startswith("seti_")
    assert isinstance(intent.client_secret, str) and "_secret_" in intent.client_secret
    assert isinstance(intent.status, str)
    record = recorder.last
    assert (record["method"], record["path"], record["status"]) == ("POST", "/v1/setup_intents", 200)
    assert record["form"] == {
        "customer": "cus_123",
        "payment_method_types[0]": "card",
        "payment_method_types[1]": "sepa_debit",
        "usage": "off_session",
        "metadata[a]": "b",
    }
    _assert_idempotency(record, "cmd_3:setup")


async def test_attach_payment_method(gateway: StripeGateway, recorder: RecordingHTTPXClient) -> None:
    method = await gateway.attach_payment_method("pm_1Pgag7B7WZ01zgkW", "cus_123", "cmd_4:attach")
    assert isinstance(method, GatewayPaymentMethod)
    assert method.type == "card" and method.payment_method_type is PaymentMethodType.card
    assert isinstance(method.brand, str)
    assert isinstance(method.last4, str) and len(method.last4) == 4 and method.last4.isdigit()
    assert type(method.exp_month) is int and 1 <= method.exp_month <= 12
    assert type(method.exp_year) is int and method.exp_year > 2000
    assert isinstance(method.fingerprint, str)
    assert isinstance(method.country, str) and len(method.country) == 2
    assert isinstance(method.billing_details, dict)
    assert isinstance(method.billing_details.get("address"), dict)  # plain dicts, not SDK objects
    TypeAdapter(StripeBillingDetails).validate_python(method.billing_details)  # the shape stored and served
    with pytest.raises(FrozenInstanceError):
        method.last4 = "0000"  # type: ignore[misc]
    record = recorder.last
    assert (record["method"], record["path"], record["status"]) == (
        "POST",
        "/v1/payment_methods/pm_1Pgag7B7WZ01zgkW/attach",
        200,
    )
    assert record["form"] == {"customer": "cus_123"}
    _assert_idempotency(record, "cmd_4:attach")


def test_billing_details_keep_only_the_keys_of_their_shape() -> None:
    """A key Stripe adds one day (here `nickname`, and `county` in the address) is not stored:
    the stored value is what `StripeBillingDetails` promises, so reading it back never fails."""
    method = payment_method_from_json(
        {
            "id": "pm_1",
            "type": "card",
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031},
            "billing_details": {
                "email": "a@example.com",
                "name": None,
                "nickname": "work card",
                "address": {"city": "Köln", "county": "NRW"},
            },
        }
    )
    assert method.billing_details == {
        "address": {
            "city": "Köln",
            "country": None,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "email": "a@example.com",
        "name": None,
    }
    TypeAdapter(StripeBillingDetails).validate_python(method.billing_details)


async def test_detach_and_retrieve_payment_method(gateway: StripeGateway, recorder: RecordingHTTPXClient) -> None:
    detached = await gateway.detach_payment_method("pm_123", "cmd_5:detach")
    assert isinstance(detached, GatewayPaymentMethod) and detached.type == "card"
    assert (recorder.last["method"], recorder.last["path"]) == ("POST", "/v1/payment_methods/pm_123/detach")
    _assert_idempotency(recorder.last, "cmd_5:detach")

    retrieved = await gateway.retrieve_payment_method("pm_123")
    assert isinstance(retrieved, GatewayPaymentMethod)
    assert (recorder.last["method"], recorder.last["path"], recorder.last["status"]) == (
        "GET",
        "/v1/payment_methods/pm_123",
        200,
    )
    assert "idempotency-key" not in recorder.last["headers"]


async def test_charge_off_session(gateway: StripeGateway, recorder: RecordingHTTPXClient) -> None:
    result = await gateway.charge_off_session("cus_123", "pm_123", 1999, "usd", "cmd_6:charge", {"invoice": "in_1"})
    assert isinstance(result, PaymentResult)
    assert result.id.startswith("pi_")
    assert type(result.amount) is int
    assert isinstance(result.currency, str) and isinstance(result.status, str)
    assert result.amount_received is None or type(result.amount_received) is int
    record = recorder.last
    assert (record["method"], record["path"], record["status"]) == ("POST", "/v1/payment_intents", 200)
    assert record["form"] == {
        "customer": "cus_123",
        "payment_method": "pm_123",
        "amount": "1999",
        "currency": "usd",
        "off_session": "true",
        "confirm": "true",
        "automatic_payment_methods[enabled]": "true",
        "automatic_payment_methods[allow_redirects]": "never",
        "metadata[invoice]": "in_1",
    }
    _assert_idempotency(record, "cmd_6:charge")


async def test_charge_zero_decimal_and_uppercase_currency(
    gateway: StripeGateway, recorder: RecordingHTTPXClient
) -> None:
    await gateway.charge_off_session("cus_123", "pm_123", 500, "JPY", "cmd_7")
    assert recorder.last["form"]["currency"] == "jpy"
    assert recorder.last["form"]["amount"] == "500"


async def test_refund_full_and_partial(gateway: StripeGateway, recorder: RecordingHTTPXClient) -> None:
    full = await gateway.refund("pi_123", None, "cmd_8:refund")
    assert isinstance(full, Refund) and full.id.startswith("re_") and type(full.amount) is int
    assert recorder.last["form"] == {"payment_intent": "pi_123"}
    _assert_idempotency(recorder.last, "cmd_8:refund")

    partial = await gateway.refund("pi_123", 250, "cmd_9:refund")
    assert isinstance(partial, Refund)
    assert recorder.last["form"] == {"payment_intent": "pi_123", "amount": "250"}
    assert (recorder.last["path"], recorder.last["status"]) == ("/v1/refunds", 200)


# ---------------------------------------------------------------------------- checked before calling out


@pytest.mark.parametrize("amount", [19.99, 1999.0, True, "1999", 0, -5, None])
async def test_amounts_must_be_positive_ints(
    gateway: StripeGateway, recorder: RecordingHTTPXClient, amount: Any
) -> None:
    with pytest.raises(GatewayInvalidRequest) as caught:
        await gateway.charge_off_session("cus_123", "pm_123", amount, "usd", "k")
    assert caught.value.param == "amount" and caught.value.status == 400
    assert caught.value.code == "parameter_invalid_integer"
    assert recorder.requests == []


async def test_unknown_currency_is_refused(gateway: StripeGateway, recorder: RecordingHTTPXClient) -> None:
    with pytest.raises(GatewayInvalidRequest) as caught:
        await gateway.charge_off_session("cus_123", "pm_123", 100, "zzz", "k")
    assert caught.value.param == "currency"
    assert recorder.requests == []


@pytest.mark.parametrize("bad_id", ["pm_1/../../customers/cus_1", "pm 1", "pm_1?x=1", "pm_1%2F"])
async def test_malformed_ids_never_reach_the_url(
    gateway: StripeGateway, recorder: RecordingHTTPXClient, bad_id: str
) -> None:
    with pytest.raises(GatewayInvalidRequest) as caught:
        await gateway.attach_payment_method(bad_id, "cus_123", "k")
    assert (caught.value.code, caught.value.param, caught.value.status) == ("resource_missing", "payment_method", 404)
    with pytest.raises(GatewayInvalidRequest) as caught:
        await gateway.attach_payment_method("pm_123", bad_id, "k")
    assert caught.value.param == "customer"
    assert recorder.requests == []


async def test_missing_idempotency_key_is_refused(gateway: StripeGateway, recorder: RecordingHTTPXClient) -> None:
    for key in ("", None, "x" * 256):
        with pytest.raises(GatewayInvalidRequest) as caught:
            await gateway.refund("pi_123", None, key)  # type: ignore[arg-type]
        assert caught.value.code == "idempotency_key_invalid"
    assert recorder.requests == []


async def test_unsupported_payment_method_types_are_refused(
    gateway: StripeGateway, recorder: RecordingHTTPXClient
) -> None:
    with pytest.raises(GatewayInvalidRequest) as caught:
        await gateway.create_setup_intent("cus_123", ["card", "paypal"], "k")
    assert caught.value.param == "payment_method_types[1]"
    with pytest.raises(GatewayInvalidRequest):
        await gateway.create_setup_intent("cus_123", [], "k")
    assert recorder.requests == []


# ---------------------------------------------------------------------------- errors stripe-mock really answers


async def test_request_breaking_the_spec_is_an_invalid_request(
    gateway: StripeGateway, recorder: RecordingHTTPXClient
) -> None:
    # every method goes through the same `_call`; a missing required param is what stripe-mock rejects
    with pytest.raises(GatewayInvalidRequest) as caught:
        await gateway._call(gateway.client.v1.payment_intents.create_async, params={"currency": "usd"})
    error = caught.value
    assert (error.type, error.status, error.http_status) == ("invalid_request_error", 400, 400)
    assert "amount" in error.message and "is required" in error.message
    assert error.code == "parameter_invalid"  # stripe-mock sends no code; Stripe's own is kept when sent
    assert error.request_id == "req_123"
    assert error.gateway_type == "invalid_request_error"
    assert isinstance(error.__cause__, stripe.InvalidRequestError)
    assert recorder.last["status"] == 400


async def test_unknown_url_is_a_404_invalid_request(stripe_api_base: str, recorder: RecordingHTTPXClient) -> None:
    async with StripeGateway(
        TEST_KEY, api_base=f"{stripe_api_base}/not-stripe", http_client=recorder, max_network_retries=0
    ) as gw:
        with pytest.raises(GatewayInvalidRequest) as caught:
            await gw.attach_payment_method("pm_123", "cus_123", "k")
    assert (caught.value.status, caught.value.code) == (404, "resource_missing")
    assert "Unrecognized request URL" in caught.value.message
    assert recorder.last["status"] == 404


async def test_a_key_stripe_rejects_is_an_authentication_error(
    stripe_api_base: str, recorder: RecordingHTTPXClient
) -> None:
    async with StripeGateway(
        "not_a_stripe_key", api_base=stripe_api_base, http_client=recorder, max_network_retries=0
    ) as gw:
        with pytest.raises(GatewayAuthenticationError) as caught:
            await gw.create_customer("a@example.com", None, None, "k")
    error = caught.value
    assert (error.type, error.code, error.status) == ("invalid_request_error", "gateway_authentication_failed", 400)
    assert "organization's secret key" in error.message
    assert recorder.last["status"] == 401
    assert isinstance(error.__cause__, stripe.AuthenticationError)


def test_no_key_is_gateway_not_configured(stripe_api_base: str) -> None:
    with pytest.raises(GatewayAuthenticationError) as caught:
        StripeGateway("", api_base=stripe_api_base)
    assert caught.value.code == "gateway_not_configured"


async def test_nothing_listening_is_unavailable() -> None:
    port = _free_port()
    async with StripeGateway(TEST_KEY, api_base=f"http://127.0.0.1:{port}", max_network_retries=0) as gw:
        with pytest.raises(GatewayUnavailable) as caught:
            await gw.create_customer("a@example.com", None, None, "k")
    error = caught.value
    assert (error.type, error.code, error.status) == ("api_error", "gateway_unavailable", 503)
    assert error.retry_after == 1
    assert isinstance(error.__cause__, stripe.APIConnectionError)


async def test_network_retries_reuse_the_idempotency_key() -> None:
    port = _free_port()
    recorder = RecordingHTTPXClient(timeout=httpx.Timeout(2.0, connect=1.0))
    started = time.monotonic()
    async with StripeGateway(
        TEST_KEY, api_base=f"http://127.0.0.1:{port}", http_client=recorder, max_network_retries=2
    ) as gw:
        with pytest.raises(GatewayUnavailable):
            await gw.charge_off_session("cus_123", "pm_123", 100, "usd", "cmd_10:charge")
    assert len(recorder.requests) == 3  # first try plus two retries
    assert {r["headers"]["idempotency-key"] for r in recorder.requests} == {"cmd_10:charge"}
    assert time.monotonic() - started < 15


async def test_timeout_is_unavailable() -> None:
    # a server that accepts and never answers
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        async with StripeGateway(
            TEST_KEY,
            api_base=f"http://127.0.0.1:{port}",
            timeout=httpx.Timeout(0.5, connect=0.5),
            max_network_retries=0,
        ) as gw:
            with pytest.raises(GatewayUnavailable) as caught:
                await gw.retrieve_payment_method("pm_123")
    assert caught.value.code == "gateway_unavailable"


# ---------------------------------------------------------------------------- one gateway per organization key


class _Org:
    def __init__(self, org_id: str, encrypted: str | None) -> None:
        self.id = org_id
        self.stripe_secret_key_encrypted = encrypted


async def test_pool_one_gateway_per_organization_key(stripe_api_base: str) -> None:
    ring = Keyring([generate_key()])
    pool = StripeGatewayPool(keyring=ring, api_base=stripe_api_base, max_network_retries=0)
    try:
        org = _Org("org_1", ring.encrypt(TEST_KEY))
        first = pool.for_organization(org)
        assert pool.for_organization(org) is first
        assert TEST_KEY not in repr(first)
        assert (await first.create_customer(None, None, None, "k1")).startswith("cus_")

        other = pool.for_organization(_Org("org_2", ring.encrypt(TEST_KEY)))
        assert other is not first

        org.stripe_secret_key_encrypted = ring.encrypt("sk_test_456")  # the organization changed its key
        replaced = pool.for_organization(org)
        assert replaced is not first
        assert (await replaced.create_customer(None, None, None, "k2")).startswith("cus_")

        with pytest.raises(GatewayAuthenticationError) as caught:
            pool.for_organization(_Org("org_3", None))
        assert caught.value.code == "gateway_not_configured"
    finally:
        await pool.aclose()
