"""An event its meter cannot measure (the meter's valueKey property missing or not a
number) is a dead letter with the reason, never a row that adds nothing: the consumer's
batch path on chDB, and the live consumer on the real Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.consumer import ConsumerStats, billing_events_topic, usage_topic
from analytics.ingest import BatchProcessor
from analytics.queries import usage_for_meter
from billing.meters.rules import numeric_value
from contracts.resources import Meter
from tests.analytics.helpers import EVENTS_TOPIC, USAGE_TOPIC, event_payload, message
from tests.analytics.test_consumer_kafka import produce, start_consumer, wait_for

NOW = datetime.now(UTC)
START, END = NOW - timedelta(days=40), NOW + timedelta(days=1)


def meter_created(
    org: str, event_name: str, aggregation: str = "sum", value_key: str | None = "tokens", **extra: Any
) -> dict[str, Any]:
    """A `meter.created` event as the command consumer publishes it (data: the meter resource)."""
    resource = {
        "id": f"mtr_{uuid.uuid4().hex[:12]}",
        "organizationId": org,
        "displayName": "Tokens",
        "eventName": event_name,
        "aggregation": aggregation,
        "valueKey": value_key,
        "filters": extra.get("filters", {}),
        "active": True,
        "createdAt": NOW.isoformat(),
        "updatedAt": NOW.isoformat(),
    }
    return {
        "eventId": f"evt_{uuid.uuid4().hex}",
        "type": "meter.created",
        "organizationId": org,
        "occurredAt": NOW.isoformat(),
        "data": resource,
    }


def dead_letters(store, org):  # type: ignore[no-untyped-def]
    return store.query(
        "SELECT kind, reason, kafka_offset FROM usage_dead_letters FINAL WHERE organization_id = {o:String} ORDER BY kafka_offset",
        {"o": org},
    )


def figure(store, org, created: dict[str, Any]):  # type: ignore[no-untyped-def]
    return usage_for_meter(store, org, Meter.model_validate(created["data"]), start=START, end=END)[0]


def test_events_the_meter_cannot_measure_are_dead_lettered_with_the_reason(store, org):  # type: ignore[no-untyped-def]
    created = meter_created(org, "llm_tokens")
    events = [
        ("ok-1", {"tokens": 5}),
        ("missing", {"region": "eu"}),
        ("text", {"tokens": "many"}),
        ("ok-2", {"tokens": "2.5"}),
        ("negative", {"tokens": -1}),
        ("spaced", {"tokens": " 3"}),  # ClickHouse would read it as nothing
    ]
    msgs = [message(created, topic=EVENTS_TOPIC, key=org)] + [
        message(event_payload(org, ident, name="llm_tokens", value=1, ts=NOW - timedelta(minutes=1), properties=props))
        for ident, props in events
    ]
    # an event of another name, and one the meter's filters would skip, are none of its business
    msgs.append(message(event_payload(org, "other", name="storage", value=1, ts=NOW - timedelta(minutes=1))))
    result = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC]).process(msgs)
    assert (result.usage_inserted, result.dead_letters) == (3, 4), result.dead_letter_reasons
    letters = dead_letters(store, org)
    assert [(kind, offset) for kind, _, offset in letters] == [("invalid", msgs[i].offset) for i in (2, 3, 5, 6)]
    reasons = [reason for _, reason, _ in letters]
    assert reasons[0].startswith("missing_value_key: ") and "properties.tokens is missing" in reasons[0]
    assert all(r.startswith("non_numeric_value: ") for r in reasons[1:]), reasons
    assert "'many'" in reasons[1] and created["data"]["id"] in reasons[1]
    assert figure(store, org, created) == figure(store, org, created).__class__(None, None, Decimal("7.5"), 2)


def test_a_meter_known_from_an_earlier_batch_or_only_from_the_table_judges_later_events(store, org):  # type: ignore[no-untyped-def]
    created = meter_created(org, "gpu_seconds", aggregation="unique_count", value_key="gpu")
    first = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC])
    assert first.process([message(created, topic=EVENTS_TOPIC, key=org)]).interactions == 1
    later = [
        message(event_payload(org, "a", name="gpu_seconds", value=1, properties={"gpu": "a100"})),
        message(event_payload(org, "b", name="gpu_seconds", value=1, properties={"gpu": True})),  # any value counts
        message(event_payload(org, "c", name="gpu_seconds", value=1)),
    ]
    result = first.process(later)
    assert (result.usage_inserted, result.dead_letters) == (2, 1)
    assert [r.split(":")[0] for _, r, _ in dead_letters(store, org)] == ["missing_value_key"]

    # a process that never saw the meter.created record (another consumer stored it) reads
    # the meter from ClickHouse's interactions
    from analytics import meters

    meters._books.clear()
    fresh = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC])
    again = fresh.process([message(event_payload(org, "d", name="gpu_seconds", value=1, properties={"region": "eu"}))])
    assert (again.usage_inserted, again.dead_letters) == (0, 1)
    assert figure(store, org, created).value == Decimal(2)


def test_events_before_their_meter_are_stored_and_the_meter_counts_what_it_can(store, org):  # type: ignore[no-untyped-def]
    processor = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC])
    early = [
        message(event_payload(org, f"early-{i}", name="frames", value=1, properties=props))
        for i, props in enumerate([{"n": 4}, {}])
    ]
    assert processor.process(early).usage_inserted == 2
    created = meter_created(org, "frames", value_key="n", filters={"codec": "av1"})
    after = [
        message(created, topic=EVENTS_TOPIC, key=org),
        message(event_payload(org, "late-1", name="frames", value=1, properties={"codec": "av1"})),
        message(
            event_payload(org, "late-2", name="frames", value=1, properties={"codec": "h264"})
        ),  # not counted: kept
    ]
    result = processor.process(after)
    assert (result.usage_inserted, result.dead_letters) == (1, 1)
    assert figure(store, org, created).event_count == 0  # the early events match no filter


async def test_the_live_consumer_dead_letters_what_the_meter_cannot_measure(kafka_settings, store):  # type: ignore[no-untyped-def]
    org = f"org_vk_{uuid.uuid4().hex[:8]}"
    created = meter_created(org, "api_bytes", aggregation="max", value_key="bytes")
    ut, et = usage_topic(kafka_settings), billing_events_topic(kafka_settings)
    await produce(kafka_settings, [(et, org.encode(), json.dumps(created).encode())])
    stats = ConsumerStats()
    task, stop, ready = start_consumer(kafka_settings, store, f"g-vk-{uuid.uuid4().hex[:6]}", stats)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await wait_for(lambda: stats.interactions >= 1, timeout=30, what="the meter.created event")
        bodies = [
            event_payload(org, f"v-{i}", name="api_bytes", value=1, properties=p)
            for i, p in enumerate([{"bytes": 10}, {"bytes": "ten"}, {}, {"bytes": 30}])
        ]
        await produce(kafka_settings, [(ut, org.encode(), json.dumps(b).encode()) for b in bodies])
        await wait_for(lambda: len(dead_letters(store, org)) == 2, timeout=30, what="two dead letters")
        await wait_for(lambda: figure(store, org, created).event_count == 2, timeout=30, what="two stored events")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert sorted(r.split(":")[0] for _, r, _ in dead_letters(store, org)) == ["missing_value_key", "non_numeric_value"]
    assert figure(store, org, created).value == Decimal(30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(alphabet="0123456789.+-eE _x", max_size=14), st.decimals(0, 10**6, places=12).map(str)))
def test_what_the_rule_reads_as_a_number_clickhouse_reads_as_the_same_number(store, text):  # type: ignore[no-untyped-def]
    """The queries read a valueKey with toDecimal128OrNull(text, 12): every text the rule
    accepts must give that very number there (none read as NULL, or cut to fewer places)."""
    number = numeric_value(text)
    if number is not None:
        assert store.query("SELECT toDecimal128OrNull({t:String}, 12)", {"t": text})[0][0] == number


def test_a_replay_of_an_event_stored_before_its_meter_is_a_duplicate_not_a_dead_letter(store, org):  # type: ignore[no-untyped-def]
    processor = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC])
    early = message(event_payload(org, "old", name="pages", value=1))
    assert processor.process([early]).usage_inserted == 1
    assert (
        processor.process(
            [message(meter_created(org, "pages", value_key="n"), topic=EVENTS_TOPIC, key=org)]
        ).interactions
        == 1
    )
    late = message(event_payload(org, "new", name="pages", value=1))
    replayed = processor.process([early, late])
    assert (replayed.usage_inserted, replayed.usage_duplicates, replayed.dead_letters) == (0, 1, 1)
    assert [o for _, _, o in dead_letters(store, org)] == [late.offset]
