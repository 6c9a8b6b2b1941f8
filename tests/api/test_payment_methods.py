"""Payment methods, setup intents and the Stripe account through the real stack:
API -> stripe-mock (the real `stripe` SDK), API -> Kafka -> consumer -> Postgres.

stripe-mock is STATELESS: it answers every call with a fixture object (our ids echoed
where Stripe's spec says so). Every PaymentMethod it returns is the same Visa card:
brand visa, last4 4242, exp 8/2030, country US, fingerprint AOB934RVNwzk6xtn; it keeps no
attachment, any pm_ id "exists", it never declines. So these tests assert what it can show:
our requests are accepted by Stripe's spec, Stripe's answer is what gets stored, two
PaymentMethods with the same fingerprint make one stored card, the Stripe customer is
created once and recorded. What stripe-mock cannot answer (a PaymentMethod Stripe does not
know, a declined card, a revoked key, an unsupported type) comes from a scripted Stripe
(`scripted_stripe`: Stripe's documented error bodies, served over HTTP to the same SDK),
and "Stripe unreachable" from an API whose STRIPE_API_BASE points at a closed port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import socket
import string
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

import api.bus as api_bus
from billing.delivery.outcomes import get_outcome
from billing.ids import new_id
from billing.models import Customer, CustomerPaymentMethod, Organization, ProcessedCommand, Subscription
from billing.secrets.encryption import keyring_from_settings
from contracts.enums import SubscriptionStatus
from contracts.envelopes import command_id_for
from contracts.settings import get_settings
from tests.api.conftest import TenantClient, assert_error, commands_applied, new_tenant, serve

MOCK_FINGERPRINT = "AOB934RVNwzk6xtn"  # stripe-mock's fixture card

pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)


# ---------------------------------------------------------------------------- helpers


@dataclasses.dataclass
class Connected:
    client: TenantClient
    secret_key: str
    webhook_secret: str

    @property
    def organization_id(self) -> str:
        return self.client.tenant.organization_id


def _base62(length: int) -> str:
    # like Stripe's own secrets (hex would often hold 13+ digits in a row: a "card number")
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def stripe_secrets() -> tuple[str, str]:
    return "sk_test_" + _base62(24), "whsec_" + _base62(32)


async def connected_tenant(api: httpx.AsyncClient, session_factory: Any, name: str = "Payments") -> Connected:  # type: ignore[no-untyped-def]
    """A new organization with its Stripe account connected (to stripe-mock) through the API."""
    client = TenantClient(api, await new_tenant(session_factory, name))
    secret_key, webhook_secret = stripe_secrets()
    response = await client.request(
        "PUT", "/v1/stripe-account", json={"secretKey": secret_key, "webhookSecret": webhook_secret}
    )
    assert response.status_code == 200, response.text
    return Connected(client, secret_key, webhook_secret)


async def new_customer(client: TenantClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/customers", json={"email": "jenny@example.com", "name": "Jenny Rosen", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def count(session_factory: Any, model: Any, organization_id: str) -> int:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        return await session.scalar(
            select(func.count()).select_from(model).where(model.organization_id == organization_id)
        )


async def add_subscription(
    session_factory: Any,
    organization_id: str,
    customer_id: str,
    status: SubscriptionStatus,  # type: ignore[no-untyped-def]
    default_payment_method_id: str | None = None,
) -> str:
    now = datetime.now(UTC)
    subscription_id = new_id("subscription")
    async with session_factory() as session, session.begin():
        session.add(
            Subscription(
                id=subscription_id,
                organization_id=organization_id,
                customer_id=customer_id,
                status=status,
                currency="usd",
                start_date=now,
                billing_cycle_anchor=now,
                current_period_start=now,
                current_period_end=now + timedelta(days=30),
                default_payment_method_id=default_payment_method_id,
            )
        )
    return subscription_id


async def set_subscription_status(session_factory: Any, subscription_id: str, status: SubscriptionStatus) -> None:  # type: ignore[no-untyped-def]
    async with session_factory() as session, session.begin():
        (await session.get(Subscription, subscription_id)).status = status  # type: ignore[union-attr]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------- a scripted Stripe


def _card(
    pm_id: str, *, customer: str | None = None, type_: str = "card", fingerprint: str = "ScriptedFp000001"
) -> dict[str, Any]:
    details = {
        "brand": "mastercard",
        "last4": "4444",
        "exp_month": 12,
        "exp_year": 2031,
        "country": "GB",
        "fingerprint": fingerprint,
    }
    return {
        "id": pm_id,
        "object": "payment_method",
        "type": type_,
        type_: details if type_ == "card" else {},
        "billing_details": {"name": "Scripted"},
        "customer": customer,
        "metadata": {},
        "created": 1700000000,
        "livemode": False,
    }


def _stripe_error(status: int, type_: str, message: str, **fields: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    return status, {"error": {"type": type_, "message": message, **fields}}, {"Request-Id": "req_scripted"}


def scripted_answer(method: str, path: str, key: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Stripe's documented answers for what stripe-mock cannot produce."""
    if key == "sk_test_revoked":
        return _stripe_error(401, "invalid_request_error", "Invalid API Key provided: sk_test_****oked")
    if method == "GET" and path == "/v1/customers":
        return 200, {"object": "list", "data": [], "has_more": False, "url": "/v1/customers"}, {}
    if method == "POST" and path == "/v1/customers":
        return 200, {"id": "cus_scripted" + secrets.token_hex(4), "object": "customer"}, {}
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[1] == "payment_methods":
        pm_id = parts[2]
        if pm_id == "pm_unknown":
            return _stripe_error(
                404,
                "invalid_request_error",
                f"No such PaymentMethod: '{pm_id}'",
                code="resource_missing",
                param="payment_method",
            )
        if method == "GET":
            return (
                200,
                _card(pm_id, type_="paypal" if pm_id == "pm_paypal" else "card", fingerprint="Fp" + pm_id[-12:]),
                {},
            )
        if parts[-1] == "attach" and pm_id == "pm_declined":
            return _stripe_error(
                402, "card_error", "Your card was declined.", code="card_declined", decline_code="generic_decline"
            )
        if parts[-1] == "attach" and pm_id == "pm_ratelimited":
            return (
                429,
                {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}},
                {"Retry-After": "7", "Stripe-Should-Retry": "false"},
            )
        if parts[-1] == "attach" and pm_id == "pm_card_visa":
            # Stripe's test tokens attach as a new PaymentMethod each time
            return 200, _card("pm_copy_" + secrets.token_hex(6), customer="cus_x", fingerprint="FpVisaTestCard"), {}
        if parts[-1] == "attach":
            return 200, _card(pm_id, customer="cus_x", fingerprint="Fp" + pm_id[-12:]), {}
        if parts[-1] == "detach":
            return _stripe_error(
                400,
                "invalid_request_error",
                "The payment method you provided is not attached to a customer so detachment is impossible.",
                code="payment_method_unexpected_state",
            )
    return _stripe_error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")


