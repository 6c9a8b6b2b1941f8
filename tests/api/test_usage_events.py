"""POST /v1/usage-events through the real stack: API -> Kafka usage.events -> the analytics
consumer (in this process: one chDB engine per process) -> chDB -> /v1/analytics.

This module also holds the fixtures the other analytics API tests import
(`analytics_api`, `usage_client`, `other_usage_client`, helpers): the API served with the
test chDB store, beside the command consumer and the analytics consumer.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

# One chDB engine per process, at one path: the analytics tests (tests/analytics/conftest.py)
# and these share the path named here, set while modules are collected (before any fixture).
if not os.environ.get("ANALYTICS_TEST_CLICKHOUSE_URL"):
    _dir = tempfile.mkdtemp(prefix="analytics-api-test-")
    atexit.register(shutil.rmtree, _dir, True)
    os.environ["ANALYTICS_TEST_CLICKHOUSE_URL"] = f"chdb://{_dir}/clickhouse"

from analytics.consumer import ConsumerConfig, ConsumerStats, run_analytics_consumer
from analytics.migrations import migrate
from analytics.store import get_store
from contracts.settings import get_settings
from contracts.usage import MAX_BATCH_EVENTS
from tests.api.conftest import Tenant, TenantClient, assert_error, new_tenant, serve

#: the test session's ClickHouse, for whatever in this process reads or writes usage
SESSION_CLICKHOUSE_URL = os.environ["ANALYTICS_TEST_CLICKHOUSE_URL"]


@dataclasses.dataclass
class AnalyticsStack:
    client: httpx.AsyncClient
    stats: ConsumerStats


_running: list[AnalyticsStack] = []


@pytest.fixture(scope="session")
async def analytics_api(command_consumer: None) -> AsyncIterator[AnalyticsStack]:
    """Imported by several modules (a separate fixture in each): the first one starts it."""
    if _running:
        yield _running[0]
        return
    url = SESSION_CLICKHOUSE_URL
    store = await asyncio.to_thread(get_store, url)
    await asyncio.to_thread(migrate, store)
    settings = dataclasses.replace(get_settings(), clickhouse_url=url)
    stop, ready, stats = asyncio.Event(), asyncio.Event(), ConsumerStats()
    consumer = asyncio.create_task(
        run_analytics_consumer(
            settings, stop, store=store, config=ConsumerConfig(linger_ms=50), stats=stats, ready=ready
        )
    )
    await asyncio.wait_for(ready.wait(), timeout=60)
    try:
        async with serve(settings) as client:
            _running.append(AnalyticsStack(client, stats))
            yield _running[0]
    finally:
        stop.set()
        await asyncio.wait_for(consumer, timeout=60)


@pytest.fixture(scope="session")
async def usage_tenant(session_factory) -> Tenant:  # type: ignore[no-untyped-def]
    return await new_tenant(session_factory, "Usage A")


@pytest.fixture(scope="session")
async def other_usage_tenant(session_factory) -> Tenant:  # type: ignore[no-untyped-def]
    return await new_tenant(session_factory, "Usage B")


@pytest.fixture
def usage_client(analytics_api: AnalyticsStack, usage_tenant: Tenant) -> TenantClient:
    return TenantClient(analytics_api.client, usage_tenant)


@pytest.fixture
def other_usage_client(analytics_api: AnalyticsStack, other_usage_tenant: Tenant) -> TenantClient:
    return TenantClient(analytics_api.client, other_usage_tenant)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def create_meter(client: TenantClient, event_name: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {
        "displayName": fields.pop("displayName", "Meter"),
        "eventName": event_name or f"ev_{uuid.uuid4().hex[:10]}",
        **fields,
    }
    response = await client.post("/v1/meters", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def create_customer(client: TenantClient, name: str = "Customer") -> str:
    response = await client.post("/v1/customers", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def new_identifier() -> str:
    """Random, with no digits: 1,000 random hex ids sometimes hold a 13-digit Luhn-valid
    run, which the card-data guard refuses (as it should)."""
    return uuid.uuid4().hex.translate(_NO_DIGITS)


def event(name: str, customer: str, value: Any = 1, identifier: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "eventName": name,
        "customerId": customer,
        "value": value,
        "identifier": identifier or new_identifier(),
        **extra,
    }


async def send(client: TenantClient, *events: dict[str, Any]) -> httpx.Response:
    body: Any = events[0] if len(events) == 1 else {"events": list(events)}
    return await client.post("/v1/usage-events", json=body)


async def wait_usage(
    client: TenantClient, params: dict[str, Any], expected_events: int, timeout: float = 30
) -> dict[str, Any]:
    """Poll /v1/analytics/usage (ungrouped) until it counts `expected_events`."""
    body: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get("/v1/analytics/usage", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            if sum(row["eventCount"] for row in body["data"]) >= expected_events:
                return body
            await asyncio.sleep(0.1)


async def settle_usage(client: TenantClient, meter: dict[str, Any], customer: str, counted: int) -> dict[str, Any]:
    """Sends one barrier event (value 0) and waits until it is counted: an organization's
    events are consumed in order, so anything accepted before it is counted by then."""
    barrier = await send(client, event(meter["eventName"], customer, 0))
    assert barrier.status_code == 202, barrier.text
    return await wait_usage(client, {"meter": meter["id"]}, counted + 1)


# --- ingestion ------------------------------------------------------------------------------


async def test_one_event_and_a_batch_are_counted_exactly(usage_client: TenantClient) -> None:
    meter = await create_meter(usage_client, aggregation="sum")
    name = meter["eventName"]
    customer = await create_customer(usage_client)
    now = datetime.now(UTC)

    one = await send(usage_client, event(name, customer, "0.000000000001", timestamp=iso(now - timedelta(minutes=1))))
    assert one.status_code == 202, one.text
    assert one.json()["count"] == 1 and one.json()["status"] == "accepted"

    batch = await send(usage_client, *[event(name, customer, value) for value in (1, "2.5", 10**19, 0)])
    assert batch.status_code == 202 and batch.json()["count"] == 4

    body = await wait_usage(usage_client, {"meter": meter["id"], "from": iso(now - timedelta(hours=1))}, 5)
    assert body["data"] == [
        {"bucket": None, "customerId": None, "value": "10000000000000000003.500000000001", "eventCount": 5}
    ]
    assert (body["meter"], body["eventName"], body["aggregation"]) == (meter["id"], name, "sum")


async def test_identifiers_dedupe_across_requests_first_wins(usage_client: TenantClient) -> None:
    meter = await create_meter(usage_client)
    customer = await create_customer(usage_client)
    identifier = f"idem-{uuid.uuid4().hex}"
    first = await send(usage_client, event(meter["eventName"], customer, 5, identifier))
    again = await send(
        usage_client, event(meter["eventName"], customer, 7, identifier), event(meter["eventName"], customer, 1)
    )
    assert (first.status_code, again.status_code) == (202, 202)
    await wait_usage(usage_client, {"meter": meter["id"]}, 2)
    body = await settle_usage(usage_client, meter, customer, 2)  # a counted duplicate would show by now
    assert body["data"][0]["eventCount"] == 3 and body["data"][0]["value"] == "6"


async def test_events_carry_the_organization_of_the_key(
    usage_client: TenantClient, other_usage_client: TenantClient
) -> None:
    """Org B may use the same event name and identifiers; neither ever sees the other's usage."""
    name = f"shared_{uuid.uuid4().hex[:8]}"
    meter_a = await create_meter(usage_client, name)
    meter_b = await create_meter(other_usage_client, name)
    customer_a = await create_customer(usage_client)
    customer_b = await create_customer(other_usage_client)
    identifier = new_identifier()
    assert (await send(usage_client, event(name, customer_a, 3, identifier))).status_code == 202
    assert (
        await send(other_usage_client, event(name, customer_b, 40, identifier), event(name, customer_b, 2))
    ).status_code == 202

    a = await wait_usage(usage_client, {"eventName": name, "groupBy": "customer"}, 1)
    b = await wait_usage(other_usage_client, {"eventName": name, "groupBy": "customer"}, 2)
    assert [(r["customerId"], r["value"]) for r in a["data"]] == [(customer_a, "3")]
    assert [(r["customerId"], r["value"]) for r in b["data"]] == [(customer_b, "42")]
    # B's meter id and B's customer are not A's to ask about
    assert_error(
        await usage_client.get("/v1/analytics/usage", params={"meter": meter_b["id"]}), 404, "resource_missing", "meter"
    )
    filtered = await usage_client.get("/v1/analytics/usage", params={"meter": meter_a["id"], "customer": customer_b})
    assert filtered.json()["data"] == [{"bucket": None, "customerId": None, "value": "0", "eventCount": 0}]
    # and B's customer cannot be billed through A's key
    assert_error(await send(usage_client, event(name, customer_b)), 400, "resource_missing", "customerId")


