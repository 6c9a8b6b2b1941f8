"""Webhook delivery end to end: the real API, command consumer, payment worker, scheduler
passes and the notifications consumer (recorder and sender) POST to a real HTTP server
standing for an organization's endpoint.

A subscription's life on a test clock (created, its first invoice paid, a renewal paid,
canceled) arrives signed and verifies with `standardwebhooks`; a tampered body, another
secret, or a delivery verified ten minutes late does not. A failing endpoint gets its
retries at the scheduled times (time compressed by BILLING_WEBHOOK_TIME_SCALE), is disabled
exactly once, and takes a redelivery after it recovers, while a healthy endpoint of the
same organization receives every event within two seconds. The README's ten-line receiver
verifies a real delivery."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from billing.notifications.schedule import DISABLE_AFTER, RETRY_FOR, retry_delay
from tests.api.conftest import WEBHOOK_TIME_SCALE, TenantClient, free_port, new_tenant
from tests.api.test_payment_methods import connected_tenant
from tests.api.test_subscription_payments import payment_worker  # noqa: F401 (a fixture)
from tests.api.test_subscriptions import ok, parse
from tests.api.test_test_clocks import START, advance, clocked_subscription, month_later
from tests.api.webhook_receiver import Received, WebhookReceiver, webhook_receiver

README = Path(__file__).resolve().parents[2] / "README.md"


async def endpoint_at(client: TenantClient, receiver: WebhookReceiver, path: str) -> dict[str, Any]:
    body = {"url": receiver.url(path), "enabledEvents": ["*"]}
    return await ok(await client.post("/v1/webhook-endpoints", json=body), 201)


def verified(delivery: Received, secret: str) -> dict[str, Any]:
    return dict(Webhook(secret).verify(delivery.body, delivery.headers))


async def until(predicate: Any, timeout: float = 20, every: float = 0.05) -> Any:
    """The first truthy value of `await predicate()` within `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not (value := await predicate()):
            await asyncio.sleep(every)
    return value


async def test_a_subscriptions_life_arrives_signed_and_verifies(
    api: Any, session_factory: Any, payment_worker: None, notifications: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = (await connected_tenant(api, session_factory, "Listening")).client
    async with webhook_receiver() as receiver:
        endpoint = await endpoint_at(client, receiver, "/life")
        clock, customer, subscription = await clocked_subscription(client, session_factory, "pm_good")
        await advance(client, session_factory, clock, month_later(START, 1))
        await ok(await client.delete(f"/v1/subscriptions/{subscription['id']}"))

        def types() -> list[str]:
            return [json.loads(delivery.body)["type"] for delivery in receiver.received["/life"]]

        async def life_arrived() -> bool:
            return "customer.subscription.deleted" in types() and types().count("invoice.paid") >= 2

        await until(life_arrived, timeout=30)
        deliveries = receiver.received["/life"]
        events = [verified(delivery, endpoint["secret"]) for delivery in deliveries]
        for delivery, event in zip(deliveries, events, strict=True):
            assert delivery.headers["webhook-id"] == event["id"]
            assert delivery.headers["content-type"] == "application/json"
            assert event == await ok(await client.get(f"/v1/events/{event['id']}"))  # the events API's envelope
        by_type = {event["type"]: event for event in events}
        assert {"customer.created", "customer.subscription.created", "invoice.paid"} <= set(by_type)
        assert by_type["customer.created"]["data"]["object"]["id"] == customer["id"]
        assert by_type["customer.subscription.deleted"]["data"]["object"]["status"] == "canceled"
        paid = [event["data"]["object"] for event in events if event["type"] == "invoice.paid"]
        assert {invoice["billingReason"] for invoice in paid} >= {"subscription_create", "subscription_cycle"}
        assert all(invoice["amountPaid"] == 1000 for invoice in paid)

        sample = deliveries[0]
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint["secret"]).verify(sample.body.replace(b'"', b"'", 1), sample.headers)
        other = (await ok(await client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={})))[
            "secret"
        ]
        with pytest.raises(WebhookVerificationError):
            verified(sample, other)
        # ten minutes later the same delivery is refused: Standard Webhooks' replay window is five
        late = datetime.now(UTC) + timedelta(minutes=10)

        class Later(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return late

        monkeypatch.setattr("standardwebhooks.webhooks.datetime", Later)
        with pytest.raises(WebhookVerificationError, match="too old"):
            verified(sample, endpoint["secret"])


async def attempts_of(client: TenantClient, delivery_id: str) -> list[dict[str, Any]]:
    return list((await ok(await client.get(f"/v1/webhook-deliveries/{delivery_id}")))["attempts"])


async def test_a_failing_endpoint_is_retried_on_schedule_disabled_once_and_redelivered_beside_a_healthy_one(
    api: Any, session_factory: Any, notifications: None
) -> None:
    client = TenantClient(api, await new_tenant(session_factory, "Half down"))
    async with webhook_receiver() as receiver:
        receiver.status["/failing"] = 500
        failing = await endpoint_at(client, receiver, "/failing")
        healthy = await endpoint_at(client, receiver, "/healthy")
        made: dict[str, float] = {}  # customer id -> when the API answered its creation

        async def make_customer() -> None:
            customer = await ok(await client.post("/v1/customers", json={"email": "often@example.com"}), 201)
            made[customer["id"]] = time.monotonic()

        async def disabled() -> bool:
            await make_customer()  # events keep coming until the endpoint has failed for five (scaled) days
            endpoint = await ok(await client.get(f"/v1/webhook-endpoints/{failing['id']}"))
            return endpoint["status"] == "disabled"

        started = time.monotonic()
        await until(disabled, timeout=30, every=0.3)
        assert time.monotonic() - started >= DISABLE_AFTER.total_seconds() * WEBHOOK_TIME_SCALE
        endpoint = await ok(await client.get(f"/v1/webhook-endpoints/{failing['id']}"))
        assert endpoint["disabledReason"] == "failing"

        # the healthy endpoint got every event within two seconds, the disabling one included
        async def healthy_has_all() -> list[str]:
            types = [json.loads(delivery.body)["type"] for delivery in receiver.received["/healthy"]]
            return (
                types if types.count("customer.created") >= len(made) and "webhook_endpoint.disabled" in types else []
            )

        await until(healthy_has_all)
        for delivery in receiver.received["/healthy"]:
            event = verified(delivery, healthy["secret"])
            if event["type"] == "customer.created":
                assert delivery.at - made[event["data"]["object"]["id"]] < 2.0
        disables = await ok(await client.get("/v1/events", params={"type": "webhook_endpoint.disabled"}))
        assert [event["data"]["object"]["id"] for event in disables["data"]] == [failing["id"]]  # once

        # the first customer's delivery to the failing endpoint: its retries at the scheduled times
        created = await ok(await client.get("/v1/events", params={"type": "customer.created", "limit": 100}))
        first_event = created["data"][-1]["id"]
        listed = await ok(await client.get("/v1/webhook-deliveries", params={"endpoint": failing["id"], "limit": 100}))
        (first,) = [delivery for delivery in listed["data"] if delivery["eventId"] == first_event]
        assert first["status"] == "failed" and first["nextAttemptAt"] is None
        times = [parse(attempt["attemptedAt"]) for attempt in first["attempts"]]
        assert len(times) == first["attemptCount"] >= 8
        assert all(not attempt["succeeded"] and attempt["responseStatus"] == 500 for attempt in first["attempts"])
        assert first["attempts"][0]["responseBody"] == "not today"
        for number, (before, after) in enumerate(itertools.pairwise(times), start=1):
            scheduled = retry_delay(number, WEBHOOK_TIME_SCALE)
            assert scheduled - timedelta(milliseconds=2) <= after - before <= scheduled + timedelta(seconds=1)
        assert times[-1] - parse(first["createdAt"]) <= RETRY_FOR * WEBHOOK_TIME_SCALE + timedelta(seconds=1)
        by_event = await ok(await client.get("/v1/webhook-deliveries", params={"event": first["eventId"]}))
        assert {delivery["endpointId"] for delivery in by_event["data"]} == {failing["id"], healthy["id"]}

        # nothing more goes to a disabled endpoint; recovered, it takes a redelivery
        sent = len(receiver.received["/failing"])
        await asyncio.sleep(0.5)
        assert len(receiver.received["/failing"]) == sent
        receiver.status["/failing"] = 200
        await ok(await client.patch(f"/v1/webhook-endpoints/{failing['id']}", json={"status": "enabled"}))
        redelivery = await ok(await client.post(f"/v1/webhook-deliveries/{first['id']}/redeliver"))
        assert (redelivery["status"], redelivery["scheduledAttempts"]) == ("pending", 0)

        async def redelivered() -> dict[str, Any] | None:
            delivery = await ok(await client.get(f"/v1/webhook-deliveries/{first['id']}"))
            return delivery if delivery["status"] == "succeeded" else None

        delivery = await until(redelivered)
        assert delivery["attempts"][-1]["succeeded"] and delivery["attempts"][-1]["responseStatus"] == 200
        arrived = [item for item in receiver.received["/failing"] if item.headers["webhook-id"] == first["eventId"]]
        assert verified(arrived[-1], failing["secret"])["id"] == first["eventId"]


async def test_the_readmes_receiver_verifies_a_delivery(
    api: Any, session_factory: Any, notifications: None, tmp_path: Path
) -> None:
    (source,) = re.findall(r"```python\n(.*?)```", README.read_text().split("### Webhooks and events")[1], re.S)
    assert len([line for line in source.splitlines() if line.strip()]) <= 13, "the README promises a short receiver"
    port = free_port()
    script = tmp_path / "receiver.py"
    script.write_text(source.replace("4242", str(port)))
    client = TenantClient(api, await new_tenant(session_factory, "README receiver"))
    endpoint = await ok(
        await client.post(
            "/v1/webhook-endpoints",
            json={"url": f"http://127.0.0.1:{port}/webhooks", "enabledEvents": ["customer.created"]},
        ),
        201,
    )
    environment = {**os.environ, "WEBHOOK_SECRET": endpoint["secret"], "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, str(script)], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as receiver:
        try:

            async def listening() -> bool:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    return False
                writer.close()
                return True

            await until(listening)
            customer = await ok(await client.post("/v1/customers", json={"email": "readme@example.com"}), 201)
            assert receiver.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(receiver.stdout.readline), timeout=20)
            assert line.decode().split() == ["customer.created", customer["id"]]

            async def succeeded() -> dict[str, Any] | None:
                listed = await ok(await client.get("/v1/webhook-deliveries", params={"endpoint": endpoint["id"]}))
                (delivery,) = listed["data"]
                return delivery if delivery["status"] == "succeeded" else None

            delivery = await until(succeeded)
            assert [attempt["responseStatus"] for attempt in delivery["attempts"]] == [204]
        finally:
            receiver.kill()
