"""The first invoice of a subscription charged through the real stack: API -> Kafka ->
command consumer -> Postgres -> payment worker -> Stripe (a scripted PaymentIntents API:
stripe-mock answers every confirmation with requires_payment_method, so success, a
decline and 3-D Secure are Stripe's documented answers served over HTTP to the real SDK)
-> outcome command -> Postgres.

A charge succeeds and the incomplete subscription becomes active with its invoice paid;
a decline leaves it incomplete with the decline recorded; 3-D Secure leaves the invoice
open with the next-action URL; the gateway is called once per attempt with the attempt's
idempotency key, and a repeated outcome changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from billing.ids import new_id
from billing.models import Customer, CustomerPaymentMethod, Invoice, Payment
from consumers.payment_worker import run_payment_worker
from contracts.enums import PaymentMethodType, PaymentStatus
from contracts.envelopes import Actor, CommandEnvelope
from contracts.invoices import PaymentOutcome
from contracts.settings import get_settings
from producers.publisher import create_broker, publish_command
from tests.api.conftest import TenantClient, assert_error
from tests.api.test_payment_methods import _free_port, connected_tenant
from tests.api.test_stripe_webhooks import deliver, event

pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)

CALLS: Counter[str] = Counter()  # PaymentIntent creations by idempotency key


def _intent(pm_id: str, amount: int, currency: str, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "pi_scripted" + secrets.token_hex(6),
        "object": "payment_intent",
        "amount": amount,
        "currency": currency,
        "customer": "cus_scripted",
        "payment_method": pm_id,
        "status": status,
        "amount_received": amount if status == "succeeded" else 0,
        **fields,
    }


def payment_intent_answer(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Stripe's answers to an off-session confirmation, by the payment method charged."""
    pm_id, amount, currency = form["payment_method"], int(form["amount"]), form["currency"]
    if pm_id == "pm_declines":
        intent = _intent(pm_id, amount, currency, "requires_payment_method")
        error = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
            "payment_intent": intent,
        }
        return 402, {"error": error}
    if pm_id == "pm_expired":  # a hard decline: Stripe answers it with the card error's code
        intent = _intent(pm_id, amount, currency, "requires_payment_method")
        error = {
            "type": "card_error",
            "code": "expired_card",
            "message": "Your card has expired.",
            "payment_intent": intent,
        }
        return 402, {"error": error}
    if pm_id == "pm_needs_3ds":
        action = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3ds/scripted"}}
        return 200, _intent(pm_id, amount, currency, "requires_action", next_action=action)
    return 200, _intent(pm_id, amount, currency, "succeeded")


