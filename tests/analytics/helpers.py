"""Builders for usage messages and events used across the analytics tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from analytics.ingest import Message

USAGE_TOPIC = "usage.events"
EVENTS_TOPIC = "billing.events"

_offsets: dict[tuple[str, int], int] = {}


def event_payload(
    org: str,
    identifier: str,
    *,
    name: str = "api_call",
    customer: str = "cus_1",
    value: Any = 1,
    ts: datetime | int | str | None = None,
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if ts is None:
        ts = datetime.now(UTC)
    if isinstance(ts, datetime):
        ts = ts.isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {
        "eventName": name,
        "customerId": customer,
        "value": str(value) if isinstance(value, Decimal) else value,
        "timestamp": ts,
        "identifier": identifier,
        "organizationId": org,
    }
    if properties is not None:
        body["properties"] = properties
    return body


def message(
    value: bytes | dict[str, Any] | None,
    *,
    topic: str = USAGE_TOPIC,
    key: str | None = None,
    partition: int = 0,
    offset: int | None = None,
    timestamp: datetime | None = None,
) -> Message:
    if offset is None:
        offset = _offsets.get((topic, partition), 0)
        _offsets[(topic, partition)] = offset + 1
    raw = json.dumps(value).encode() if isinstance(value, dict) else value
    if key is None and isinstance(value, dict) and isinstance(value.get("organizationId"), str):
        key = value["organizationId"]
    ts_ms = int((timestamp or datetime.now(UTC)).timestamp() * 1000)
    return Message(topic, partition, offset, key.encode() if key else None, raw, ts_ms)
