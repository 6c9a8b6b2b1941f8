"""The command consumer: a FastStream subscriber on `billing.commands` in one consumer
group, applying batches through consumers/pipeline.py, with the outbox relay beside it.

A batch's offsets are committed after its Postgres commit (and after its dead letters
are on their topic), in the background, so the next batch is fetched without waiting
for that round trip; a crash before the commit lands replays batches already applied,
which the dedupe on `processed_commands` answers. A command that fails is answered as
failed, and one that cannot even be answered goes to the dead-letter topic with its reason
(consumers/pipeline.py): a bad command never holds its partition. Only a transient failure
(one that outlasts the retries, or the dead-letter topic out of reach) nacks the batch
(the consumer seeks back) so it is delivered again, never skipped."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.db.sessions import create_engine, create_session_factory
from billing.delivery.outbox import PostgresOutboxStore
from billing.secrets.redaction import install_log_redaction
from consumers import (
    catalog,
    credit_notes,
    customers,
    invoices,
    meters,
    organizations,
    payments,
    subscription_schedules,
    subscriptions,
    tax_rates,
    test_clocks,
    webhook_endpoints,
)
from consumers.pipeline import AppliedBatch, RawCommand, apply_batch, dead_letter_message, is_transient
from consumers.registry import merge_routes
from consumers.subscribers import wait_for_assignment
from contracts.settings import Settings, get_settings, require_safe_settings
from producers.publisher import Publisher, create_broker, start_broker
from producers.relay import OutboxRelay
from producers.topics import BILLING_COMMANDS, BILLING_COMMANDS_DLQ, topic

log = logging.getLogger(__name__)

CONSUMER_GROUP = "billing-command-consumers"


def consumer_group(settings: Settings) -> str:
    # prefixed like the topics, so a test run never joins the group of a running `make dev`
    return f"{settings.kafka_topic_prefix}{CONSUMER_GROUP}"


ROUTES = merge_routes(
    customers.router,
    organizations.router,
    catalog.router,
    payments.router,
    meters.router,
    subscriptions.router,
    subscription_schedules.router,
    invoices.router,
    credit_notes.router,
    tax_rates.router,
    webhook_endpoints.router,
    test_clocks.router,
)
RETRY_WINDOW_SECONDS = 120.0


async def apply_with_retries(sessions: async_sessionmaker[AsyncSession], records: list[RawCommand]) -> AppliedBatch:
    """Applies the batch, retrying transient failures (Postgres away, a serialization
    failure, a deadlock) with backoff for up to RETRY_WINDOW_SECONDS; a failure that
    outlasts it is raised (apply_batch itself raises nothing else)."""
    deadline = time.monotonic() + RETRY_WINDOW_SECONDS
    backoff = 0.05
    while True:
        try:
            return await apply_batch(sessions, ROUTES, records)
        except Exception as error:
            if not is_transient(error) or time.monotonic() > deadline:
                raise
            log.warning("transient failure applying %d commands (%s); retrying in %.2fs", len(records), error, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def build_command_consumer(
    sessions: async_sessionmaker[AsyncSession], settings: Settings | None = None
) -> CommandConsumer:
    settings = settings or get_settings()
    broker = create_broker(settings)
    # one publisher for the events and the dead letters: a fatal producer error heals once for both
    publisher = Publisher(broker)
    relay = OutboxRelay(PostgresOutboxStore(sessions), publisher)
    relaying: set[asyncio.Task[None]] = set()

    subscriber = broker.subscriber(
        topic(BILLING_COMMANDS),
        group_id=consumer_group(settings),
        batch=True,
        max_records=500,
        batch_timeout_ms=5,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
    )
    offsets = OffsetCommitter(subscriber)

    @subscriber
    async def on_commands(message: KafkaMessage) -> None:
        records = [RawCommand(r.value, r.topic, r.partition, r.offset) for r in message.raw_message]
        try:
            result = await apply_with_retries(sessions, records)
            for letter in result.dead_letters:
                log.warning(
                    "dead letter at %s[%d]@%d: %s",
                    letter.record.topic,
                    letter.record.partition,
                    letter.record.offset,
                    letter.reason,
                )
                await publisher.publish(dead_letter_message(letter), topic=topic(BILLING_COMMANDS_DLQ))
        except Exception:
            await message.nack()  # seek back: the batch comes again, never skipped
            raise
        offsets.commit_after(records)
        # published right away, beside the next batch; the sweep covers a crash in between
        relaying.add(asyncio.create_task(relay.relay_committed(result.events)))
        relaying.difference_update({task for task in relaying if task.done()})

    return CommandConsumer(broker, relay, subscriber, relaying, offsets)


class OffsetCommitter:
    """Commits the offsets of applied batches in the background, one commit after the
    other (never an older offset after a newer one)."""

    def __init__(self, subscriber: Any) -> None:
        self._subscriber = subscriber
        self._last: asyncio.Task[None] | None = None

    def commit_after(self, records: list[RawCommand]) -> None:
        # explicit offsets: by the time this commit goes out, the consumer's position may
        # already be past a batch that is not applied yet
        positions: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            positions[partition] = max(positions.get(partition, 0), record.offset + 1)
        self._last = asyncio.create_task(self._commit(positions, self._last))

    async def _commit(self, positions: dict[TopicPartition, int], previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await previous
        try:
            await self._subscriber.consumer.commit(positions)
        except Exception as error:  # a rebalance, or the consumer stopping: nothing is lost
            log.warning(
                "committing offsets %s failed (%r): those commands come again and are answered as duplicates",
                positions,
                error,
            )

    async def drain(self) -> None:
        if self._last is not None:
            await self._last


@dataclass(frozen=True)
class CommandConsumer:
    broker: KafkaBroker
    relay: OutboxRelay
    subscriber: Any
    relaying: set[asyncio.Task[None]]
    offsets: OffsetCommitter

    async def wait_assigned(self, timeout: float = 30.0) -> None:
        """Until the group has given this consumer its partitions (commands published
        before that are not lost, only applied later)."""
        await wait_for_assignment(self.subscriber, timeout)


async def run_command_consumer(
    stop: asyncio.Event, settings: Settings | None = None, ready: asyncio.Event | None = None
) -> None:
    """Runs until `stop` is set: `billing consume`, and one part of `billing dev`.
    `ready` is set once the consumer holds its partitions."""
    settings = settings or get_settings()
    require_safe_settings(settings)
    install_log_redaction()
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    consumer = build_command_consumer(sessions, settings)
    if not await start_broker(consumer.broker, stop, "the command consumer"):
        await engine.dispose()
        return
    relay_task = asyncio.create_task(consumer.relay.run(stop))
    try:
        await consumer.wait_assigned()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        stop.set()
        await consumer.offsets.drain()  # a batch still in hand is delivered again after a restart
        await consumer.subscriber.stop()  # no new batches: the ones in hand finish relaying
        await asyncio.gather(*consumer.relaying)
        await relay_task
        await consumer.broker.stop()
        await engine.dispose()
