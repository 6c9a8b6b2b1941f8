"""Reading `billing.events` in the consumers that follow it (notifications, the payment
worker): what is not an event of ours is skipped with a warning, never retried, so one
stray message cannot stop a consumer group."""

from __future__ import annotations

import logging

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from contracts.envelopes import EventEnvelope

log = logging.getLogger(__name__)


def event_or_none(record: ConsumerRecord[bytes, bytes]) -> EventEnvelope | None:
    try:
        return EventEnvelope.model_validate_json(record.value or b"")
    except ValidationError as error:
        log.warning("skipped %s[%d]@%d, not an event: %s", record.topic, record.partition, record.offset, error)
        return None
