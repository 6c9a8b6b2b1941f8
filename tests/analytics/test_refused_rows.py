"""What ClickHouse refuses for one row never stops a batch: the refused row becomes a
dead letter with ClickHouse's reason and every other row is stored; a transient error
(connection, server) stores nothing as refused and the batch is retried."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from analytics.consumer import ConsumerStats, usage_topic
from analytics.ingest import BatchProcessor, insert_isolating, is_transient
from analytics.queries import usage
from tests.analytics.helpers import EVENTS_TOPIC, USAGE_TOPIC, event_payload, message
from tests.analytics.test_consumer_kafka import produce, start_consumer, wait_for

NOW = datetime.now(UTC)
START, END = NOW - timedelta(days=40), NOW + timedelta(days=1)


@pytest.fixture
def processor(store):
    return BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC])


def dead_letters(store, org):
    return store.query(
        "SELECT kind, reason, kafka_offset FROM usage_dead_letters FINAL WHERE organization_id = {o:String} ORDER BY kafka_offset",
        {"o": org},
    )


def total(store, org):
    return usage(store, org, "api_call", "sum", start=START, end=END)[0]


def test_a_row_clickhouse_refuses_is_dead_lettered_and_the_others_are_stored(store, org, processor):
    msgs = [message(event_payload(org, f"r-{i}", value=i, ts=NOW - timedelta(minutes=i))) for i in range(1, 8)]
    batch = processor.parse(msgs)
    # a row the contract never produces but ClickHouse reads: the value is not a number
    bad = batch.prepared[3]
    batch.prepared[3] = dataclasses.replace(bad, line=bad.line.replace(b",4,", b',"four",', 1))
    result = processor.store_parsed(batch)
    assert (result.usage_inserted, result.dead_letters) == (6, 1)
    assert total(store, org).value == Decimal(1 + 2 + 3 + 5 + 6 + 7)
    [(kind, reason, offset)] = dead_letters(store, org)
    assert (kind, offset) == ("refused", msgs[3].offset)
    assert reason.startswith("ClickHouse refused the row: ") and "Cannot parse" in reason, reason
    # the consumer may redeliver the batch: nothing changes
    again = processor.store_parsed(batch)
    assert again.usage_inserted == 0 and total(store, org).value == Decimal(24) and len(dead_letters(store, org)) == 1


def test_a_refused_interaction_is_dead_lettered_too(store, org, processor):
    events = [
        message(
            {"eventId": f"e{i}", "type": "customer.created", "organizationId": org, "data": {"id": f"cus_{i}"}},
            topic=EVENTS_TOPIC,
            key=org,
        )
        for i in range(3)
    ]
    batch = processor.parse(events)
    batch.interactions[1][1] = "not a time"  # occurred_at: the driver refuses to write it
    result = processor.store_parsed(batch)
    assert (result.interactions, result.dead_letters) == (2, 1)
    stored = store.query(
        "SELECT event_id FROM interactions WHERE organization_id = {o:String} ORDER BY event_id", {"o": org}
    )
    assert stored == [("e0",), ("e2",)]
    assert [(k, o) for k, _, o in dead_letters(store, org)] == [("refused", events[1].offset)]


def failing_once(insert, error):
    """`insert`, except that its first call raises `error`."""
    failures = iter([error])

    def flaky(*args, **kwargs):
        if (failure := next(failures, None)) is not None:
            raise failure
        return insert(*args, **kwargs)

    return flaky


def test_a_transient_error_refuses_nothing(store, org, processor, monkeypatch):
    msgs = [message(event_payload(org, f"t-{i}", value=1)) for i in range(4)]
    monkeypatch.setattr(store, "insert_raw", failing_once(store.insert_raw, OperationalError("connection refused")))
    with pytest.raises(OperationalError):
        processor.process(msgs)
    assert dead_letters(store, org) == []
    assert processor.process(msgs).usage_inserted == 4  # the retry stores the batch


@pytest.mark.unit
def test_isolation_finds_each_refused_row_in_few_inserts():
    calls = []

    class Refused(Exception):
        code = 27

    def insert(rows):
        calls.append(len(rows))
        if any(r % 250 == 7 for r in rows):
            raise Refused(f"row {rows}")

    refused = insert_isolating(insert, list(range(1000)))
    assert [r for r, _ in refused] == [7, 257, 507, 757]
    assert len(calls) < 100  # halving, not 1,000 single inserts
    assert is_transient(OperationalError("x")) and not is_transient(Refused())

    class Full(Exception):
        code = 243  # NOT_ENOUGH_SPACE: nothing to do with the rows

    def full(rows):
        raise Full("disk full")

    with pytest.raises(Full):
        insert_isolating(full, [1, 2, 3])


async def test_the_consumer_retries_a_store_that_failed_and_goes_on(kafka_settings, store, monkeypatch):
    org = f"org_f_{uuid.uuid4().hex[:8]}"
    ut = usage_topic(kafka_settings)
    await produce(
        kafka_settings,
        [(ut, org.encode(), json.dumps(event_payload(org, f"f-{i}", value=2)).encode()) for i in range(5)],
    )
    monkeypatch.setattr(
        store, "insert_raw", failing_once(store.insert_raw, OperationalError("ClickHouse is restarting"))
    )
    stats = ConsumerStats()
    task, stop, ready = start_consumer(kafka_settings, store, f"g-{uuid.uuid4().hex[:6]}", stats, retry_initial_s=0.05)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await wait_for(lambda: total(store, org).value == Decimal(10), timeout=30, what="the retried batch")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert stats.store_failures >= 1 and not task.exception()