# --- bad input ------------------------------------------------------------------------------


async def test_bad_events_are_refused_with_their_exact_parameter(usage_client: TenantClient) -> None:
    meter = await create_meter(usage_client)
    name = meter["eventName"]
    customer = await create_customer(usage_client)
    ok = [event(name, customer) for _ in range(3)]
    now = datetime.now(UTC)
    cases = [
        ([*ok, event(name, customer, "abc")], "parameter_invalid", "events[3][value]"),
        ([*ok, event(name, customer, True)], "parameter_invalid", "events[3][value]"),
        ([*ok, event(name, customer, -1)], "parameter_invalid", "events[3][value]"),
        ([*ok, event(name, customer, "1.0000000000001")], "parameter_invalid", "events[3][value]"),
        (
            [*ok, event(name, customer, timestamp=iso(now + timedelta(hours=1)))],
            "parameter_invalid",
            "events[3][timestamp]",
        ),
        (
            [*ok, event(name, customer, timestamp=iso(now - timedelta(days=40)))],
            "parameter_invalid",
            "events[3][timestamp]",
        ),
        ([*ok, event(name, customer, timestamp="2025-01-01T00:00:00")], "parameter_invalid", "events[3][timestamp]"),
        (
            [*ok, {k: v for k, v in event(name, customer).items() if k != "identifier"}],
            "parameter_missing",
            "events[3][identifier]",
        ),
        ([*ok, event(name, customer, unknown=1)], "parameter_unknown", "events[3][unknown]"),
        ([*ok, event(name, "cus_nobody")], "resource_missing", "events[3][customerId]"),
        ([*ok, event("no_such_event", customer)], "resource_missing", "events[3][eventName]"),
        (
            [*ok, {**event(name, customer), "identifier": ok[1]["identifier"]}],
            "parameter_invalid",
            "events[3][identifier]",
        ),
    ]
    for events, code, param in cases:
        response = await usage_client.post("/v1/usage-events", json={"events": events})
        error = assert_error(response, 400, code, param)
        assert "Value error" not in error["message"]
    dup = assert_error(
        await usage_client.post(
            "/v1/usage-events", json={"events": [*ok, {**event(name, customer), "identifier": ok[1]["identifier"]}]}
        ),
        400,
        "parameter_invalid",
        "events[3][identifier]",
    )
    assert "events[3] repeats events[1]" in dup["message"]
    # a single event names its fields without a prefix
    assert_error(await send(usage_client, event(name, customer, "x")), 400, "parameter_invalid", "value")
    assert_error(await send(usage_client, event(name, "cus_nobody")), 400, "resource_missing", "customerId")
    # batch limits
    too_many = {"events": [event(name, customer) for _ in range(MAX_BATCH_EVENTS + 1)]}
    error = assert_error(await usage_client.post("/v1/usage-events", json=too_many), 400, "parameter_invalid", "events")
    assert "at most 1000" in error["message"]
    assert_error(await usage_client.post("/v1/usage-events", json={"events": []}), 400, "parameter_invalid", "events")
    assert_error(await usage_client.post("/v1/usage-events", json=[1, 2]), 400, "parameter_invalid", None)
    bad_json = await usage_client.post(
        "/v1/usage-events", content=b'{"events": [', headers={"Content-Type": "application/json"}
    )
    assert_error(bad_json, 400, "invalid_json", None)
    # nothing of the refused requests was published: only the barrier is counted
    body = await settle_usage(usage_client, meter, customer, 0)
    assert body["data"][0]["eventCount"] == 1


