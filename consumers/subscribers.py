"""What the consumers' Kafka subscribers share: waiting for the group to hand out
partitions, and reading `billing.events` in the consumers that follow it (notifications,
the payment worker, customer emails), where what is not an event of ours is skipped with a
warning, never retried, so one stray message cannot stop a consumer group."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.middlewares import AckPolicy
from pydantic import ValidationError

from contracts.envelopes import EventEnvelope
from contracts.settings import Settings
from producers.topics import BILLING_EVENTS, topic

log = logging.getLogger(__name__)


def events_subscriber(broker: KafkaBroker, settings: Settings, group: str, batch: int) -> BatchSubscriber:
    """A consumer group of its own on `billing.events` (under the deployment's prefix),
    from the earliest event it has not committed, in batches of up to `batch` events; a
    handler that raises has its batch delivered again."""
    return broker.subscriber(
        topic(BILLING_EVENTS),
        group_id=f"{settings.kafka_topic_prefix}{group}",
        batch=True,
        max_records=batch,
        batch_timeout_ms=5,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )


def events_of(message: KafkaMessage) -> list[EventEnvelope]:
    """The events of a batch, what is not one skipped (`event_or_none`)."""
    return [event for record in message.raw_message if (event := event_or_none(record)) is not None]


async def wait_for_assignment(subscriber: Any, timeout: float = 30.0) -> None:
    """Until the group has given the subscriber's consumer its partitions (what is
    published before that is not lost, only read later)."""
    async with asyncio.timeout(timeout):
        while not (subscriber.consumer and subscriber.consumer.assignment()):  # noqa: ASYNC110 (aiokafka signals no event on assignment)
            await asyncio.sleep(0.05)


def event_or_none(record: ConsumerRecord[bytes, bytes]) -> EventEnvelope | None:
    try:
        return EventEnvelope.model_validate_json(record.value or b"")
    except ValidationError as error:
        log.warning("skipped %s[%d]@%d, not an event: %s", record.topic, record.partition, record.offset, error)
        return None
