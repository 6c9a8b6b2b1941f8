"""/v1/analytics/usage and /v1/analytics/summary over events sent through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.api.conftest import TenantClient, assert_error
from tests.api.test_usage_events import (  # noqa: F401  (fixtures)
    analytics_api,
    create_customer,
    create_meter,
    event,
    iso,
    other_usage_client,
    other_usage_tenant,
    send,
    usage_client,
    usage_tenant,
    wait_usage,
)


async def test_grouped_usage_and_summary(usage_client: TenantClient, other_usage_client: TenantClient) -> None:
    now = datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    t1, t2, t3 = (
        day + timedelta(hours=10, minutes=15),
        day + timedelta(hours=10, minutes=45),
        day + timedelta(days=1, hours=3),
    )
    name = f"tokens_{uuid.uuid4().hex[:8]}"
    meter = await create_meter(usage_client, name, aggregation="sum")
    alice, bob = await create_customer(usage_client, "Alice"), await create_customer(usage_client, "Bob")
    sent = await send(
        usage_client,
        event(name, alice, "1.25", timestamp=iso(t1), properties={"model": "large"}),
        event(name, alice, 2, timestamp=iso(t2), properties={"model": "small"}),
        event(name, bob, "0.5", timestamp=iso(t3), properties={"model": "large"}),
    )
    assert sent.status_code == 202, sent.text
    # org B sends the same event name: never counted for A
    b_customer = await create_customer(other_usage_client)
    await create_meter(other_usage_client, name)
    assert (await send(other_usage_client, event(name, b_customer, 1000, timestamp=iso(t1)))).status_code == 202

    window = {"from": iso(day), "to": iso(now + timedelta(minutes=1))}
    total = await wait_usage(usage_client, {"meter": meter["id"], **window}, 3)
    assert total["data"] == [{"bucket": None, "customerId": None, "value": "3.75", "eventCount": 3}]
    await wait_usage(other_usage_client, {"eventName": name, **window}, 1)

    by_day = (
        await usage_client.get("/v1/analytics/usage", params={"meter": meter["id"], "groupBy": "day", **window})
    ).json()
    assert [(r["bucket"], r["value"], r["eventCount"]) for r in by_day["data"]] == [
        (iso(day), "3.25", 2),
        (iso(day + timedelta(days=1)), "0.5", 1),
    ]
    by_hour = (
        await usage_client.get("/v1/analytics/usage", params={"meter": meter["id"], "groupBy": "hour", **window})
    ).json()
    assert [(r["bucket"], r["value"]) for r in by_hour["data"]] == [
        (iso(day + timedelta(hours=10)), "3.25"),
        (iso(day + timedelta(days=1, hours=3)), "0.5"),
    ]
    by_customer = (
        await usage_client.get("/v1/analytics/usage", params={"meter": meter["id"], "groupBy": "customer", **window})
    ).json()
    assert sorted((r["customerId"], r["value"]) for r in by_customer["data"]) == sorted([(alice, "3.25"), (bob, "0.5")])
    one = (
        await usage_client.get("/v1/analytics/usage", params={"meter": meter["id"], "customer": bob, **window})
    ).json()
    assert one["data"][0]["value"] == "0.5"
    # an event name with an explicit aggregation ignores the meter's definition
    counted = (
        await usage_client.get("/v1/analytics/usage", params={"eventName": name, "aggregation": "max", **window})
    ).json()
    assert (counted["aggregation"], counted["data"][0]["value"]) == ("max", "2")
    # a part of an hour reads raw rows: exact at the minute
    edge = {"from": iso(t1), "to": iso(t2)}
    assert (await usage_client.get("/v1/analytics/usage", params={"meter": meter["id"], **edge})).json()["data"][0][
        "value"
    ] == "1.25"

    filtered = await create_meter(usage_client, f"{name}_large", aggregation="count", filters={"model": "large"})
    assert filtered["filters"] == {"model": "large"}

    summary = (await usage_client.get("/v1/analytics/summary", params=window)).json()
    mine = [m for m in summary["meters"] if m["eventName"] == name]
    assert mine == [
        {
            "eventName": name,
            "meter": meter["id"],
            "eventCount": 3,
            "valueSum": "3.75",
            "customers": 2,
            "usage": {"aggregation": "sum", "value": "3.75", "eventCount": 3},
        }
    ]
    assert summary["object"] == "usage_summary" and isinstance(summary["valueSum"], str)
    other = (await other_usage_client.get("/v1/analytics/summary", params=window)).json()
    assert [m["valueSum"] for m in other["meters"] if m["eventName"] == name] == ["1000"]
    assert other["customers"] == 1 and alice not in str(other)


async def test_bad_queries_are_refused(usage_client: TenantClient, other_usage_tenant) -> None:  # type: ignore[no-untyped-def]
    meter = await create_meter(usage_client)
    now = datetime.now(UTC)
    cases = [
        ({}, 400, "parameter_missing", "meter"),
        ({"meter": meter["id"], "eventName": "x"}, 400, "parameter_missing", "meter"),
        ({"meter": "mtr_nope"}, 404, "resource_missing", "meter"),
        ({"meter": meter["id"], "aggregation": "max"}, 400, "parameter_unknown", "aggregation"),
        ({"eventName": "x", "aggregation": "avg"}, 400, "parameter_invalid", "aggregation"),
        ({"meter": meter["id"], "groupBy": "week"}, 400, "parameter_invalid", "groupBy"),
        ({"meter": meter["id"], "from": "yesterday"}, 400, "parameter_invalid", "from"),
        ({"meter": meter["id"], "from": "2025-01-01T00:00:00"}, 400, "parameter_invalid", "from"),
        (
            {"meter": meter["id"], "from": iso(now), "to": iso(now - timedelta(days=1))},
            400,
            "parameter_invalid",
            "from",
        ),
        (
            {"meter": meter["id"], "from": iso(now - timedelta(days=500)), "to": iso(now)},
            400,
            "parameter_invalid",
            "to",
        ),
        (
            {"meter": meter["id"], "groupBy": "hour", "from": iso(now - timedelta(days=40)), "to": iso(now)},
            400,
            "parameter_invalid",
            "to",
        ),
    ]
    for params, status, code, param in cases:
        assert_error(await usage_client.get("/v1/analytics/usage", params=params), status, code, param)
    assert_error(
        await usage_client.get("/v1/analytics/summary", params={"from": iso(now), "to": iso(now)}),
        400,
        "parameter_invalid",
        "from",
    )
    # no parameter names an organization: one sent anyway changes nothing
    window = {"from": iso(now - timedelta(days=3)), "to": iso(now + timedelta(minutes=1))}
    plain = (await usage_client.get("/v1/analytics/summary", params=window)).json()
    spoofed = await usage_client.get(
        "/v1/analytics/summary", params={**window, "organizationId": other_usage_tenant.organization_id}
    )
    assert spoofed.json()["meters"] == plain["meters"]
