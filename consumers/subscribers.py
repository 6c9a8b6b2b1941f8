"""What the consumers' Kafka subscribers share: waiting for the group to hand out
partitions, and reading `billing.events` in the consumers that follow it (notifications,
the payment worker, customer emails), where what is not an event of ours is skipped with a
warning, never retried, so one stray message cannot stop a consumer group."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from contracts.envelopes import EventEnvelope

log = logging.getLogger(__name__)


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
