"""The analytics consumer on a real Kafka (`billing stack up`), topics with a random prefix."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from analytics.consumer import ConsumerConfig, ConsumerStats, billing_events_topic, run_analytics_consumer, usage_topic
from analytics.queries import usage
from tests.analytics.conftest import TEST_TOPICS
from tests.analytics.helpers import event_payload

NOW = datetime.now(UTC)
START, END = NOW - timedelta(days=40), NOW + timedelta(days=1)


async def produce(settings, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for topic, key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def records_in(settings) -> int:
    """How many records the two test topics hold now (every partition, from offset 0)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await reader.start()
    try:
        partitions = [
            TopicPartition(f"{settings.kafka_topic_prefix}{name}", p)
            for name, count in TEST_TOPICS.items()
            for p in range(count)
        ]
        return sum((await reader.end_offsets(partitions)).values())
    finally:
        await reader.stop()


def usage_total(store, org, agg="sum"):
    return usage(store, org, "api_call", agg, start=START, end=END)[0]


def start_consumer(settings, store, group: str, stats: ConsumerStats, **cfg):
    stop = asyncio.Event()
    ready = asyncio.Event()
    config = ConsumerConfig(group_id=group, **cfg)
    task = asyncio.create_task(
        run_analytics_consumer(settings, stop, store=store, config=config, stats=stats, ready=ready)
    )
    return task, stop, ready


async def test_consumer_stores_usage_interactions_and_dead_letters(kafka_settings, store):
    org = f"org_k_{uuid.uuid4().hex[:8]}"
    ut, et = usage_topic(kafka_settings), billing_events_topic(kafka_settings)
    msgs = []
    for i in range(300):
        body = event_payload(org, f"k-{i}", customer=f"cus_{i % 7}", value=f"{i}.01", ts=NOW - timedelta(minutes=i))
        msgs.append((ut, org.encode(), json.dumps(body).encode()))
    msgs.append((ut, org.encode(), json.dumps(event_payload(org, "k-0", value=500)).encode()))  # duplicate id
    msgs.append((ut, org.encode(), b"{broken"))
    msgs.append((ut, org.encode(), json.dumps(event_payload(org, "k-x", value="ten")).encode()))
    msgs.append(
        (
            et,
            org.encode(),
            json.dumps(
                {
                    "eventId": "ev1",
                    "type": "customer.created",
                    "organizationId": org,
                    "occurredAt": NOW.isoformat(),
                    "data": {"id": "cus_1"},
                }
            ).encode(),
        )
    )
    await produce(kafka_settings, msgs)

    stats = ConsumerStats()
    task, stop, ready = start_consumer(kafka_settings, store, f"g-{uuid.uuid4().hex[:6]}", stats)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await wait_for(lambda: stats.messages >= len(msgs), what=f"{len(msgs)} messages (have {stats.messages})")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    # the topics are shared by this module's tests: count this organization's rows
    assert stats.usage_inserted >= 300 and stats.usage_duplicates >= 1 and stats.commits >= 1
    interactions = store.query(
        "SELECT uniqExact(event_id) FROM interactions WHERE organization_id = {o:String}", {"o": org}
    )
    assert interactions == [(1,)]
    want = sum((Decimal(f"{i}.01") for i in range(300)), Decimal(0))
    assert usage_total(store, org).value == want
    assert usage_total(store, org, "count").value == 300
    reasons = store.query(
        "SELECT kind, reason FROM usage_dead_letters FINAL WHERE organization_id = {o:String} ORDER BY kafka_offset",
        {"o": org},
    )
    assert [k for k, _ in reasons] == ["malformed_json", "invalid"]
    assert "value: value must be a number" in reasons[1][1]


async def test_restart_mid_stream_loses_nothing_and_counts_nothing_twice(kafka_settings, store):
    org = f"org_r_{uuid.uuid4().hex[:8]}"
    ut = usage_topic(kafka_settings)
    n = 20_000
    bodies = [  # no key: spread over the partitions (a key would put the org in one)
        (
            ut,
            None,
            json.dumps(
                event_payload(
                    org, f"r-{i}", customer=f"cus_{i % 50}", value=f"0.{i % 1000:03d}", ts=NOW - timedelta(seconds=i)
                )
            ).encode(),
        )
        for i in range(n)
    ]
    await produce(kafka_settings, bodies)
    want = sum((Decimal(f"0.{i % 1000:03d}") for i in range(n)), Decimal(0))
    group = f"g-{uuid.uuid4().hex[:6]}"

    first = ConsumerStats()
    task, stop, ready = start_consumer(kafka_settings, store, group, first, max_batch=1_000, linger_ms=50)
    await asyncio.wait_for(ready.wait(), 30)
    await wait_for(lambda: first.batches >= 3, what="three batches")
    task.cancel()  # abrupt: no final commit, maybe a batch half way through
    with pytest.raises(asyncio.CancelledError):
        await task
    assert first.messages < n, "the consumer finished before it was stopped: make the stream longer"

    second = ConsumerStats()
    task, stop, ready = start_consumer(kafka_settings, store, group, second, max_batch=1_000, linger_ms=50)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await wait_for(
            lambda: usage_total(store, org, "count").event_count >= n, timeout=120, what=f"{n} events stored"
        )
        await wait_for(lambda: second.messages + first.messages >= n, what="all messages seen")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    total = usage_total(store, org)
    assert (total.value, total.event_count) == (want, n)
    by_customer = usage(store, org, "api_call", "count", start=START, end=END, group_by="customer")
    assert sum(r.event_count for r in by_customer) == n and len(by_customer) == 50
    assert (
        store.query("SELECT count() FROM usage_events FINAL WHERE organization_id = {o:String}", {"o": org})[0][0] == n
    )
    assert first.usage_inserted + second.usage_inserted <= n


