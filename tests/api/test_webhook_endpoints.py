"""/v1/webhook-endpoints and /v1/events through the real API and consumers: the signing
secret is shown by the write that makes it (a retry with the same Idempotency-Key shows
the same one), never by a read; bad endpoints are refused in Stripe's shape before any
command; updates, rotation with overlap, deletion; events listed by type (exact or
`prefix.*`) and creation time, in the envelope webhooks deliver."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api.conftest import TenantClient, assert_error, commands_applied, new_tenant
from tests.api.test_subscriptions import ok, parse

HOOK = "http://127.0.0.1:4242/hook"


async def new_endpoint(client: TenantClient, url: str = HOOK, **body: Any) -> dict[str, Any]:
    return await ok(await client.post("/v1/webhook-endpoints", json={"url": url, "enabledEvents": ["*"], **body}), 201)


async def test_the_secret_is_shown_by_the_write_that_makes_it_only(api: Any, session_factory: Any) -> None:
    client = TenantClient(api, await new_tenant(session_factory, "Endpoints"))
    body = {"url": HOOK, "enabledEvents": ["customer.created", "invoice.paid"], "metadata": {"team": "billing"}}
    key = {"Idempotency-Key": "endpoint-1"}
    first = await client.post("/v1/webhook-endpoints", json=body, headers=key)
    created = await ok(first, 201)
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert (created["status"], created["enabledEvents"], created["metadata"]) == (
        "enabled",
        ["customer.created", "invoice.paid"],
        {"team": "billing"},
    )
    retried = await client.post("/v1/webhook-endpoints", json=body, headers=key)
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert (await ok(retried, 201))["secret"] == created["secret"]
    read = await ok(await client.get(f"/v1/webhook-endpoints/{created['id']}"))
    assert "secret" not in read and read == {k: v for k, v in created.items() if k != "secret"}
    listed = await ok(await client.get("/v1/webhook-endpoints"))
    assert [endpoint["id"] for endpoint in listed["data"]] == [created["id"]]
    assert all("secret" not in endpoint for endpoint in listed["data"])


async def test_bad_endpoints_are_refused_before_any_command(api: Any, session_factory: Any) -> None:
    tenant = await new_tenant(session_factory, "Bad endpoints")
    client = TenantClient(api, tenant)
    before = await commands_applied(session_factory, tenant.organization_id)
    for body, code, param in [
        ({"url": HOOK, "enabledEvents": ["customer.made"]}, "parameter_invalid", "enabledEvents"),
        ({"url": HOOK, "enabledEvents": ["*", "invoice.paid"]}, "parameter_invalid", "enabledEvents"),
        ({"url": HOOK, "enabledEvents": []}, "parameter_invalid_string_empty", "enabledEvents"),
        ({"url": "ftp://127.0.0.1/hook", "enabledEvents": ["*"]}, "url_invalid", "url"),
        ({"url": "http://no-such-host.invalid/hook", "enabledEvents": ["*"]}, "url_invalid", "url"),
        ({"url": "http://user:pw@127.0.0.1/hook", "enabledEvents": ["*"]}, "url_invalid", "url"),
    ]:
        response = await client.post("/v1/webhook-endpoints", json=body)
        assert_error(response, 400, code, param)
    assert await commands_applied(session_factory, tenant.organization_id) == before
    endpoint = await new_endpoint(client)
    assert_error(
        await client.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"url": "gopher://x"}),
        400,
        "url_invalid",
        "url",
    )
    assert_error(
        await client.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"url": None}),
        400,
        "parameter_invalid",
        "url",
    )
    other = TenantClient(api, await new_tenant(session_factory, "Someone else"))
    assert_error(await other.get(f"/v1/webhook-endpoints/{endpoint['id']}"), 404, "resource_missing", "id")
    assert_error(await other.delete(f"/v1/webhook-endpoints/{endpoint['id']}"), 404, "resource_missing", "id")
    assert (await ok(await client.get(f"/v1/webhook-endpoints/{endpoint['id']}")))["status"] == "enabled"


async def test_an_endpoint_is_updated_disabled_rotated_and_deleted(api: Any, session_factory: Any) -> None:
    client = TenantClient(api, await new_tenant(session_factory, "Endpoint changes"))
    endpoint = await new_endpoint(client, description="Orders service")
    url = f"/v1/webhook-endpoints/{endpoint['id']}"
    changed = await ok(
        await client.patch(url, json={"description": None, "enabledEvents": ["invoice.paid"], "metadata": {"a": "1"}})
    )
    assert (changed["description"], changed["enabledEvents"], changed["metadata"]) == (
        None,
        ["invoice.paid"],
        {"a": "1"},
    )
    disabled = await ok(await client.patch(url, json={"status": "disabled"}))
    assert (disabled["status"], disabled["disabledReason"]) == ("disabled", "manual")
    enabled = await ok(await client.patch(url, json={"status": "enabled"}))
    assert (enabled["status"], enabled["disabledReason"]) == ("enabled", None)
    before = datetime.now(UTC)
    rotated = await ok(await client.post(f"{url}/rotate-secret", json={"expiresInHours": 2}))
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    overlap = parse(rotated["previousSecretExpiresAt"]) - before
    assert timedelta(hours=2) - timedelta(seconds=1) <= overlap <= timedelta(hours=2) + timedelta(seconds=30)
    assert_error(
        await client.post(f"{url}/rotate-secret", json={"expiresInHours": 169}),
        400,
        "parameter_invalid",
        "expiresInHours",
    )
    deleted = await ok(await client.delete(url))
    assert deleted["id"] == endpoint["id"]
    assert_error(await client.get(url), 404, "resource_missing", "id")


async def events_of(client: TenantClient, count: int, **params: Any) -> list[dict[str, Any]]:
    """The organization's events matching `params`, once there are `count` of them."""
    async with asyncio.timeout(20):
        while True:
            listed = await ok(await client.get("/v1/events", params={"limit": 100, **params}))
            if len(listed["data"]) >= count:
                return list(listed["data"])
            await asyncio.sleep(0.05)


