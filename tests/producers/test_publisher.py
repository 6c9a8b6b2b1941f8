"""The publisher heals after a fatal idempotence error, on the real broker: a gap in the
producer's sequence numbers (what a batch lost in a broker restart leaves) makes Kafka
answer OutOfOrderSequenceNumber, which stops aiokafka's sender for good; the Publisher
starts a new producer and the sends after that one go out."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber

from contracts.settings import get_settings
from producers.publisher import Publisher, create_broker
from producers.topics import BILLING_EVENTS, ensure_topics, topic


def _open_gap(publisher: Publisher, name: str) -> None:
    producer = publisher._aiokafka_producer()
    assert producer is not None
    # the next batch to partition 0 skips 5 sequence numbers
    producer._txn_manager.increment_sequence_number(TopicPartition(name, 0), 5)


async def test_a_sequence_gap_replaces_the_producer_and_publishing_resumes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", get_settings().kafka_topic_prefix + "publisher.")
    await ensure_topics(timeout=20)
    name = topic(BILLING_EVENTS)
    broker = create_broker()
    await broker.start()
    publisher = Publisher(broker)
    try:
        await publisher.publish(b"first", topic=name, partition=0)
        old = publisher._aiokafka_producer()
        _open_gap(publisher, name)
        # the broker's answer to the gap; the caller sees it once (503, or a retry later)
        with pytest.raises(OutOfOrderSequenceNumber):
            await publisher.publish(b"after the gap", topic=name, partition=0)
        # every send after it to the same partition goes out, through a new producer (a new id, sequences from 0)
        async with asyncio.timeout(20):
            for n in range(5):
                ack = await publisher.publish(f"next {n}".encode(), topic=name, partition=0, no_confirm=True)
                await ack
        assert publisher.replacements == 1
        assert publisher._aiokafka_producer() is not old
    finally:
        await broker.stop()


async def test_without_the_publisher_the_producer_stays_broken(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Why the Publisher exists: the bare broker keeps failing after the same gap."""
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", get_settings().kafka_topic_prefix + "publisher.")
    await ensure_topics(timeout=20)
    name = topic(BILLING_EVENTS)
    broker = create_broker()
    await broker.start()
    try:
        await broker.publish(b"first", topic=name, partition=0)
        _open_gap(Publisher(broker), name)
        failures = 0
        for n in range(3):
            try:
                await asyncio.wait_for(broker.publish(f"again {n}".encode(), topic=name, partition=0), 15)
            except (KafkaError, TimeoutError):
                failures += 1
        assert failures == 3
    finally:
        await broker.stop()
