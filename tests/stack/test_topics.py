"""producers/topics.py: the topic table, the prefix, and creating topics on the real broker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import stack
from contracts.settings import get_settings
from producers import topics
from producers.topics import TOPICS, ensure_topics, topic, topic_table


@pytest.mark.unit
def test_the_table() -> None:
    assert [(t.name, t.partitions) for t in TOPICS] == [
        ("billing.commands", 6),
        ("billing.events", 6),
        ("billing.commands.dlq", 1),
        ("usage.events", 6),
        ("usage.events.dlq", 1),
    ]
    with pytest.raises(AttributeError):
        TOPICS[0].partitions = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        topics.PARTITIONS["x"] = 1  # type: ignore[index]


@pytest.mark.unit
def test_topic_applies_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "t1.")
    assert topic("billing.commands") == "t1.billing.commands"
    assert topic("usage.events", prefix="") == "usage.events"
    assert topic_table("p.")["p.usage.events.dlq"] == 1
    monkeypatch.delenv("KAFKA_TOPIC_PREFIX")
    assert topic(topics.BILLING_EVENTS) == "billing.events"


@pytest.mark.unit
def test_unknown_topic_is_refused() -> None:
    with pytest.raises(KeyError, match=r"unknown topic 'billing\.command'"):
        topic("billing.command")


async def test_ensure_topics_creates_prefixed_topics_grows_short_ones_and_round_trips() -> None:
    message = stack.check_reachable("kafka")
    if message:
        pytest.fail(message, pytrace=False)
    bootstrap = get_settings().kafka_bootstrap_servers
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    wanted = topic_table(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        # One topic exists already with too few partitions: ensure_topics grows it.
        await admin.create_topics([NewTopic(prefix + "billing.events", num_partitions=2, replication_factor=1)])

        assert await ensure_topics(bootstrap, prefix=prefix) == wanted
        assert await ensure_topics(bootstrap, prefix=prefix) == wanted  # idempotent

        described = await admin.describe_topics(list(wanted))
        assert {t["topic"]: len(t["partitions"]) for t in described} == wanted

        name = topic("usage.events", prefix=prefix)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            meta = await producer.send_and_wait(name, b"hello", key=b"org_1", partition=3)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(name, 3)
            consumer.assign([tp])
            consumer.seek(tp, meta.offset)
            record = await consumer.getone()
        finally:
            await consumer.stop()
        assert (record.key, record.value, record.partition) == (b"org_1", b"hello", 3)
    finally:
        await admin.delete_topics(list(wanted))
        await admin.close()
