"""Usage and summary queries against hand-computed, exact values."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from analytics.ingest import BatchProcessor
from analytics.queries import QueryError, UsageRow, plan_segments, summary, usage
from tests.analytics.helpers import EVENTS_TOPIC, USAGE_TOPIC, event_payload, message

D0 = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
D1, D2, D3 = D0 + timedelta(days=1), D0 + timedelta(days=2), D0 + timedelta(days=3)

EVENTS = [
    # identifier, customer, value, timestamp, properties
    ("e1", "cus_1", "0.000000000001", D0 + timedelta(minutes=10), {"tokens": 3, "region": "eu"}),
    ("e2", "cus_1", "2.5", D0 + timedelta(hours=1, minutes=30), {"tokens": "4.5", "region": "us"}),
    ("e3", "cus_2", 10, D1 + timedelta(hours=5), {"region": "eu"}),
    (
        "e4",
        "cus_2",
        "0.1",
        D1 + timedelta(hours=5, minutes=59, seconds=59, microseconds=999999),
        {"tokens": 1, "region": "eu"},
    ),
    ("e5", "cus_1", "7.25", D2, {"tokens": 3, "region": "us", "flag": True}),
]


@pytest.fixture(scope="module")
def orgs(store):
    org_a, org_b = "org_q_a", "org_q_b"
    msgs = [
        message(event_payload(org_a, ident, customer=cus, value=val, ts=ts, properties=props))
        for ident, cus, val, ts, props in EVENTS
    ]
    msgs.append(
        message(event_payload(org_a, "s1", name="storage", customer="cus_1", value=100, ts=D0 + timedelta(minutes=10)))
    )
    # org B: same identifiers, same meter, other values: must never show up in A's numbers
    msgs += [message(event_payload(org_b, ident, customer=cus, value=1000, ts=ts)) for ident, cus, _v, ts, _p in EVENTS]
    msgs.append(
        message(
            {
                "eventId": "evt_1",
                "type": "customer.created",
                "organizationId": org_a,
                "occurredAt": (D0 + timedelta(hours=2)).isoformat(),
                "data": {"id": "cus_1"},
            },
            topic=EVENTS_TOPIC,
        )
    )
    msgs.append(
        message(
            {
                "eventId": "evt_2",
                "type": "weird.thing",
                "organizationId": org_b,
                "occurredAt": (D0 + timedelta(hours=2)).isoformat(),
                "data": {},
            },
            topic=EVENTS_TOPIC,
        )
    )
    result = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC]).process(msgs)
    assert result.dead_letters == 0, result.dead_letter_reasons
    assert result.usage_inserted == 11
    return org_a, org_b


def q(store, org, agg="sum", **kw):
    kw.setdefault("start", D0)
    kw.setdefault("end", D3)
    return usage(store, org, kw.pop("event_name", "api_call"), agg, **kw)


def test_sum_whole_period_is_exact(store, orgs):
    a, b = orgs
    assert q(store, a) == [UsageRow(None, None, Decimal("19.850000000001"), 5)]
    assert q(store, b) == [UsageRow(None, None, Decimal("5000"), 5)]


def test_group_by_day_hour_customer(store, orgs):
    a, _ = orgs
    assert [(r.bucket, r.value, r.event_count) for r in q(store, a, group_by="day")] == [
        (D0, Decimal("2.500000000001"), 2),
        (D1, Decimal("10.1"), 2),
        (D2, Decimal("7.25"), 1),
    ]
    assert [(r.bucket, r.value) for r in q(store, a, group_by="hour")] == [
        (D0, Decimal("0.000000000001")),
        (D0 + timedelta(hours=1), Decimal("2.5")),
        (D1 + timedelta(hours=5), Decimal("10.1")),
        (D2, Decimal("7.25")),
    ]
    assert [(r.customer_id, r.value, r.event_count) for r in q(store, a, group_by="customer")] == [
        ("cus_1", Decimal("9.750000000001"), 3),
        ("cus_2", Decimal("10.1"), 2),
    ]


def test_other_aggregations(store, orgs):
    a, _ = orgs
    assert q(store, a, "count")[0].value == 5
    assert q(store, a, "max")[0].value == Decimal(10)
    assert q(store, a, "last")[0].value == Decimal("7.25")
    assert q(store, a, "last", customer_id="cus_2")[0].value == Decimal("0.1")
    assert q(store, a, "unique_count")[0].value == 5
    assert q(store, a, "sum", customer_id="cus_2")[0].value == Decimal("10.1")


def test_value_key_and_property_filters(store, orgs):
    a, _ = orgs
    assert q(store, a, "sum", value_key="tokens")[0].value == Decimal("11.5")
    assert q(store, a, "max", value_key="tokens")[0].value == Decimal("4.5")
    assert q(store, a, "last", value_key="tokens")[0].value == Decimal("3")
    assert q(store, a, "unique_count", value_key="region")[0].value == 2
    assert q(store, a, "sum", property_filters={"region": "eu"})[0].value == Decimal("10.100000000001")
    assert q(store, a, "count", property_filters={"flag": "true"})[0].value == 1
    by_day = q(store, a, "sum", value_key="tokens", group_by="day")
    assert [(r.bucket, r.value) for r in by_day] == [(D0, Decimal("7.5")), (D1, Decimal("1")), (D2, Decimal("3"))]


@pytest.mark.parametrize("agg", ["sum", "count", "max", "last"])
def test_unaligned_periods_match_raw_rows(store, orgs, agg):
    """Edges read raw rows, whole hours and days the rollups: the answer is the same."""
    a, _ = orgs
    cases = [
        (D0 + timedelta(minutes=20), D1 + timedelta(hours=5, minutes=59, seconds=59, microseconds=999999)),
        (D0 + timedelta(minutes=20), D2 + timedelta(minutes=30)),
        (D0 + timedelta(minutes=5), D0 + timedelta(minutes=15)),
        (D0, D2),
        (D0 - timedelta(days=10), D3 + timedelta(days=1)),
    ]
    for start, end in cases:
        expected = [e for e in EVENTS if start <= e[3] < end]
        values = [Decimal(str(e[2])) for e in expected]
        want = {
            "sum": sum(values, Decimal(0)),
            "count": Decimal(len(values)),
            "max": max(values) if values else None,
            "last": Decimal(str(max(expected, key=lambda e: e[3])[2])) if expected else None,
        }[agg]
        got = q(store, a, agg, start=start, end=end)
        assert got == [UsageRow(None, None, want, len(values))], (start, end, plan_segments(start, end))


def test_empty_period_and_unknown_meter(store, orgs):
    a, _ = orgs
    assert q(store, a, event_name="nothing") == [UsageRow(None, None, Decimal(0), 0)]
    assert q(store, a, "max", event_name="nothing") == [UsageRow(None, None, None, 0)]
    assert q(store, a, event_name="nothing", group_by="day") == []
    assert q(store, "org_nobody") == [UsageRow(None, None, Decimal(0), 0)]


def test_tenant_isolation(store, orgs):
    a, b = orgs
    for agg in ("sum", "count", "max", "last", "unique_count"):
        ra, rb = q(store, a, agg), q(store, b, agg)
        assert ra[0].event_count == 5 and rb[0].event_count == 5
    assert q(store, b, "max")[0].value == 1000
    assert [r.customer_id for r in q(store, b, group_by="customer")] == ["cus_1", "cus_2"]
    sa, sb = summary(store, a, D0, D3), summary(store, b, D0, D3)
    assert [m.event_name for m in sa.meters] == ["api_call", "storage"]
    assert [m.event_name for m in sb.meters] == ["api_call"]
    assert sa.interactions == {"customer.created": 1}
    assert sb.interactions == {"weird.thing": 1}


def test_summary_values(store, orgs):
    import dataclasses

    from contracts.usage import UsageSummaryOut

    a, _ = orgs
    s = summary(store, a, D0, D3)
    out = UsageSummaryOut.model_validate(dataclasses.asdict(s)).model_dump(mode="json", by_alias=True)
    assert out["valueSum"] == "119.850000000001" and out["meters"][0]["eventName"] == "api_call"
    assert s.event_count == 6
    assert s.value_sum == Decimal("119.850000000001")
    assert s.customers == 2
    api = s.meters[0]
    assert (api.event_count, api.value_sum, api.customers) == (5, Decimal("19.850000000001"), 2)
    assert (s.meters[1].event_count, s.meters[1].value_sum, s.meters[1].customers) == (1, Decimal(100), 1)
    assert s.interaction_count == 1


def test_organization_is_required(store):
    with pytest.raises(QueryError):
        usage(store, "", "api_call", start=D0, end=D1)
    with pytest.raises(TypeError):
        usage(store, event_name="api_call", start=D0, end=D1)  # type: ignore[call-arg]
    with pytest.raises(QueryError):
        usage(store, "org", "api_call", start=D0.replace(tzinfo=None), end=D1)
    with pytest.raises(QueryError):
        usage(store, "org", "api_call", start=D1, end=D0)
    with pytest.raises(QueryError):
        usage(store, "org", "api_call", "median", start=D0, end=D1)  # type: ignore[arg-type]


@pytest.mark.unit
def test_plan_segments_cover_the_period_exactly():
    start, end = D0 + timedelta(minutes=7), D3 + timedelta(hours=2, minutes=1)
    segs = plan_segments(start, end)
    assert [s[0] for s in segs] == ["raw", "hourly", "daily", "hourly", "raw"]
    assert segs[0][1] == start and segs[-1][2] == end
    assert all(a[2] == b[1] for a, b in itertools.pairwise(segs))
