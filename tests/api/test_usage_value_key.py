"""Through the API: an event its meter cannot measure (the meter's valueKey property missing
or not a number) is refused with 400 naming the property, and nothing of the request is
published; /v1/analytics/summary gives each meter the figure /v1/analytics/usage gives it."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api.conftest import TenantClient, assert_error
from tests.api.test_usage_events import (  # noqa: F401  (fixtures)
    analytics_api,
    create_customer,
    create_meter,
    event,
    iso,
    send,
    usage_client,
    usage_tenant,
    wait_usage,
)


async def test_an_event_without_the_meters_value_is_refused_naming_the_property(usage_client: TenantClient) -> None:
    name = f"tokens_{uuid.uuid4().hex[:8]}"
    meter = await create_meter(usage_client, name, aggregation="sum", valueKey="tokens", filters={"model": "large"})
    alice = await create_customer(usage_client, "Alice")
    refused = assert_error(
        await send(usage_client, event(name, alice, 1, properties={"model": "large"})),
        400,
        "parameter_missing",
        "properties[tokens]",
    )
    assert meter["id"] in refused["message"] and "properties.tokens is missing" in refused["message"]
    assert_error(
        await send(usage_client, event(name, alice, 1, properties={"model": "large", "tokens": "lots"})),
        400,
        "parameter_invalid",
        "properties[tokens]",
    )
    batch = [
        event(name, alice, 1, properties={"model": "large", "tokens": 7}),
        event(name, alice, 1, properties={"model": "large", "tokens": -2}),
    ]
    assert_error(await send(usage_client, *batch), 400, "parameter_invalid", "events[1][properties][tokens]")
    # the meter does not count an event its filters skip: it needs nothing of it
    accepted = await send(usage_client, event(name, alice, 1, properties={"model": "small"}), batch[0])
    assert accepted.status_code == 202, accepted.text
    now = datetime.now(UTC)
    window = {"from": iso(now - timedelta(days=1)), "to": iso(now + timedelta(minutes=1))}
    counted = await wait_usage(usage_client, {"eventName": name, "aggregation": "count", **window}, 2)
    assert counted["data"][0]["eventCount"] == 2  # the refused requests published nothing
    assert (await usage_client.get("/v1/analytics/usage", params={"meter": meter["id"], **window})).json()["data"] == [
        {"bucket": None, "customerId": None, "value": "7", "eventCount": 1}
    ]


async def test_summary_gives_each_meter_the_figure_usage_gives_it(usage_client: TenantClient) -> None:
    """The figures differ per meter (a property, a count, a max, a filter) from the event
    name's valueSum; over random ranges the summary's `usage` is the usage route's row."""
    seed = uuid.uuid4().int % 2**32
    rng = random.Random(seed)
    seed_note = f"random.Random({seed}) drew the events and ranges"
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    customers = [await create_customer(usage_client, f"C{i}") for i in range(3)]
    definitions: list[dict[str, Any]] = [
        {"aggregation": "sum", "valueKey": "tokens"},
        {"aggregation": "count"},
        {"aggregation": "max", "valueKey": "tokens", "filters": {"model": "large"}},
        {"aggregation": "last"},
        {"aggregation": "unique_count", "valueKey": "model"},
    ]
    meters = [await create_meter(usage_client, f"agree_{uuid.uuid4().hex[:8]}", **d) for d in definitions]
    events = []
    for meter in meters:
        for _ in range(12):
            at = day + timedelta(microseconds=rng.randrange(3 * 24 * 3600 * 10**6))
            value = f"{rng.randrange(10**6)}.{rng.randrange(10**12):012d}"
            props = {
                "tokens": f"{rng.randrange(1000)}.{rng.randrange(100):02d}",
                "model": rng.choice(["large", "small"]),
            }
            events.append(event(meter["eventName"], rng.choice(customers), value, timestamp=iso(at), properties=props))
    assert (await send(usage_client, *events)).status_code == 202
    whole = {"from": iso(day), "to": iso(day + timedelta(days=3))}
    for meter in meters:
        await wait_usage(usage_client, {"eventName": meter["eventName"], "aggregation": "count", **whole}, 12)

    for _ in range(20):
        a, b = sorted(day + timedelta(seconds=rng.randrange(3 * 24 * 3600)) for _ in range(2))
        if rng.random() < 0.3:  # whole hours and days too: the rollups
            a, b = a.replace(minute=0, second=0), b.replace(hour=0, minute=0, second=0) + timedelta(days=1)
        window = {"from": iso(a), "to": iso(b + timedelta(seconds=1))}
        summary = (await usage_client.get("/v1/analytics/summary", params=window)).json()
        by_meter = {m["meter"]: m for m in summary["meters"]}
        for meter in meters:
            routed = (await usage_client.get("/v1/analytics/usage", params={"meter": meter["id"], **window})).json()
            [row] = routed["data"]
            entry = by_meter.get(meter["id"])
            if entry is None:  # no event of the name in the range
                assert row["eventCount"] == 0, (seed_note, window, meter)
                continue
            assert entry["usage"] == {
                "aggregation": meter["aggregation"],
                "value": row["value"],
                "eventCount": row["eventCount"],
            }, (
                seed_note,
                window,
                meter,
            )