async def _scripted_intents(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        chunk = await receive()
        body += chunk.get("body", b"")
        if not chunk.get("more_body"):
            break
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    if scope["method"] == "POST" and scope["path"] == "/v1/payment_intents":
        from urllib.parse import parse_qsl

        form = dict(parse_qsl(body.decode()))
        CALLS[headers.get("idempotency-key", "")] += 1
        status, answer = payment_intent_answer(form)
    else:
        status, answer = 404, {"error": {"type": "invalid_request_error", "message": "not scripted"}}
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


@pytest.fixture(scope="module")
async def payment_worker() -> AsyncIterator[None]:
    """The payment worker, talking to the scripted Stripe."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(_scripted_intents, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    stop, ready = asyncio.Event(), asyncio.Event()
    settings = dataclasses.replace(get_settings(), stripe_api_base=f"http://127.0.0.1:{port}")
    worker = asyncio.create_task(run_payment_worker(stop, settings, ready))
    await asyncio.wait_for(ready.wait(), timeout=60)
    yield
    stop.set()
    await asyncio.wait_for(worker, timeout=30)
    server.should_exit = True
    await serving


async def billable_customer(client: TenantClient, session_factory: Any, *pm_ids: str, **fields: Any) -> dict[str, Any]:
    """A customer (of `fields`) with a Stripe customer and the given saved cards, the first its default."""
    customer = (await client.post("/v1/customers", json={"email": "payer@example.com", **fields})).json()
    organization_id = client.tenant.organization_id
    async with session_factory() as session, session.begin():
        row = await session.get(Customer, customer["id"])
        row.gateway_customer_id = "cus_scripted"
        methods = [
            CustomerPaymentMethod(
                id=new_id("payment_method"),
                organization_id=organization_id,
                customer_id=customer["id"],
                gateway_payment_method_id=pm_id,
                type=PaymentMethodType.card,
            )
            for pm_id in pm_ids
        ]
        session.add_all(methods)
        await session.flush()
        row.default_payment_method_id = methods[0].id
    customer["paymentMethods"] = {pm_id: method.id for pm_id, method in zip(pm_ids, methods, strict=True)}
    return customer


async def subscribe(client: TenantClient, customer: dict[str, Any], **fields: Any) -> dict[str, Any]:
    product = (await client.post("/v1/products", json={"name": "Charged plan"})).json()
    price = (
        await client.post(
            "/v1/prices",
            json={"product": product["id"], "currency": "eur", "unitAmount": 1999, "recurring": {"interval": "month"}},
        )
    ).json()
    response = await client.post(
        "/v1/subscriptions", json={"customer": customer["id"], "items": [{"price": price["id"]}], **fields}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "incomplete"  # until the charge is applied
    return created


async def settled_payment(session_factory: Any, invoice_id: str, timeout: float = 20.0) -> Payment:
    async with asyncio.timeout(timeout):
        while True:
            async with session_factory() as session:
                payment = (await session.scalars(select(Payment).where(Payment.invoice_id == invoice_id))).one_or_none()
            if payment is not None and payment.status is not PaymentStatus.pending:
                return payment
            await asyncio.sleep(0.1)


async def test_a_successful_charge_activates_the_subscription_and_pays_the_invoice(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    client = (await connected_tenant(api, session_factory, "Charged")).client
    customer = await billable_customer(client, session_factory, "pm_succeeds")
    created = await subscribe(client, customer)
    payment = await settled_payment(session_factory, created["latestInvoice"])
    assert (payment.status, payment.amount, payment.currency, payment.attempt_number) == (
        PaymentStatus.succeeded,
        1999,
        "eur",
        1,
    )
    assert payment.idempotency_key == f"{created['latestInvoice']}:attempt:1"
    assert payment.gateway_payment_intent_id.startswith("pi_scripted")
    assert CALLS[payment.idempotency_key] == 1  # one gateway call for the attempt
    subscription = (await client.get(f"/v1/subscriptions/{created['id']}")).json()
    invoice = (await client.get(f"/v1/invoices/{created['latestInvoice']}")).json()
    assert subscription["status"] == "active"
    assert (invoice["status"], invoice["amountPaid"], invoice["amountRemaining"], invoice["attemptCount"]) == (
        "paid",
        1999,
        0,
        1,
    )
    assert invoice["gatewayPaymentIntentId"] == payment.gateway_payment_intent_id and invoice["paidAt"]

    # the same outcome again (a redelivery, or the webhook after the worker) changes nothing
    broker = create_broker()
    await broker.start()
    try:
        repeat = PaymentOutcome(payment=payment.id, status="failed", failureCode="card_declined")
        envelope = CommandEnvelope(
            commandId=new_id("payment"),  # a different command: the payment itself refuses a second outcome
            type=repeat.command_type,
            organizationId=client.tenant.organization_id,
            actor=Actor(type="system", id="test"),
            issuedAt=payment.created_at,
            payload=repeat.payload(),
        )
        await publish_command(broker, envelope)
    finally:
        await broker.stop()
    await asyncio.sleep(1.0)
    async with session_factory() as session:
        again = await session.get(Payment, payment.id)
        invoice_row = await session.get(Invoice, created["latestInvoice"])
    assert again.status is PaymentStatus.succeeded and invoice_row.status == "paid"


async def test_a_declined_charge_leaves_the_subscription_incomplete_with_the_decline(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    client = (await connected_tenant(api, session_factory, "Declined")).client
    customer = await billable_customer(client, session_factory, "pm_succeeds", "pm_declines")
    created = await subscribe(client, customer, defaultPaymentMethod=customer["paymentMethods"]["pm_declines"])
    payment = await settled_payment(session_factory, created["latestInvoice"])
    assert (payment.status, payment.failure_code, payment.decline_code) == (
        PaymentStatus.failed,
        "card_declined",
        "insufficient_funds",
    )
    assert payment.payment_method_id == customer["paymentMethods"]["pm_declines"]  # the subscription's default first
    assert payment.gateway_payment_intent_id  # the decline still made a PaymentIntent
    subscription = (await client.get(f"/v1/subscriptions/{created['id']}")).json()
    invoice = (await client.get(f"/v1/invoices/{created['latestInvoice']}")).json()
    assert subscription["status"] == "incomplete"
    assert (invoice["status"], invoice["amountPaid"], invoice["amountRemaining"]) == ("open", 0, 1999)


async def test_three_d_secure_waits_open_and_stripes_webhook_settles_it_once(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    connected = await connected_tenant(api, session_factory, "3DS")
    client = connected.client
    customer = await billable_customer(client, session_factory, "pm_needs_3ds")
    created = await subscribe(client, customer)
    payment = await settled_payment(session_factory, created["latestInvoice"])
    assert (payment.status, payment.next_action_url) == (
        PaymentStatus.requires_action,
        "https://hooks.stripe.com/3ds/scripted",
    )
    invoice = (await client.get(f"/v1/invoices/{created['latestInvoice']}")).json()
    assert invoice["status"] == "open"
    assert (await client.get(f"/v1/subscriptions/{created['id']}")).json()["status"] == "incomplete"

    # the customer authenticates; Stripe tells us with payment_intent.succeeded, twice
    intent = {
        "id": payment.gateway_payment_intent_id,
        "object": "payment_intent",
        "amount": 1999,
        "amount_received": 1999,
        "currency": "eur",
        "customer": "cus_scripted",
        "payment_method": "pm_needs_3ds",
        "status": "succeeded",
        "metadata": {"invoice": created["latestInvoice"], "payment": payment.id},
    }
    succeeded = event("payment_intent.succeeded", intent)
    for _ in range(2):
        await deliver(connected, succeeded)
    async with asyncio.timeout(20):
        while (await client.get(f"/v1/subscriptions/{created['id']}")).json()["status"] != "active":
            await asyncio.sleep(0.1)
    invoice = (await client.get(f"/v1/invoices/{created['latestInvoice']}")).json()
    assert (invoice["status"], invoice["amountPaid"], invoice["amountRemaining"]) == ("paid", 1999, 0)
    async with session_factory() as session:
        settled = await session.get(Payment, payment.id)
    assert settled.status is PaymentStatus.succeeded and settled.next_action_url is None


async def test_without_a_payment_method_nothing_is_charged(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    client = (await connected_tenant(api, session_factory, "No card")).client
    customer = (await client.post("/v1/customers", json={"email": "nocard@example.com"})).json()
    created = await subscribe(client, customer)
    await asyncio.sleep(0.5)
    async with session_factory() as session:
        payments = (await session.scalars(select(Payment).where(Payment.invoice_id == created["latestInvoice"]))).all()
    assert payments == []
    assert (await client.get(f"/v1/invoices/{created['latestInvoice']}")).json()["status"] == "open"


async def test_a_declined_first_payment_is_paid_later_with_another_card_and_activates(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    client = (await connected_tenant(api, session_factory, "Recovered")).client
    customer = await billable_customer(client, session_factory, "pm_declines", "pm_succeeds")
    created = await subscribe(client, customer)
    invoice_id = created["latestInvoice"]
    declined = await settled_payment(session_factory, invoice_id)
    assert declined.status is PaymentStatus.failed

    good_card = customer["paymentMethods"]["pm_succeeds"]
    answered = await client.post(f"/v1/invoices/{invoice_id}/pay", json={"paymentMethod": good_card})
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "open" and answered.json()["attemptCount"] == 2  # the attempt is recorded
    async with asyncio.timeout(20):
        while (await client.get(f"/v1/subscriptions/{created['id']}")).json()["status"] != "active":
            await asyncio.sleep(0.1)
    invoice = (await client.get(f"/v1/invoices/{invoice_id}")).json()
    assert (invoice["status"], invoice["amountPaid"], invoice["attemptCount"]) == ("paid", 1999, 2)
    async with session_factory() as session:
        attempts = (
            await session.scalars(
                select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.attempt_number)
            )
        ).all()
    assert [(a.attempt_number, a.status, a.payment_method_id) for a in attempts] == [
        (1, PaymentStatus.failed, customer["paymentMethods"]["pm_declines"]),
        (2, PaymentStatus.succeeded, good_card),
    ]
    assert CALLS[f"{invoice_id}:attempt:2"] == 1

    # a paid invoice cannot be paid again; another customer's card is not found
    again = await client.post(f"/v1/invoices/{invoice_id}/pay", json={})
    assert again.status_code == 400 and again.json()["error"]["code"] == "invoice_not_payable", again.text
    stranger = (await client.post("/v1/customers", json={"email": "stranger@example.com"})).json()
    unpaid = (await subscribe(client, stranger))["latestInvoice"]  # no card: nothing charged, open
    foreign = await client.post(f"/v1/invoices/{unpaid}/pay", json={"paymentMethod": good_card})
    assert foreign.status_code == 404, foreign.text
    assert (foreign.json()["error"]["code"], foreign.json()["error"]["param"]) == ("resource_missing", "paymentMethod")
    no_card = await client.post(f"/v1/invoices/{unpaid}/pay", json={})
    assert no_card.status_code == 400 and no_card.json()["error"]["code"] == "invoice_no_payment_method"
    missing = await client.post("/v1/invoices/in_missing000000000000000000/pay", json={})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"


_PRICES: dict[str, str] = {}


async def _subscription_post(client: TenantClient, customer: dict[str, Any], **fields: Any) -> Any:
    """POST /v1/subscriptions of one monthly price (made once per organization)."""
    price = _PRICES.get(client.tenant.organization_id)
    if price is None:
        product = (await client.post("/v1/products", json={"name": "Behaviour plan"})).json()
        body = {"product": product["id"], "currency": "eur", "unitAmount": 1999, "recurring": {"interval": "month"}}
        price = _PRICES[client.tenant.organization_id] = (await client.post("/v1/prices", json=body)).json()["id"]
    headers = fields.pop("headers", {})
    body = {"customer": customer["id"], "items": [{"price": price}], **fields}
    return await client.post("/v1/subscriptions", json=body, headers=headers)


async def test_error_if_incomplete_answers_once_the_first_payment_is_known(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    client = (await connected_tenant(api, session_factory, "Error if incomplete")).client
    paying = await billable_customer(client, session_factory, "pm_succeeds")
    paid = await _subscription_post(client, paying, paymentBehavior="error_if_incomplete")
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "active"  # answered after the worker's charge, not before
    assert (await client.get(f"/v1/invoices/{paid.json()['latestInvoice']}")).json()["status"] == "paid"

    declining = await billable_customer(client, session_factory, "pm_declines")
    key = {"Idempotency-Key": f"eii-{secrets.token_hex(6)}"}
    declined = await _subscription_post(client, declining, paymentBehavior="error_if_incomplete", headers=key)
    error = assert_error(declined, 402, "card_declined", None, type_="card_error")
    assert "insufficient_funds" in error["message"]
    (ended,) = (await client.get("/v1/subscriptions", params={"customer": declining["id"]})).json()["data"]
    assert ended["status"] == "incomplete_expired"
    assert (await client.get(f"/v1/invoices/{ended['latestInvoice']}")).json()["status"] == "void"
    retried = await _subscription_post(client, declining, paymentBehavior="error_if_incomplete", headers=key)
    assert_error(retried, 402, "card_declined", None, type_="card_error")  # the same answer, nothing more made
    listed = (await client.get("/v1/subscriptions", params={"customer": declining["id"]})).json()
    assert [s["id"] for s in listed["data"]] == [ended["id"]]

    # without a payment method it could only fail: refused, nothing written
    carless = (await client.post("/v1/customers", json={"email": "nocard@example.com"})).json()
    refused = await _subscription_post(client, carless, paymentBehavior="error_if_incomplete")
    assert_error(refused, 400, "invoice_no_payment_method", "defaultPaymentMethod")
    assert (await client.get("/v1/subscriptions", params={"customer": carless["id"]})).json()["data"] == []
    assert (await client.get(f"/v1/customers/{carless['id']}")).json()["currency"] is None


async def test_default_incomplete_charges_nothing_until_the_invoice_is_paid(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    client = (await connected_tenant(api, session_factory, "Default incomplete")).client
    customer = await billable_customer(client, session_factory, "pm_succeeds")
    created = await _subscription_post(client, customer, paymentBehavior="default_incomplete")
    assert created.status_code == 201, created.text
    subscription = created.json()
    assert subscription["status"] == "incomplete"
    await asyncio.sleep(0.5)
    async with session_factory() as session:
        payments = (
            await session.scalars(select(Payment).where(Payment.invoice_id == subscription["latestInvoice"]))
        ).all()
    assert payments == []  # the customer has a card, and nothing was charged
    paid = await client.post(f"/v1/invoices/{subscription['latestInvoice']}/pay", json={})
    assert paid.status_code == 200, paid.text
    async with asyncio.timeout(20):
        while (await client.get(f"/v1/subscriptions/{subscription['id']}")).json()["status"] != "active":
            await asyncio.sleep(0.1)
    invalid = await _subscription_post(client, customer, paymentBehavior="pending_if_incomplete")
    assert_error(invalid, 400, "parameter_invalid", "paymentBehavior")