async def _scripted_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    key = headers.get("authorization", "").removeprefix("Bearer ").strip()
    status, body, extra = scripted_answer(scope["method"], scope["path"], key)
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json")] + [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
async def scripted_stripe() -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(_scripted_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture(scope="module")
async def api_scripted(command_consumer: None, scripted_stripe: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API, talking to the scripted Stripe."""
    async with serve(dataclasses.replace(get_settings(), stripe_api_base=scripted_stripe)) as client:
        yield client


@pytest.fixture(scope="module")
async def api_unreachable(command_consumer: None) -> AsyncIterator[httpx.AsyncClient]:
    """The API, with Stripe unreachable (nothing listens on its STRIPE_API_BASE)."""
    async with serve(dataclasses.replace(get_settings(), stripe_api_base=f"http://127.0.0.1:{_free_port()}")) as client:
        yield client


# ---------------------------------------------------------------------------- the Stripe account


async def test_stripe_account_is_stored_encrypted_and_never_returned(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    client = TenantClient(api, await new_tenant(session_factory, "Account"))
    before = (await client.get("/v1/stripe-account")).json()
    assert before["connected"] is False and before["secretKeyLast4"] is None
    assert before["webhookUrl"] == f"/v1/webhooks/stripe/{client.tenant.organization_id}"

    secret_key, webhook_secret = stripe_secrets()
    put = await client.request(
        "PUT", "/v1/stripe-account", json={"secretKey": secret_key, "webhookSecret": webhook_secret}
    )
    assert put.status_code == 200, put.text
    assert put.json()["connected"] is True and put.json()["secretKeyLast4"] == secret_key[-4:]
    assert put.json()["mode"] == "test" and put.json()["webhookSecretConfigured"] is True
    shown = (await client.get("/v1/stripe-account")).json()
    assert shown == put.json()
    assert shown["id"] == client.tenant.organization_id and shown["object"] == "stripe_account"
    for body in (put.text, json.dumps(shown)):
        assert secret_key not in body and webhook_secret not in body

    async with session_factory() as session:
        organization = await session.get(Organization, client.tenant.organization_id)
        stored_key, stored_webhook = (
            organization.stripe_secret_key_encrypted,
            organization.stripe_webhook_secret_encrypted,
        )
        commands = (
            await session.scalars(
                select(ProcessedCommand).where(ProcessedCommand.organization_id == client.tenant.organization_id)
            )
        ).all()
    assert secret_key not in stored_key and webhook_secret not in stored_webhook  # Fernet tokens
    keyring = keyring_from_settings(get_settings())
    assert keyring.decrypt(stored_key) == secret_key and keyring.decrypt(stored_webhook) == webhook_secret
    recorded = json.dumps([[c.result, c.error] for c in commands])
    assert secret_key not in recorded and webhook_secret not in recorded and stored_key not in recorded

    gone = await client.delete("/v1/stripe-account")
    assert gone.status_code == 200 and gone.json()["connected"] is False
    assert (await client.get("/v1/stripe-account")).json()["connected"] is False


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"secretKey": "pk_test_123", "webhookSecret": "whsec_abc"}, "parameter_invalid_format", "secretKey"),
        ({"secretKey": "sk_test_123", "webhookSecret": "nope"}, "parameter_invalid_format", "webhookSecret"),
        ({"secretKey": "sk_test_123"}, "parameter_missing", "webhookSecret"),
        ({"secretKey": "sk_test_123", "webhookSecret": "whsec_abc", "extra": 1}, "parameter_unknown", "extra"),
    ],
)
async def test_stripe_account_bad_bodies(api, session_factory, body: dict, code: str, param: str) -> None:  # type: ignore[no-untyped-def]
    client = TenantClient(api, await new_tenant(session_factory, "Bad account"))
    assert_error(await client.request("PUT", "/v1/stripe-account", json=body), 400, code, param)
    assert (await client.get("/v1/stripe-account")).json()["connected"] is False


async def test_a_key_stripe_refuses_is_not_stored(api_scripted, session_factory) -> None:  # type: ignore[no-untyped-def]
    client = TenantClient(api_scripted, await new_tenant(session_factory, "Revoked"))
    response = await client.request(
        "PUT", "/v1/stripe-account", json={"secretKey": "sk_test_revoked", "webhookSecret": "whsec_x"}
    )
    error = assert_error(response, 400, "gateway_authentication_failed", "secretKey")
    assert "sk_test_revoked" not in error["message"]
    assert (await client.get("/v1/stripe-account")).json()["connected"] is False


# ---------------------------------------------------------------------------- setup intents


async def test_setup_intent_creates_the_stripe_customer_once(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer = await new_customer(org.client)
    assert customer["gatewayCustomerId"] is None

    first = await org.client.post("/v1/setup-intents", json={"customer": customer["id"], "metadata": {"order": "42"}})
    assert first.status_code == 201, first.text
    intent = first.json()
    assert intent["object"] == "setup_intent" and intent["id"].startswith("seti_")
    assert intent["clientSecret"].startswith("seti_") and "_secret_" in intent["clientSecret"]
    assert intent["customer"] == customer["id"] and intent["gatewayCustomerId"].startswith("cus_")
    assert intent["paymentMethodTypes"] == ["card"] and intent["usage"] == "off_session"
    recorded = (await org.client.get(f"/v1/customers/{customer['id']}")).json()
    assert recorded["gatewayCustomerId"] == intent["gatewayCustomerId"]

    # stripe-mock would make a new cus_ on every create: the same one again proves no second create
    second = (
        await org.client.post(
            "/v1/setup-intents", json={"customer": customer["id"], "paymentMethodTypes": ["card", "sepa_debit"]}
        )
    ).json()
    assert second["gatewayCustomerId"] == intent["gatewayCustomerId"]
    assert second["paymentMethodTypes"] == ["card", "sepa_debit"]


async def test_setup_intent_bad_input(api, api_client, other_api_client, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    assert_error(
        await org.client.post("/v1/setup-intents", json={"customer": "cus_missing"}),
        404,
        "resource_missing",
        "customer",
    )
    foreign = await new_customer(other_api_client)
    assert_error(
        await org.client.post("/v1/setup-intents", json={"customer": foreign["id"]}),
        404,
        "resource_missing",
        "customer",
    )
    mine = await new_customer(org.client)
    assert_error(
        await org.client.post("/v1/setup-intents", json={"customer": mine["id"], "paymentMethodTypes": ["paypal"]}),
        400,
        "parameter_invalid",
        "paymentMethodTypes[0]",
    )
    assert_error(
        await org.client.post("/v1/setup-intents", json={"customer": mine["id"], "usage": "sometimes"}),
        400,
        "parameter_invalid",
        "usage",
    )
    # an organization without a Stripe account
    plain = await new_customer(api_client)
    assert_error(
        await api_client.post("/v1/setup-intents", json={"customer": plain["id"]}), 400, "gateway_not_configured", None
    )


# ---------------------------------------------------------------------------- attach, list, get


async def test_attach_stores_stripes_description_of_the_card(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer = await new_customer(org.client)
    response = await org.client.post(
        f"/v1/customers/{customer['id']}/payment-methods", json={"paymentMethod": "pm_card_one"}
    )
    assert response.status_code == 201, response.text
    method = response.json()
    assert method["id"].startswith("pm_") and method["id"] != "pm_card_one"
    assert method["customerId"] == customer["id"] and method["organizationId"] == org.organization_id
    assert method["gateway"] == "stripe" and method["gatewayPaymentMethodId"] == "pm_card_one"
    assert (method["type"], method["brand"], method["last4"]) == ("card", "visa", "4242")
    assert (method["expMonth"], method["expYear"], method["country"]) == (8, 2030, "US")
    assert method["fingerprint"] == MOCK_FINGERPRINT
    assert method["billingDetails"]["email"] == "jenny@example.com"
    # the Stripe customer was made on first use and recorded
    assert (await org.client.get(f"/v1/customers/{customer['id']}")).json()["gatewayCustomerId"].startswith("cus_")

    got = await org.client.get(f"/v1/customers/{customer['id']}/payment-methods/{method['id']}")
    assert got.status_code == 200 and got.json() == method
    listed = (await org.client.get(f"/v1/customers/{customer['id']}/payment-methods")).json()
    assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == [method["id"]]
    assert listed["url"] == f"/v1/customers/{customer['id']}/payment-methods" and listed["hasMore"] is False
    assert (
        await org.client.get(f"/v1/customers/{customer['id']}/payment-methods", params={"type": "sepa_debit"})
    ).json()["data"] == []


async def test_the_same_card_is_not_attached_twice(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer = await new_customer(org.client)
    url = f"/v1/customers/{customer['id']}/payment-methods"
    first = await org.client.post(url, json={"paymentMethod": "pm_first"})
    assert first.status_code == 201
    again = await org.client.post(url, json={"paymentMethod": "pm_first"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    # another PaymentMethod of the same card (stripe-mock: same fingerprint): the existing one
    same_card = await org.client.post(url, json={"paymentMethod": "pm_second"})
    assert same_card.status_code == 200 and same_card.json()["id"] == first.json()["id"]
    assert [m["id"] for m in (await org.client.get(url)).json()["data"]] == [first.json()["id"]]
    # another customer may have the same card
    other = await new_customer(org.client, email="other@example.com")
    theirs = await org.client.post(f"/v1/customers/{other['id']}/payment-methods", json={"paymentMethod": "pm_third"})
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


async def test_a_payment_method_of_another_customer_is_refused(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    owner = await new_customer(org.client)
    other = await new_customer(org.client, email="other@example.com")
    attached = await org.client.post(f"/v1/customers/{owner['id']}/payment-methods", json={"paymentMethod": "pm_owned"})
    assert attached.status_code == 201
    default = await org.client.post(f"/v1/customers/{owner['id']}/payment-methods/{attached.json()['id']}/default")
    assert default.status_code == 200, default.text
    refused = await org.client.post(f"/v1/customers/{other['id']}/payment-methods", json={"paymentMethod": "pm_owned"})
    error = assert_error(refused, 400, "payment_method_already_attached", "paymentMethod")
    assert owner["id"] in error["message"]
    assert (await org.client.get(f"/v1/customers/{other['id']}/payment-methods")).json()["data"] == []
    kept = (await org.client.get(f"/v1/customers/{owner['id']}/payment-methods")).json()["data"]
    assert [m["id"] for m in kept] == [attached.json()["id"]]
    assert (await org.client.get(f"/v1/customers/{owner['id']}")).json()["invoiceSettings"][
        "defaultPaymentMethod"
    ] == attached.json()["id"]


async def test_attach_idempotency_key_replays_the_first_answer(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer = await new_customer(org.client)
    url = f"/v1/customers/{customer['id']}/payment-methods"
    key = {"Idempotency-Key": f"attach-{uuid.uuid4()}"}
    first = await org.client.post(url, json={"paymentMethod": "pm_idem"}, headers=key)
    replay = await org.client.post(url, json={"paymentMethod": "pm_idem"}, headers=key)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    other = await org.client.post(url, json={"paymentMethod": "pm_other"}, headers=key)
    assert_error(other, 400, "idempotency_key_in_use", None, type_="idempotency_error")


async def test_attach_bad_input(api, other_api_client, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer = await new_customer(org.client)
    url = f"/v1/customers/{customer['id']}/payment-methods"
    assert_error(await org.client.post(url, json={}), 400, "parameter_missing", "paymentMethod")
    assert_error(
        await org.client.post(url, json={"paymentMethod": "pm_x/../../v1/charges"}),
        400,
        "parameter_invalid_format",
        "paymentMethod",
    )
    assert_error(
        await org.client.post(url, json={"paymentMethod": "pm_x", "card": {"cvc": "123"}}),
        400,
        "parameter_unknown",
        "card",
    )
    assert_error(
        await org.client.post("/v1/customers/cus_missing/payment-methods", json={"paymentMethod": "pm_x"}),
        404,
        "resource_missing",
        "id",
    )
    foreign = await new_customer(other_api_client)
    before = await count(session_factory, CustomerPaymentMethod, other_api_client.tenant.organization_id)
    assert_error(
        await org.client.post(f"/v1/customers/{foreign['id']}/payment-methods", json={"paymentMethod": "pm_x"}),
        404,
        "resource_missing",
        "id",
    )
    assert_error(await org.client.get(f"/v1/customers/{foreign['id']}/payment-methods"), 404, "resource_missing", "id")
    assert await count(session_factory, CustomerPaymentMethod, other_api_client.tenant.organization_id) == before
    assert await count(session_factory, CustomerPaymentMethod, org.organization_id) == 0
    assert_error(await org.client.get(f"{url}/pm_nothere"), 404, "resource_missing", "paymentMethod")


async def test_another_tenants_payment_method_does_not_exist(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = await connected_tenant(api, session_factory), await connected_tenant(api, session_factory)
    their_customer = await new_customer(theirs.client)
    method = (
        await theirs.client.post(
            f"/v1/customers/{their_customer['id']}/payment-methods", json={"paymentMethod": "pm_theirs"}
        )
    ).json()
    my_customer = await new_customer(mine.client)
    for path in (
        f"/v1/customers/{their_customer['id']}/payment-methods/{method['id']}",
        f"/v1/customers/{my_customer['id']}/payment-methods/{method['id']}",
    ):
        for response in (
            await mine.client.get(path),
            await mine.client.delete(path),
            await mine.client.post(f"{path}/default"),
        ):
            assert_error(response, 404, "resource_missing", response.json()["error"]["param"])
            assert response.json()["error"]["param"] in ("id", "customer", "paymentMethod")
    # and nothing of theirs changed: the card is still there, not made anyone's default
    assert (
        await theirs.client.get(f"/v1/customers/{their_customer['id']}/payment-methods/{method['id']}")
    ).status_code == 200
    assert (await theirs.client.get(f"/v1/customers/{their_customer['id']}")).json()["defaultPaymentMethodId"] is None
    assert (await mine.client.get(f"/v1/customers/{my_customer['id']}")).json()["defaultPaymentMethodId"] is None
    assert await count(session_factory, CustomerPaymentMethod, theirs.organization_id) == 1


# ---------------------------------------------------------------------------- Stripe's errors, Stripe away


async def test_stripes_errors_keep_their_code(api_scripted, session_factory) -> None:  # type: ignore[no-untyped-def]
    client = TenantClient(api_scripted, await new_tenant(session_factory, "Scripted"))
    put = await client.request(
        "PUT", "/v1/stripe-account", json={"secretKey": "sk_test_scripted", "webhookSecret": "whsec_s"}
    )
    assert put.status_code == 200, put.text
    customer = await new_customer(client)
    url = f"/v1/customers/{customer['id']}/payment-methods"

    missing = await client.post(url, json={"paymentMethod": "pm_unknown"})
    error = assert_error(missing, 404, "resource_missing", "paymentMethod")
    assert "pm_unknown" in error["message"]
    declined = await client.post(url, json={"paymentMethod": "pm_declined"})
    assert declined.status_code == 402, declined.text
    assert declined.json()["error"] == {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "generic_decline",
        "message": "Your card was declined.",
        "param": None,
    }
    assert_error(
        await client.post(url, json={"paymentMethod": "pm_paypal"}),
        400,
        "payment_method_type_unsupported",
        "paymentMethod",
    )
    limited = await client.post(url, json={"paymentMethod": "pm_ratelimited"})
    assert_error(limited, 503, "gateway_rate_limited", None, type_="api_error")
    assert limited.headers["retry-after"] == "7"
    assert await count(session_factory, CustomerPaymentMethod, client.tenant.organization_id) == 0

    # attached for real; then Stripe says it is no longer attached: it is forgotten here too
    attached = await client.post(url, json={"paymentMethod": "pm_scripted1"})
    assert attached.status_code == 201, attached.text
    assert attached.json()["brand"] == "mastercard" and attached.json()["fingerprint"] == "Fppm_scripted1"
    gone = await client.delete(f"{url}/{attached.json()['id']}")
    assert gone.status_code == 200, gone.text
    assert (await client.get(url)).json()["data"] == []


async def test_a_test_token_is_stored_as_the_payment_method_stripe_made(api_scripted, session_factory) -> None:  # type: ignore[no-untyped-def]
    client = TenantClient(api_scripted, await new_tenant(session_factory, "Test tokens"))
    put = await client.request(
        "PUT", "/v1/stripe-account", json={"secretKey": "sk_test_tokens", "webhookSecret": "whsec_t"}
    )
    assert put.status_code == 200, put.text
    customer = await new_customer(client)
    url = f"/v1/customers/{customer['id']}/payment-methods"
    first = await client.post(url, json={"paymentMethod": "pm_card_visa"})
    assert first.status_code == 201, first.text
    assert first.json()["gatewayPaymentMethodId"].startswith("pm_copy_")
    again = await client.post(url, json={"paymentMethod": "pm_card_visa"})  # the same test card: the stored one
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


async def test_stripe_unreachable_is_503_and_writes_nothing(api, api_unreachable, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer = await new_customer(org.client)
    attached = (
        await org.client.post(f"/v1/customers/{customer['id']}/payment-methods", json={"paymentMethod": "pm_kept"})
    ).json()
    away = TenantClient(api_unreachable, org.client.tenant)
    other = await new_customer(org.client, email="new@example.com")
    commands = await commands_applied(session_factory, org.organization_id)
    methods = await count(session_factory, CustomerPaymentMethod, org.organization_id)

    for response in (
        await away.post(f"/v1/customers/{other['id']}/payment-methods", json={"paymentMethod": "pm_never"}),
        await away.post("/v1/setup-intents", json={"customer": other["id"]}),
        await away.delete(f"/v1/customers/{customer['id']}/payment-methods/{attached['id']}"),
        await away.request(
            "PUT", "/v1/stripe-account", json={"secretKey": "sk_test_new", "webhookSecret": "whsec_new"}
        ),
    ):
        error = assert_error(response, 503, "gateway_unavailable", None, type_="api_error")
        assert int(response.headers["retry-after"]) >= 1
        assert "Stripe" in error["message"]
    assert await commands_applied(session_factory, org.organization_id) == commands
    assert await count(session_factory, CustomerPaymentMethod, org.organization_id) == methods
    assert (await org.client.get(f"/v1/customers/{other['id']}")).json()["gatewayCustomerId"] is None
    assert (await org.client.get("/v1/stripe-account")).json()["secretKeyLast4"] == org.secret_key[-4:]
    # reads need no Stripe
    assert (await away.get(f"/v1/customers/{customer['id']}/payment-methods/{attached['id']}")).status_code == 200


# ---------------------------------------------------------------------------- default, detach


async def two_cards(org: Connected, session_factory: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    """A customer with two stored cards (stripe-mock answers one fingerprint, so the second
    is stored as Stripe's webhook would: straight in the table)."""
    customer = await new_customer(org.client)
    first = (
        await org.client.post(f"/v1/customers/{customer['id']}/payment-methods", json={"paymentMethod": "pm_a"})
    ).json()
    second_id = new_id("payment_method")
    async with session_factory() as session, session.begin():
        session.add(
            CustomerPaymentMethod(
                id=second_id,
                organization_id=org.organization_id,
                customer_id=customer["id"],
                gateway="stripe",
                gateway_payment_method_id="pm_b_" + secrets.token_hex(4),
                type="card",
                brand="mastercard",
                last4="4444",
                exp_month=1,
                exp_year=2032,
                country="FR",
                fingerprint="OtherFingerprint",
            )
        )
    second = (await org.client.get(f"/v1/customers/{customer['id']}/payment-methods/{second_id}")).json()
    return customer, first, second


async def test_set_default(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer, first, second = await two_cards(org, session_factory)
    base = f"/v1/customers/{customer['id']}/payment-methods"
    made = await org.client.post(f"{base}/{first['id']}/default")
    assert made.status_code == 200, made.text
    assert made.json()["defaultPaymentMethodId"] == first["id"]
    assert made.json()["invoiceSettings"]["defaultPaymentMethod"] == first["id"]
    switched = (await org.client.post(f"{base}/{second['id']}/default")).json()
    assert switched["defaultPaymentMethodId"] == second["id"] == switched["invoiceSettings"]["defaultPaymentMethod"]
    assert_error(await org.client.post(f"{base}/pm_nothere/default"), 404, "resource_missing", "paymentMethod")
    assert_error(
        await org.client.post(f"/v1/customers/cus_nothere/payment-methods/{first['id']}/default"),
        404,
        "resource_missing",
        "customer",
    )


async def test_detach(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer, first, second = await two_cards(org, session_factory)
    base = f"/v1/customers/{customer['id']}/payment-methods"
    await org.client.post(f"{base}/{first['id']}/default")

    detached = await org.client.delete(f"{base}/{second['id']}")
    assert detached.status_code == 200, detached.text
    assert detached.json()["id"] == second["id"]
    assert_error(await org.client.get(f"{base}/{second['id']}"), 404, "resource_missing", "paymentMethod")
    assert_error(await org.client.delete(f"{base}/{second['id']}"), 404, "resource_missing", "paymentMethod")

    # the default method of a customer without live subscriptions may go; the default is cleared
    ended = await add_subscription(session_factory, org.organization_id, customer["id"], SubscriptionStatus.canceled)
    assert ended
    gone = await org.client.delete(f"{base}/{first['id']}")
    assert gone.status_code == 200, gone.text
    after = (await org.client.get(f"/v1/customers/{customer['id']}")).json()
    assert after["defaultPaymentMethodId"] is None and "defaultPaymentMethod" not in after["invoiceSettings"]
    assert (await org.client.get(base)).json()["data"] == []


async def test_a_detach_looks_its_idempotency_key_up_once(api, session_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The controller must know before it calls Stripe whether the key was applied; the bus
    then uses that answer instead of asking Postgres again (a replay: one lookup, no Stripe)."""
    org = await connected_tenant(api, session_factory)
    customer, _, second = await two_cards(org, session_factory)
    key = {"Idempotency-Key": f"detach-{uuid.uuid4()}"}
    detach_command = command_id_for(org.organization_id, key["Idempotency-Key"])
    lookups: list[str] = []

    async def counted(session: Any, command_id: str) -> Any:
        if command_id == detach_command:  # (not the API's own key-use report, whenever its minute ticks)
            lookups.append(command_id)
        return await get_outcome(session, command_id)

    monkeypatch.setattr(api_bus, "get_outcome", counted)
    path = f"/v1/customers/{customer['id']}/payment-methods/{second['id']}"
    first = await org.client.delete(path, headers=key)
    assert first.status_code == 200, first.text
    assert len(lookups) == 1
    again = await org.client.delete(path, headers=key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(lookups) == 2


async def test_the_default_method_of_a_customer_with_live_subscriptions_stays(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer, first, second = await two_cards(org, session_factory)
    base = f"/v1/customers/{customer['id']}/payment-methods"
    await org.client.post(f"{base}/{first['id']}/default")
    subscription = await add_subscription(
        session_factory, org.organization_id, customer["id"], SubscriptionStatus.active
    )

    refused = await org.client.delete(f"{base}/{first['id']}")
    error = assert_error(refused, 400, "payment_method_in_use", None)
    assert subscription in error["message"] and "default" in error["message"]
    assert (await org.client.get(f"{base}/{first['id']}")).status_code == 200
    assert (await org.client.get(f"/v1/customers/{customer['id']}")).json()["defaultPaymentMethodId"] == first["id"]

    # a method a live subscription names as its own default stays too
    own = await add_subscription(
        session_factory, org.organization_id, customer["id"], SubscriptionStatus.trialing, second["id"]
    )
    assert_error(await org.client.delete(f"{base}/{second['id']}"), 400, "payment_method_in_use", None)

    # once the subscriptions end, both may go
    await set_subscription_status(session_factory, subscription, SubscriptionStatus.canceled)
    await set_subscription_status(session_factory, own, SubscriptionStatus.incomplete_expired)
    assert (await org.client.delete(f"{base}/{first['id']}")).status_code == 200
    assert (await org.client.delete(f"{base}/{second['id']}")).status_code == 200


async def test_a_deleted_customer_reads_as_missing(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory)
    customer = await new_customer(org.client)
    assert (await org.client.delete(f"/v1/customers/{customer['id']}")).status_code == 200
    assert_error(
        await org.client.post(f"/v1/customers/{customer['id']}/payment-methods", json={"paymentMethod": "pm_x"}),
        404,
        "resource_missing",
        "id",
    )
    assert_error(
        await org.client.post("/v1/setup-intents", json={"customer": customer["id"]}),
        404,
        "resource_missing",
        "customer",
    )
    async with session_factory() as session:
        assert (await session.get(Customer, customer["id"])).gateway_customer_id is None  # type: ignore[union-attr]