async def test_events_are_kept_in_the_envelope_webhooks_deliver(
    api: Any, session_factory: Any, notifications: None
) -> None:
    client = TenantClient(api, await new_tenant(session_factory, "Events"))
    customer = await ok(await client.post("/v1/customers", json={"email": "events@example.com"}), 201)
    await ok(await client.patch(f"/v1/customers/{customer['id']}", json={"name": "Evie"}))
    await ok(await client.post("/v1/products", json={"name": "Evented"}), 201)
    updated, created = await events_of(client, 2, type="customer.*")
    assert [created["type"], updated["type"]] == ["customer.created", "customer.updated"]
    assert set(created) >= {"id", "type", "createdAt", "data"}
    assert created["data"]["object"]["id"] == customer["id"]
    assert created["data"]["object"] == customer  # the resource as the API returned it
    assert updated["data"]["object"]["name"] == "Evie"
    assert created["data"]["previousAttributes"] is None
    assert await ok(await client.get(f"/v1/events/{created['id']}")) == created
    both = await events_of(client, 2, types=["customer.created", "product.*"])
    assert {event["type"] for event in both} == {"customer.created", "product.created"}
    (product,) = await events_of(client, 1, type="product.created")
    assert (
        await ok(
            await client.get("/v1/events", params={"type": "product.created", "created[gt]": product["createdAt"]})
        )
    )["data"] == []
    assert (await ok(await client.get("/v1/events", params={"type": "invoice.paid"})))["data"] == []
    other = TenantClient(api, await new_tenant(session_factory, "Not their events"))
    assert_error(await other.get(f"/v1/events/{created['id']}"), 404, "resource_missing", "id")
    assert (await ok(await other.get("/v1/events")))["data"] == []
