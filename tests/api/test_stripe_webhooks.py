"""Stripe webhooks through the real stack: signed events posted to the API, verified with the
organization's (encrypted) webhook secret, turned into commands on Kafka and applied by the
consumer to Postgres.

stripe-mock does not send webhooks, so the events here are built like Stripe's (the
documented event shape) and signed like Stripe signs them (`sign_payload`: ``t=...,v1=...``
HMAC-SHA256 over the raw body).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

import pytest
from sqlalchemy import select

from billing.models import CustomerPaymentMethod, Organization, Outbox, ProcessedCommand
from billing.payments.webhooks import sign_payload
from contracts.envelopes import command_id_for
from contracts.payments import RecordPaymentFailed, RecordPaymentSucceeded, SyncPaymentMethodAttached
from tests.api.conftest import assert_error, new_tenant
from tests.api.test_card_guard import log_lines  # noqa: F401  (a fixture)
from tests.api.test_payment_methods import Connected, connected_tenant, new_customer

pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)


# ---------------------------------------------------------------------------- helpers


def card(
    pm_id: str,
    customer: str | None,
    *,
    fingerprint: str = "WebhookFp0000001",
    last4: str = "1881",
    exp_year: int = 2031,
) -> dict[str, Any]:
    return {
        "id": pm_id,
        "object": "payment_method",
        "type": "card",
        "customer": customer,
        "livemode": False,
        "card": {
            "brand": "visa",
            "last4": last4,
            "exp_month": 3,
            "exp_year": exp_year,
            "country": "NL",
            "fingerprint": fingerprint,
            "funding": "credit",
        },
        "billing_details": {"name": "Wim", "email": None, "phone": None, "address": None},
        "metadata": {"source": "webhook"},
        "created": 1700000000,
    }


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    created: int | None = None,
    previous: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id or "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2024-06-20",
        "type": event_type,
        "created": created or int(time.time()),
        "livemode": False,
        "data": data,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }


async def post_event(
    org: Connected,
    body: dict[str, Any] | bytes,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
    header: str | None = None,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signature = header if header is not None else sign_payload(raw, secret or org.webhook_secret, timestamp)
    return await org.client.client.post(
        f"/v1/webhooks/stripe/{org.organization_id}",
        content=raw,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )


async def deliver(org: Connected, body: dict[str, Any]) -> None:
    """Posts an event we act on: answered 200 with its command queued."""
    response = await post_event(org, body)
    assert response.status_code == 200 and response.json()["action"] == "queued", response.text


def command_id(org: Connected, event_id: str) -> str:
    return command_id_for(org.organization_id, f"stripe-event:{event_id}")


async def applied(session_factory: Any, org: Connected, event_id: str, timeout: float = 15.0) -> ProcessedCommand:  # type: ignore[no-untyped-def]
    """The consumer's record of the event's command, once applied."""
    async with asyncio.timeout(timeout):
        while True:
            async with session_factory() as session:
                row = await session.get(ProcessedCommand, command_id(org, event_id))
            if row is not None:
                return row
            await asyncio.sleep(0.05)


async def settle(session_factory: Any, org: Connected) -> None:  # type: ignore[no-untyped-def]
    """Until everything this organization's webhooks published so far is applied: its
    commands apply in order, so a barrier event applied means the earlier ones were too."""
    barrier = event("payment_method.attached", card("pm_barrier_" + secrets.token_hex(4), "cus_unknown"))
    await deliver(org, barrier)
    await applied(session_factory, org, barrier["id"])


async def records_of(session_factory: Any, org: Connected, event_id: str) -> list[ProcessedCommand]:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        return list(
            (
                await session.scalars(
                    select(ProcessedCommand).where(
                        ProcessedCommand.organization_id == org.organization_id,
                        ProcessedCommand.idempotency_key == f"stripe-event:{event_id}",
                    )
                )
            ).all()
        )


async def stored_methods(session_factory: Any, org: Connected) -> list[CustomerPaymentMethod]:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        return list(
            (
                await session.scalars(
                    select(CustomerPaymentMethod).where(CustomerPaymentMethod.organization_id == org.organization_id)
                )
            ).all()
        )


async def customer_at_stripe(org: Connected) -> tuple[dict[str, Any], str]:
    """A customer whose Stripe customer exists (made by a setup intent, as in the real flow)."""
    customer = await new_customer(org.client)
    intent = await org.client.post("/v1/setup-intents", json={"customer": customer["id"]})
    assert intent.status_code == 201, intent.text
    return customer, intent.json()["gatewayCustomerId"]


# ---------------------------------------------------------------------------- the happy path, replays


async def test_attached_event_stores_the_card_once(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks")
    customer, gateway_customer = await customer_at_stripe(org)
    attached = event("payment_method.attached", card("pm_wh_" + secrets.token_hex(6), gateway_customer))

    first = await post_event(org, attached)
    assert first.status_code == 200, first.text
    assert first.json()["received"] is True and first.json()["action"] == "queued"
    record = await applied(session_factory, org, attached["id"])
    assert record.status.value == "succeeded" and record.result["action"] == "created"
    assert record.type == SyncPaymentMethodAttached.command_type

    methods = (await org.client.get(f"/v1/customers/{customer['id']}/payment-methods")).json()["data"]
    assert len(methods) == 1
    method = methods[0]
    assert method["id"] == record.result["paymentMethodId"]
    assert (method["gatewayPaymentMethodId"], method["brand"], method["last4"], method["country"]) == (
        attached["data"]["object"]["id"],
        "visa",
        "1881",
        "NL",
    )
    assert method["metadata"] == {"source": "webhook"}

    # Stripe resends: answered without publishing again, applied once
    again = await post_event(org, attached)
    assert again.status_code == 200 and again.json()["action"] == "duplicate"
    resent = await asyncio.gather(*(post_event(org, attached) for _ in range(3)))
    assert all(r.status_code == 200 for r in resent)
    await settle(session_factory, org)
    assert len(await records_of(session_factory, org, attached["id"])) == 1
    assert len(await stored_methods(session_factory, org)) == 1


async def test_the_same_event_posted_at_once_is_applied_once(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks race")
    _, gateway_customer = await customer_at_stripe(org)
    attached = event("payment_method.attached", card("pm_race_" + secrets.token_hex(6), gateway_customer))
    raw = json.dumps(attached).encode()
    responses = await asyncio.gather(*(post_event(org, raw) for _ in range(5)))  # all before the consumer applies it
    assert {r.status_code for r in responses} == {200}
    await applied(session_factory, org, attached["id"])
    await settle(session_factory, org)  # any redelivered copy would be applied by now
    assert len(await records_of(session_factory, org, attached["id"])) == 1
    assert len(await stored_methods(session_factory, org)) == 1


# ---------------------------------------------------------------------------- refused deliveries


async def test_bad_signatures_are_400_and_nothing_is_applied(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks bad")
    _, gateway_customer = await customer_at_stripe(org)
    attached = event("payment_method.attached", card("pm_bad_" + secrets.token_hex(6), gateway_customer))
    raw = json.dumps(attached).encode()

    cases = [
        (await post_event(org, attached, secret="whsec_someoneelse"), "webhook_signature_mismatch"),
        (
            await post_event(org, raw.replace(b"1881", b"0000"), header=sign_payload(raw, org.webhook_secret)),
            "webhook_signature_mismatch",
        ),
        (await post_event(org, attached, header=""), "webhook_missing_header"),
        (await post_event(org, attached, header="t=abc,v1=00"), "webhook_malformed_header"),
        (await post_event(org, attached, header=f"t={int(time.time())}"), "webhook_no_v1_signature"),
        (await post_event(org, attached, timestamp=int(time.time()) - 600), "webhook_timestamp_too_old"),
        (await post_event(org, attached, timestamp=int(time.time()) + 600), "webhook_timestamp_in_future"),
    ]
    for response, code in cases:
        error = assert_error(response, 400, code, None)
        assert org.webhook_secret not in error["message"]
    # a re-serialised body (keys reordered) is not the signed one: the raw bytes count
    reordered = json.dumps(attached, sort_keys=True, indent=1).encode()
    assert_error(
        await post_event(org, reordered, header=sign_payload(raw, org.webhook_secret)),
        400,
        "webhook_signature_mismatch",
        None,
    )

    await settle(session_factory, org)
    assert await records_of(session_factory, org, attached["id"]) == []
    assert await stored_methods(session_factory, org) == []


async def test_unknown_or_unconfigured_organizations(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks org")
    attached = json.dumps(event("payment_method.attached", card("pm_x", "cus_x"))).encode()
    signature = sign_payload(attached, org.webhook_secret)
    unknown = await api.post(
        "/v1/webhooks/stripe/org_nothere", content=attached, headers={"Stripe-Signature": signature}
    )
    assert_error(unknown, 400, "webhook_not_configured", None)
    plain = await new_tenant(session_factory, "No Stripe")
    unset = await api.post(
        f"/v1/webhooks/stripe/{plain.organization_id}", content=attached, headers={"Stripe-Signature": signature}
    )
    assert_error(unset, 400, "webhook_not_configured", None)
    # the public URL is no oracle of which organizations exist: the same answer, byte for byte
    assert unknown.content == unset.content
    # another organization's secret does not sign for this one
    other = await connected_tenant(api, session_factory, "Webhooks other")
    crossed = await api.post(
        f"/v1/webhooks/stripe/{other.organization_id}", content=attached, headers={"Stripe-Signature": signature}
    )
    assert_error(crossed, 400, "webhook_signature_mismatch", None)


async def test_signed_garbage_is_400(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks garbage")
    assert_error(await post_event(org, b"not json"), 400, "webhook_payload_invalid", None)
    assert_error(await post_event(org, b'{"object": "customer", "id": "cus_1"}'), 400, "webhook_payload_invalid", None)
    broken = event("payment_method.attached", {"object": "payment_method"})  # no id
    assert_error(await post_event(org, broken), 400, "webhook_payload_invalid", None)


async def test_events_we_do_not_act_on_are_acknowledged(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks ignored")
    ignored = event("customer.created", {"id": "cus_123", "object": "customer"})
    response = await post_event(org, ignored)
    assert response.status_code == 200 and response.json()["action"] == "ignored"
    paypal = event("payment_method.attached", {**card("pm_pp", "cus_x"), "type": "paypal"})
    unsupported = await post_event(org, paypal)
    assert unsupported.status_code == 200 and unsupported.json()["action"] == "ignored", unsupported.text
    await settle(session_factory, org)
    assert await records_of(session_factory, org, ignored["id"]) == []
    assert await records_of(session_factory, org, paypal["id"]) == []
    assert await stored_methods(session_factory, org) == []


# ---------------------------------------------------------------------------- order: never undo a newer state


async def test_a_late_attached_event_does_not_revive_a_detached_card(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks order")
    customer, gateway_customer = await customer_at_stripe(org)
    pm_id = "pm_order_" + secrets.token_hex(6)
    now = int(time.time())
    attached = event("payment_method.attached", card(pm_id, gateway_customer), created=now - 60)
    await deliver(org, attached)
    await applied(session_factory, org, attached["id"])
    stored = (await stored_methods(session_factory, org))[0]
    made_default = await org.client.post(f"/v1/customers/{customer['id']}/payment-methods/{stored.id}/default")
    assert made_default.json()["defaultPaymentMethodId"] == stored.id

    detached = event(
        "payment_method.detached", card(pm_id, None), created=now - 10, previous={"customer": gateway_customer}
    )
    await deliver(org, detached)
    record = await applied(session_factory, org, detached["id"])
    assert record.result["action"] == "deleted" and record.result["paymentMethodId"] == stored.id
    assert await stored_methods(session_factory, org) == []
    after = (await org.client.get(f"/v1/customers/{customer['id']}")).json()
    assert after["defaultPaymentMethodId"] is None and "defaultPaymentMethod" not in after["invoiceSettings"]

    # an older attached/updated event (another delivery of the past) arrives late: ignored
    for late_type in ("payment_method.attached", "payment_method.updated"):
        late = event(late_type, card(pm_id, gateway_customer), created=now - 30)
        await deliver(org, late)
        late_record = await applied(session_factory, org, late["id"])
        assert late_record.result["action"] == "ignored" and late_record.result["reason"] == "payment_method_detached"
    assert await stored_methods(session_factory, org) == []


async def test_an_older_update_does_not_overwrite_a_newer_one(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks updates")
    _, gateway_customer = await customer_at_stripe(org)
    pm_id = "pm_upd_" + secrets.token_hex(6)
    now = int(time.time())
    await deliver(
        org, first := event("payment_method.attached", card(pm_id, gateway_customer, exp_year=2030), created=now - 100)
    )
    await applied(session_factory, org, first["id"])
    newer = event("payment_method.updated", card(pm_id, gateway_customer, exp_year=2034), created=now - 10)
    await deliver(org, newer)
    assert (await applied(session_factory, org, newer["id"])).result["action"] == "updated"
    older = event(
        "payment_method.automatically_updated", card(pm_id, gateway_customer, exp_year=2032), created=now - 50
    )
    await deliver(org, older)
    record = await applied(session_factory, org, older["id"])
    assert record.result["action"] == "ignored" and record.result["reason"] == "newer_event_applied"
    assert [m.exp_year for m in await stored_methods(session_factory, org)] == [2034]


async def test_attached_for_a_stripe_customer_we_do_not_know_is_recorded_only(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks strangers")
    stranger = event("payment_method.attached", card("pm_str_" + secrets.token_hex(6), "cus_notours"))
    await deliver(org, stranger)
    record = await applied(session_factory, org, stranger["id"])
    assert record.status.value == "succeeded"
    assert record.result["action"] == "ignored" and record.result["reason"] == "unknown_customer"
    assert await stored_methods(session_factory, org) == []


async def test_a_card_the_customer_already_has_is_not_stored_twice(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks fingerprint")
    customer, gateway_customer = await customer_at_stripe(org)
    # attached through the API first (stripe-mock's card, fingerprint AOB934RVNwzk6xtn) ...
    via_api = (
        await org.client.post(f"/v1/customers/{customer['id']}/payment-methods", json={"paymentMethod": "pm_api"})
    ).json()
    # ... then Stripe reports another PaymentMethod of that same card
    same = event(
        "payment_method.attached",
        card("pm_dup_" + secrets.token_hex(6), gateway_customer, fingerprint=via_api["fingerprint"]),
    )
    await deliver(org, same)
    record = await applied(session_factory, org, same["id"])
    assert record.result["action"] == "ignored" and record.result["reason"] == "duplicate_fingerprint"
    assert record.result["paymentMethodId"] == via_api["id"]
    # and the API's own attach, reported back by Stripe, updates the one row
    echo = event(
        "payment_method.attached", card("pm_api", gateway_customer, fingerprint=via_api["fingerprint"], last4="4242")
    )
    await deliver(org, echo)
    assert (await applied(session_factory, org, echo["id"])).result["action"] == "updated"
    assert [m.id for m in await stored_methods(session_factory, org)] == [via_api["id"]]


# ---------------------------------------------------------------------------- setup and payment intents


async def test_setup_and_payment_intent_events_are_recorded(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks payments")
    customer, gateway_customer = await customer_at_stripe(org)
    setup = event(
        "setup_intent.succeeded",
        {
            "id": "seti_1",
            "object": "setup_intent",
            "customer": gateway_customer,
            "payment_method": "pm_seti",
            "status": "succeeded",
            "usage": "off_session",
            "metadata": {},
        },
    )
    await deliver(org, setup)
    record = await applied(session_factory, org, setup["id"])
    assert record.result["action"] == "recorded" and record.result["customerId"] == customer["id"]

    intent = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 1999,
        "amount_received": 1999,
        "currency": "eur",
        "customer": gateway_customer,
        "payment_method": "pm_seti",
        "status": "succeeded",
        "latest_charge": "ch_1",
        "metadata": {"invoice": "in_1"},
    }
    succeeded = event("payment_intent.succeeded", intent)
    await deliver(org, succeeded)
    paid = await applied(session_factory, org, succeeded["id"])
    assert paid.type == RecordPaymentSucceeded.command_type
    assert (paid.result["amount"], paid.result["currency"], paid.result["customerId"]) == (1999, "eur", customer["id"])

    failed_intent = {
        **intent,
        "id": "pi_2",
        "status": "requires_payment_method",
        "amount_received": 0,
        "last_payment_error": {
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        },
    }
    failed = event("payment_intent.payment_failed", failed_intent)
    await deliver(org, failed)
    declined = await applied(session_factory, org, failed["id"])
    assert declined.type == RecordPaymentFailed.command_type
    assert (declined.result["failureCode"], declined.result["declineCode"]) == ("card_declined", "insufficient_funds")

    # the domain events invoices will settle on, in the outbox beside each outcome
    async with session_factory() as session:
        published = {
            row.event_type: row.payload["data"]
            for row in (
                await session.scalars(
                    select(Outbox).where(
                        Outbox.organization_id == org.organization_id,
                        Outbox.event_type.in_(["setup_intent.succeeded", "payment.succeeded", "payment.failed"]),
                    )
                )
            ).all()
        }
    assert published["setup_intent.succeeded"]["customerId"] == customer["id"]
    assert (
        published["payment.succeeded"]["amount"],
        published["payment.succeeded"]["currency"],
        published["payment.succeeded"]["customerId"],
    ) == (1999, "eur", customer["id"])
    assert (published["payment.failed"]["failureCode"], published["payment.failed"]["customerId"]) == (
        "card_declined",
        customer["id"],
    )


async def test_webhook_needs_no_api_key_but_ignores_one(api, session_factory) -> None:  # type: ignore[no-untyped-def]
    org = await connected_tenant(api, session_factory, "Webhooks keys")
    ignored = json.dumps(event("customer.created", {"id": "cus_1", "object": "customer"})).encode()
    signature = sign_payload(ignored, org.webhook_secret)
    for headers in ({}, {"Authorization": "Bearer sk_wrong"}):
        response = await api.post(
            f"/v1/webhooks/stripe/{org.organization_id}",
            content=ignored,
            headers={"Stripe-Signature": signature, **headers},
        )
        assert response.status_code == 200 and response.json()["action"] == "ignored", response.text


# ---------------------------------------------------------------------------- secrets stay out of logs


async def test_no_secret_reaches_a_log_line(api, session_factory, log_lines) -> None:  # type: ignore[no-untyped-def]
    """Everything the process logs (API, consumer, Stripe SDK, httpx, Kafka client) while an
    account is connected, a card set up and attached, and a webhook delivered."""
    org = await connected_tenant(api, session_factory, "Quiet")
    customer, gateway_customer = await customer_at_stripe(org)
    intent = (await org.client.post("/v1/setup-intents", json={"customer": customer["id"]})).json()
    await org.client.post(f"/v1/customers/{customer['id']}/payment-methods", json={"paymentMethod": "pm_quiet"})
    delivered = event("payment_method.attached", card("pm_quiet_wh", gateway_customer, fingerprint="QuietFp"))
    await deliver(org, delivered)
    await applied(session_factory, org, delivered["id"])
    assert_error(await post_event(org, delivered, secret="whsec_wrong"), 400, "webhook_signature_mismatch", None)
    async with session_factory() as session:
        organization = await session.get(Organization, org.organization_id)
    logging.getLogger("api.controllers.webhooks").debug("recorder check")
    logged = "\n".join(log_lines)
    assert "recorder check" in logged  # the recorder sees the process's logging at DEBUG
    for secret in (
        org.secret_key,
        org.webhook_secret,
        intent["clientSecret"],
        organization.stripe_secret_key_encrypted,
        organization.stripe_webhook_secret_encrypted,
    ):  # type: ignore[union-attr]
        assert secret and secret not in logged, [line[:300] for line in log_lines if secret in line][:3]
    # nor the gateway's ids (the Stripe SDK would log its request and response bodies at DEBUG)
    for gateway_id in ("pm_quiet", gateway_customer, intent["id"]):
        assert gateway_id not in logged, [line[:300] for line in log_lines if gateway_id in line][:3]
