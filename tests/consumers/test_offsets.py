"""Offsets are committed after the batch is applied, in the background and in order: the
group's committed position reaches the end of the topic once every command is applied
(real Kafka, real Postgres), a failed commit is logged, never raised, never reordered, and
a batch whose handling fails is delivered again, never skipped."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from sqlalchemy import func, select

import consumers.app
from billing.models import ProcessedCommand
from consumers.app import OffsetCommitter, consumer_group, run_command_consumer
from consumers.pipeline import RawCommand
from contracts.customers import CustomerCreate
from contracts.envelopes import Actor, CommandEnvelope, utcnow
from contracts.settings import get_settings
from producers.publisher import create_broker, publish_command
from producers.topics import BILLING_COMMANDS, ensure_topics, topic
from tests.api.conftest import new_tenant

COMMANDS = 300


async def _applied(session_factory: Any, organization_id: str) -> int:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        return await session.scalar(
            select(func.count())
            .select_from(ProcessedCommand)
            .where(ProcessedCommand.organization_id == organization_id)
        )


async def _positions(partition_count: int, committed: bool) -> dict[int, int]:
    """The group's committed offset, or the end offset, of every command partition."""
    settings = get_settings()
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=consumer_group(settings), enable_auto_commit=False
    )
    await reader.start()
    try:
        partitions = [TopicPartition(topic(BILLING_COMMANDS), p) for p in range(partition_count)]
        if committed:
            return {tp.partition: (await reader.committed(tp)) or 0 for tp in partitions}
        ends = await reader.end_offsets(partitions)
        return {tp.partition: ends[tp] for tp in partitions}
    finally:
        await reader.stop()


@asynccontextmanager
async def consumer_and_publisher() -> AsyncIterator[KafkaBroker]:
    """The command consumer running in this loop, and a publisher for the test's commands."""
    broker = create_broker()
    await broker.start()
    stop, ready = asyncio.Event(), asyncio.Event()
    consumer = asyncio.create_task(run_command_consumer(stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=60)
        yield broker
    finally:
        stop.set()
        await asyncio.wait_for(consumer, timeout=30)
        await broker.stop()


def create_customer(organization_id: str, name: str) -> CommandEnvelope:
    return CommandEnvelope(
        commandId=f"cmd_{uuid.uuid4().hex}",
        type=CustomerCreate.command_type,
        organizationId=organization_id,
        actor=Actor(type="system", id="offsets-test"),
        issuedAt=utcnow(),
        payload={"name": name},
    )


async def test_the_group_commits_every_applied_batch(session_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", get_settings().kafka_topic_prefix + "offsets.")
    partition_count = (await ensure_topics(timeout=20))[topic(BILLING_COMMANDS)]
    tenants = [await new_tenant(session_factory, f"Offsets {n}") for n in range(4)]  # keyed apart: several partitions
    async with consumer_and_publisher() as broker:
        await asyncio.gather(
            *(
                publish_command(broker, create_customer(tenants[n % 4].organization_id, f"Customer {n}"))
                for n in range(COMMANDS)
            )
        )
        async with asyncio.timeout(60):
            while sum([await _applied(session_factory, t.organization_id) for t in tenants]) < COMMANDS:
                await asyncio.sleep(0.1)
        ends = await _positions(partition_count, committed=False)
        # more than ours when an API process of this test run sends its key-use report (one
        # command a minute, to the topics of the prefix in force) meanwhile: the group applies
        # and commits that one too
        assert sum(ends.values()) >= COMMANDS
        async with asyncio.timeout(15):  # the commits go out in the background, right behind the batches
            while (committed := await _positions(partition_count, committed=True)) != ends:
                await asyncio.sleep(0.1)
        assert committed == ends


class _RecordingConsumer:
    """Stands in for aiokafka's consumer: commits take their time, one of them fails."""

    def __init__(self, failing: int) -> None:
        self.calls: list[dict[TopicPartition, int]] = []
        self.failing = failing

    async def commit(self, positions: dict[TopicPartition, int]) -> None:
        self.calls.append(positions)
        await asyncio.sleep(0.02 if len(self.calls) % 2 else 0)  # an earlier commit slower than a later one
        if len(self.calls) == self.failing:
            raise RuntimeError("the group rebalanced")


class _Subscriber:
    def __init__(self, consumer: _RecordingConsumer) -> None:
        self.consumer = consumer


async def test_commits_go_out_in_order_with_the_next_offset_of_each_partition(caplog) -> None:  # type: ignore[no-untyped-def]
    consumer = _RecordingConsumer(failing=2)
    committer = OffsetCommitter(_Subscriber(consumer))
    batches = [
        [RawCommand(b"", "t", 0, 10), RawCommand(b"", "t", 1, 4), RawCommand(b"", "t", 0, 11)],
        [RawCommand(b"", "t", 0, 12)],
        [RawCommand(b"", "t", 1, 5), RawCommand(b"", "t", 2, 0)],
    ]
    with caplog.at_level(logging.WARNING, logger="consumers.app"):
        for batch in batches:
            committer.commit_after(batch)
        await committer.drain()
    assert consumer.calls == [
        {TopicPartition("t", 0): 12, TopicPartition("t", 1): 5},
        {TopicPartition("t", 0): 13},
        {TopicPartition("t", 1): 6, TopicPartition("t", 2): 1},
    ]
    assert "the group rebalanced" in caplog.text and "answered as duplicates" in caplog.text


async def test_a_batch_whose_handling_fails_is_delivered_again(session_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", get_settings().kafka_topic_prefix + "nack.")
    await ensure_topics(timeout=20)
    tenant = await new_tenant(session_factory, "Failing batch")
    applying = consumers.app.apply_with_retries
    failures: list[str] = []

    async def fails_once(sessions, records):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(records[0].value.decode())
            raise RuntimeError("a bug met in this batch")
        return await applying(sessions, records)

    monkeypatch.setattr(consumers.app, "apply_with_retries", fails_once)
    async with consumer_and_publisher() as broker:
        command = create_customer(tenant.organization_id, "Again")
        await publish_command(broker, command)
        async with asyncio.timeout(30):
            while await _applied(session_factory, tenant.organization_id) < 1:
                await asyncio.sleep(0.05)
    assert len(failures) == 1 and command.commandId in failures[0]