async def test_a_full_batch_of_1000_is_accepted(usage_client: TenantClient) -> None:
    meter = await create_meter(usage_client, aggregation="count")
    customers = [await create_customer(usage_client, f"C{i}") for i in range(3)]
    events = [
        event(meter["eventName"], customers[i % 3], i, properties={"region": "eu", "n": i})
        for i in range(MAX_BATCH_EVENTS)
    ]
    response = await usage_client.post("/v1/usage-events", json={"events": events})
    assert response.status_code == 202, response.text
    body = await wait_usage(usage_client, {"meter": meter["id"]}, MAX_BATCH_EVENTS)
    assert body["data"][0]["value"] == str(MAX_BATCH_EVENTS)


async def test_inactive_meter_refuses_events(usage_client: TenantClient) -> None:
    meter = await create_meter(usage_client)
    customer = await create_customer(usage_client)
    assert (await usage_client.patch(f"/v1/meters/{meter['id']}", json={"active": False})).status_code == 200
    assert_error(await send(usage_client, event(meter["eventName"], customer)), 400, "meter_inactive", "eventName")
    assert (await usage_client.patch(f"/v1/meters/{meter['id']}", json={"active": True})).status_code == 200
    assert (await settle_usage(usage_client, meter, customer, 0))["data"][0][
        "eventCount"
    ] == 1  # the refused one is not


async def test_usage_needs_a_key(analytics_api: AnalyticsStack) -> None:
    response = await analytics_api.client.post("/v1/usage-events", json={})
    assert response.status_code == 401


async def test_a_large_batch_is_scanned_for_card_numbers_too(usage_client: TenantClient) -> None:
    """Bodies over the guard's 256 KiB pass it unread; this route scans them itself."""
    meter = await create_meter(usage_client)
    customer = await create_customer(usage_client)
    events = [event(meter["eventName"], customer, properties={"note": "x" * 400}) for _ in range(MAX_BATCH_EVENTS)]
    events[700]["properties"]["note"] = "card 4242 4242 4242 4242"
    response = await usage_client.post("/v1/usage-events", json={"events": events})
    assert len(response.request.content) > 256 * 1024
    error = assert_error(response, 400, "card_data_not_allowed", "events[700][properties][note]")
    assert "4242" not in error["message"]
    assert (await settle_usage(usage_client, meter, customer, 0))["data"][0]["eventCount"] == 1  # none of the 1,000
