"""The summary and the usage route give the same exact figure for the same meter and range,
over random events, meters and ranges (real chDB, events stored by the consumer's
BatchProcessor), and both equal the figure computed here in exact Decimal arithmetic."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.ingest import BatchProcessor
from analytics.queries import UsageRow, meter_totals, summary, usage_for_meter
from billing.meters.rules import property_text
from tests.analytics.helpers import EVENTS_TOPIC, USAGE_TOPIC, event_payload, message

# whole days back, so every event is inside the accepted age window and rollups are used
BASE = (datetime.now(UTC) - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
SPAN_US = 3 * 24 * 3600 * 1_000_000
NAME = "tokens_used"


@dataclass(frozen=True)
class Meter:
    """What usage_for_meter reads of a contracts.resources.Meter."""

    eventName: str
    aggregation: str
    valueKey: str | None
    filters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    identifier: str
    customer: str
    value: Decimal
    ts: datetime
    properties: dict[str, Any]


decimals = st.builds(lambda units, places: Decimal(units).scaleb(-places), st.integers(0, 10**14), st.integers(0, 12))
# a property as a publisher sends it: a JSON number, a numeric string, text, or left out
tokens = st.one_of(st.integers(0, 10**6), decimals.map(str), st.just("n/a"), st.none())
instants = st.integers(0, SPAN_US).map(lambda us: BASE + timedelta(microseconds=us))
# range edges on day, hour and arbitrary microsecond boundaries, so every rollup segment is cut
edges = st.one_of(
    st.integers(0, 3).map(lambda d: BASE + timedelta(days=d)),
    st.integers(0, 72).map(lambda h: BASE + timedelta(hours=h)),
    instants,
)


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    out = []
    for i in range(draw(st.integers(0, 25))):
        props: dict[str, Any] = {"region": draw(st.sampled_from(["eu", "us"]))}
        token = draw(tokens)
        if token is not None:
            props["tokens"] = token
        ts = draw(st.one_of(instants, edges))  # some exactly on a boundary
        out.append(Event(f"e{i}", draw(st.sampled_from(["cus_1", "cus_2", "cus_3"])), draw(decimals), ts, props))
    return out


meters = st.builds(
    Meter,
    st.just(NAME),
    st.sampled_from(["sum", "count", "max", "last", "unique_count"]),
    st.sampled_from([None, "tokens"]),
    st.sampled_from([{}, {"region": "eu"}]),
)


def expected(meter: Meter, evs: list[Event], start: datetime, end: datetime) -> UsageRow:
    """The meter's figure by hand: what it counts, over [start, end)."""
    picked = [
        e
        for e in evs
        if start <= e.ts < end and all(property_text(e.properties.get(k)) == v for k, v in meter.filters.items())
    ]
    key = meter.valueKey
    if meter.aggregation == "count":
        return UsageRow(None, None, Decimal(len(picked)), len(picked))
    if key is None:
        values = [(e, e.value) for e in picked]
    elif meter.aggregation == "unique_count":
        values = [(e, property_text(e.properties[key])) for e in picked if key in e.properties]
    else:
        values = [(e, Decimal(str(e.properties[key]))) for e in picked if numeric(e.properties.get(key))]
    if not values:
        return UsageRow(None, None, None if meter.aggregation in ("max", "last") else Decimal(0), 0)
    figure = {
        "sum": lambda: sum((v for _, v in values), Decimal(0)),
        "max": lambda: max(v for _, v in values),
        "last": lambda: max(values, key=lambda ev: (ev[0].ts, ev[0].identifier))[1],
        "unique_count": lambda: Decimal(len({v for _, v in values})),
    }[meter.aggregation]()
    return UsageRow(None, None, figure, len(values))


def numeric(value: Any) -> bool:
    """What the query reads as a number (these events were stored before their meter was
    known, so the consumer did not judge them)."""
    return isinstance(value, int) or (isinstance(value, str) and value != "n/a")


def store_events(store: Any, org: str, evs: list[Event]) -> None:
    msgs = [
        message(
            event_payload(
                org, e.identifier, name=NAME, customer=e.customer, value=e.value, ts=e.ts, properties=e.properties
            )
        )
        for e in evs
    ]
    result = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC]).process(msgs)
    assert (result.usage_inserted, result.dead_letters) == (len(evs), 0), result.dead_letter_reasons


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(evs=events(), meter=meters, a=edges, b=edges)
def test_summary_and_usage_agree_with_each_other_and_with_the_events(store, evs, meter, a, b):  # type: ignore[no-untyped-def]
    start, end = min(a, b), max(a, b)
    if start == end:
        end = start + timedelta(microseconds=1)
    org = f"org_agree_{uuid.uuid4().hex[:10]}"
    store_events(store, org, evs)

    routed = usage_for_meter(store, org, meter, start=start, end=end)
    totals = meter_totals(store, org, [meter], start=start, end=end)
    assert totals == {NAME: routed[0]}
    assert routed == [expected(meter, evs, start, end)]

    # the summary's own figures of the event name: every event, its `value` field
    inside = [e for e in evs if start <= e.ts < end]
    rows = summary(store, org, start, end).meters
    assert [(m.event_name, m.event_count, m.value_sum, m.customers) for m in rows] == (
        [(NAME, len(inside), sum((e.value for e in inside), Decimal(0)), len({e.customer for e in inside}))]
        if inside
        else []
    )