async def test_full_redelivery_to_a_new_group_changes_nothing(kafka_settings, store):
    org = f"org_d_{uuid.uuid4().hex[:8]}"
    ut = usage_topic(kafka_settings)
    msgs = [(ut, org.encode(), json.dumps(event_payload(org, f"d-{i}", value=3)).encode()) for i in range(200)]
    await produce(kafka_settings, msgs)
    in_topics = await records_in(kafka_settings)
    for _ in range(2):  # the second group re-reads the whole topic: every event is a redelivery
        stats = ConsumerStats()
        task, stop, ready = start_consumer(kafka_settings, store, f"g-{uuid.uuid4().hex[:6]}", stats)
        try:
            await asyncio.wait_for(ready.wait(), 30)
            # read to the end of both topics, so this organization's 200 events went through it
            await wait_for(
                lambda: stats.messages >= in_topics and usage_total(store, org, "count").event_count >= 200,
                timeout=60,
                what="read to the end",
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    assert stats.usage_duplicates >= 200  # the second group's pass: this organization's events came again
    assert usage_total(store, org).value == 600
    assert usage_total(store, org, "count").value == 200


def _caught_up(stats: ConsumerStats) -> bool:
    # topics are shared by the module's tests; just wait until the consumer is idle a moment
    before = stats.messages
    time.sleep(0.5)
    return stats.messages == before


async def test_replay_since_is_idempotent(kafka_settings, store):
    from analytics.replay import areplay

    org = f"org_p_{uuid.uuid4().hex[:8]}"
    ut = usage_topic(kafka_settings)
    since = datetime.now(UTC) - timedelta(seconds=1)
    msgs = [(ut, org.encode(), json.dumps(event_payload(org, f"p-{i}", value="0.25")).encode()) for i in range(500)]
    msgs.append((ut, org.encode(), b"not json"))
    await produce(kafka_settings, msgs)
    seen: list[tuple[int, int]] = []
    first = await areplay(kafka_settings, since, store=store, on_progress=lambda d, t: seen.append((d, t)))
    assert first.usage_inserted == 500 and first.dead_letters == 1
    assert seen[-1][0] == seen[-1][1] == first.total
    again = await areplay(kafka_settings, since, store=store)
    assert again.usage_inserted == 0 and again.usage_duplicates == 500
    assert usage_total(store, org).value == 125
    assert (
        store.query("SELECT count() FROM usage_dead_letters FINAL WHERE organization_id = {o:String}", {"o": org})[0][0]
        == 1
    )


@pytest.mark.unit
def test_parse_since():
    from analytics.replay import parse_since

    now = datetime(2025, 3, 1, tzinfo=UTC)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("2025-01-31", now) == datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_since("2025-01-31T10:00:00+01:00", now) == datetime(2025, 1, 31, 9, tzinfo=UTC)
    assert parse_since("1738317600", now) == datetime(2025, 1, 31, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_since("yesterday", now)


async def test_crash_between_insert_and_commit_is_not_counted_twice(kafka_settings, store):
    """The process dies after ClickHouse took a batch and before Kafka got the offsets:
    the restarted consumer re-reads that batch and must recognise every event."""
    from analytics.consumer import AnalyticsConsumer

    org = f"org_c_{uuid.uuid4().hex[:8]}"
    ut = usage_topic(kafka_settings)
    n = 3_000
    await produce(
        kafka_settings,
        [
            (ut, None, json.dumps(event_payload(org, f"c-{i}", value="1.5", ts=NOW - timedelta(seconds=i))).encode())
            for i in range(n)
        ],
    )
    group = f"g-{uuid.uuid4().hex[:6]}"
    stored_uncommitted = asyncio.Event()

    class CrashBeforeCommit(AnalyticsConsumer):
        async def _commit(self, offsets):
            if self.stats.usage_inserted == 0:  # older test records on the shared topic
                return await super()._commit(offsets)
            self.crash_commits = self.stats.commits
            stored_uncommitted.set()
            await asyncio.Event().wait()  # hangs here until cancelled: the "crash"

    first = CrashBeforeCommit(
        kafka_settings, store=store, config=ConsumerConfig(group_id=group, max_batch=500, linger_ms=20)
    )
    task = asyncio.create_task(first.run(asyncio.Event()))
    await asyncio.wait_for(stored_uncommitted.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert first.stats.usage_inserted > 0

    second = ConsumerStats()
    task, stop, ready = start_consumer(kafka_settings, store, group, second, max_batch=500, linger_ms=20)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await wait_for(
            lambda: usage_total(store, org, "count").event_count >= n and _caught_up(second),
            timeout=60,
            what=f"{n} events stored",
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert second.usage_duplicates >= first.stats.usage_inserted  # the re-read batch was recognised
    total = usage_total(store, org)
    assert (total.value, total.event_count) == (Decimal("1.5") * n, n)


async def test_stop_is_honoured_before_the_topics_exist(kafka_settings, store):
    import dataclasses

    settings = dataclasses.replace(kafka_settings, kafka_topic_prefix=f"missing-{uuid.uuid4().hex[:8]}.")
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_analytics_consumer(settings, stop, store=store, config=ConsumerConfig(group_id="g-missing"))
    )
    await asyncio.sleep(1)
    assert not task.done()
    stop.set()
    stats = await asyncio.wait_for(task, 10)
    assert stats.messages == 0
