"""From Kafka messages to ClickHouse rows: validation, dead letters, dedupe, inserts.

Shared by the analytics consumer (`analytics.consumer`), the replay (`analytics.replay`) and
the bench. Everything here is synchronous: callers run `BatchProcessor.process` in a worker
thread (the ClickHouse engine releases the GIL while it works).

Exactness of usage under redelivery (the design choice)
-------------------------------------------------------
usage_events is a ReplacingMergeTree keyed by (organization_id, identifier), and the
hourly/daily aggregates are materialized views on it. A view sees every inserted block, so a
duplicate that reached usage_events would be counted twice in the aggregates even after the
engine collapsed it. So duplicates are stopped *before* the insert, by `UsageWriter`:

1. within a batch: the first event of each (organization_id, identifier) wins;
2. across batches, redeliveries and restarts: a `KeyIndex` holds a 64-bit hash of every key
   stored in the dedupe window (loaded from usage_events.key_hash at start, refreshed on a
   Kafka rebalance, updated after each insert). A hash miss proves the key is new; a hit
   (a real duplicate, or a 1-in-2**64-per-pair collision) is confirmed by an exact
   primary-key lookup of (organization_id, identifier) in ClickHouse, so a collision never
   drops an event. The lookup only ever sees the few candidate keys, not the batch.
3. the writer holds a lock over check + insert + index update, so two consumers in one
   process (or a cancelled task whose insert is still running in its thread) cannot race.
4. an insert that fails may have landed partly (ClickHouse does not make the raw part and
   the view parts atomic): before the batch is retried, the keys that did land are found by
   the exact lookup, added to the index, and the aggregates of their hours are rebuilt from
   usage_events FINAL (`rebuild_aggregates`).

The dedupe window is `DEDUPE_WINDOW` of ingestion time (35 days of accepted event age plus a
day): a resend of an identifier older than that would be too old to be accepted anyway
unless its timestamp changed. Usage queries read the rollups, the time-sorted copy and the
raw rows without FINAL: all three hold exactly what this writer inserted, so they agree with
each other; ReplacingMergeTree on usage_events (and the repair, from usage_events FINAL) is
the backstop. Counts of interactions and dead letters use uniqExact over their keys, exact
whatever the engine has merged.

Known limit: the index is per process. Two consumer processes writing the same
(organization_id, identifier) at the same moment (possible only if a publisher keys one
organization's events onto several partitions, or during a rebalance hand-over) could both
insert it; ReplacingMergeTree then keeps one raw row, but the rollups count both until
`rebuild_aggregates` runs for that period. Keying usage.events by organizationId (the API
and the documented publisher contract do) keeps each organization on one partition, hence
one consumer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
from pydantic import ValidationError

from analytics.meters import get_meter_book
from analytics.store import AnalyticsStore
from billing.meters.rules import property_text
from contracts.usage import (
    MAX_EVENT_AGE,
    UsageEvent,
    _to_datetime,
    fast_usage_event,
    fast_usage_event_json,
    format_decimal,
    parse_json,
)

log = logging.getLogger(__name__)

DEDUPE_WINDOW = MAX_EVENT_AGE + timedelta(days=1)
#: how far back a refresh re-reads keys before the last watermark (rows whose ingested_at
#: was stamped before the watermark but committed after it)
REFRESH_MARGIN = timedelta(minutes=2)

USAGE_COLUMNS = (
    "organization_id",
    "identifier",
    "event_name",
    "customer_id",
    "value",
    "timestamp",
    "properties",
    "source",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
INTERACTION_COLUMNS = (
    "organization_id",
    "occurred_at",
    "event_id",
    "type",
    "object_type",
    "object_id",
    "customer_id",
    "product_id",
    "subscription_id",
    "data",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
DEAD_LETTER_COLUMNS = (
    "organization_id",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_key",
    "message_timestamp",
    "payload",
    "kind",
    "reason",
)


def key_hash(organization_id: str, identifier: str) -> int:
    """Same as usage_events.key_hash: md5(org NUL identifier), first 8 bytes little-endian."""
    digest = hashlib.md5(organization_id.encode() + b"\0" + identifier.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "little")


# --- messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """A Kafka record, reduced to what ingestion needs (also built by tests and the bench)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None

    @property
    def timestamp(self) -> datetime | None:
        if self.timestamp_ms is None or self.timestamp_ms < 0:
            return None
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @classmethod
    def from_record(cls, record: Any) -> Message:
        return cls(record.topic, record.partition, record.offset, record.key, record.value, record.timestamp)


@dataclass(slots=True)
class RejectedMessage:
    message: Message
    kind: str
    reason: str
    organization_id: str = ""

    def row(self) -> list[Any]:
        m = self.message
        payload = m.value.decode("utf-8", "replace") if m.value is not None else ""
        key = m.key.decode("utf-8", "replace") if m.key is not None else None
        return [
            self.organization_id,
            m.topic,
            m.partition,
            m.offset,
            key,
            m.timestamp,
            payload,
            self.kind,
            self.reason[:2000],
        ]


def _errors_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "event"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_usage_message(message: Message, now: datetime | None = None) -> UsageEvent | RejectedMessage:
    """Validate one usage.events record. `now` (default: the record's timestamp, else the
    wall clock) anchors the timestamp window, so a redelivery is judged as the original."""
    key = message.key.decode("utf-8", "replace") if message.key else None
    if message.value is None:
        return RejectedMessage(message, "invalid", "empty message (tombstone)", key or "")
    anchor = now or message.timestamp or datetime.now(UTC)
    event = fast_usage_event_json(message.value, anchor)  # the clean, common case
    if event is not None and (key is None or event.organization_id == key):
        return event
    try:
        payload = parse_json(message.value)
    except ValueError as exc:
        return RejectedMessage(message, "malformed_json", f"malformed JSON: {exc}", key or "")
    if not isinstance(payload, dict):
        return RejectedMessage(message, "invalid", f"expected a JSON object, got {type(payload).__name__}", key or "")
    org = payload.get("organizationId")
    if org is None and key:
        payload["organizationId"] = key
    elif isinstance(org, str) and key and org != key:
        return RejectedMessage(
            message, "organization_mismatch", f"organizationId {org!r} does not match the message key {key!r}", key
        )
    organization = payload.get("organizationId")
    org_text = organization if isinstance(organization, str) else (key or "")
    event = fast_usage_event(payload, anchor)
    if event is not None:
        return event
    try:
        return UsageEvent.model_validate(payload, context={"now": anchor})
    except ValidationError as exc:
        return RejectedMessage(message, "invalid", _errors_text(exc), org_text[:255])
    except Exception as exc:  # a validator bug must not stop the consumer: keep the message
        log.exception("usage validation raised on %s[%d]@%d", message.topic, message.partition, message.offset)
        return RejectedMessage(message, "invalid", f"validation failed unexpectedly: {exc!r}", org_text[:255])


def _text(value: Any, limit: int = 255) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)[:limit]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_decimal(value) if value.is_finite() else str(value)
    return str(value)


@dataclass(slots=True)
class Interaction:
    row: list[Any]


_OBJECT_ID_FIELDS = {"customer": "customer_id", "product": "product_id", "subscription": "subscription_id"}


def parse_billing_event(message: Message) -> Interaction | RejectedMessage:
    """Map one billing.events record to an interaction row, tolerantly: only `type` and
    `organizationId` (or the message key) are required; unknown types are kept as they are;
    `eventId` falls back to `id`, `commandId`, then the Kafka coordinates; `occurredAt` falls
    back to the record timestamp."""
    key = message.key.decode("utf-8", "replace") if message.key else None
    if message.value is None:
        return RejectedMessage(message, "invalid", "empty message (tombstone)", key or "")
    try:
        obj = parse_json(message.value)
    except ValueError as exc:
        return RejectedMessage(message, "malformed_json", f"malformed JSON: {exc}", key or "")
    if not isinstance(obj, dict):
        return RejectedMessage(message, "invalid", f"expected a JSON object, got {type(obj).__name__}", key or "")
    org = obj.get("organizationId") or key
    etype = obj.get("type")
    if not isinstance(org, str) or not org:
        return RejectedMessage(message, "invalid", "organizationId: missing (and no message key)", "")
    if not isinstance(etype, str) or not etype:
        return RejectedMessage(message, "invalid", "type: missing", org[:255])
    event_id = obj.get("eventId") or obj.get("id") or obj.get("commandId")
    event_id = _text(event_id) or f"{message.topic}:{message.partition}:{message.offset}"
    occurred: datetime | None = None
    raw_time = obj.get("occurredAt")
    if raw_time is not None and not isinstance(raw_time, float):
        try:
            occurred = _to_datetime(raw_time)
        except ValueError:
            occurred = None
    occurred = occurred or message.timestamp or datetime.now(UTC)
    data = obj.get("data")
    if not isinstance(data, dict):
        payload = obj.get("payload")
        data = payload if isinstance(payload, dict) else {}
    object_type = etype.split(".", 1)[0] if "." in etype else ""
    ids = {
        "customer_id": _text(data.get("customerId") or data.get("customer")),
        "product_id": _text(data.get("productId") or data.get("product")),
        "subscription_id": _text(data.get("subscriptionId") or data.get("subscription")),
    }
    object_id = _text(data.get("id"))
    if object_type in _OBJECT_ID_FIELDS and object_id and not ids[_OBJECT_ID_FIELDS[object_type]]:
        ids[_OBJECT_ID_FIELDS[object_type]] = object_id
    row = [
        org[:255],
        occurred,
        event_id,
        etype[:255],
        object_type[:100],
        object_id,
        ids["customer_id"],
        ids["product_id"],
        ids["subscription_id"],
        json.dumps(data, default=_json_default, separators=(",", ":"))[:100_000],
        message.topic,
        message.partition,
        message.offset,
    ]
    return Interaction(row)


# --- dedupe index ----------------------------------------------------------------------------


class KeyIndex:
    """64-bit hashes of the (organization_id, identifier) keys stored in usage_events within
    the dedupe window, 8 bytes a key (10 million keys: 80 MB). A miss proves a key is new; a
    hit must be confirmed.

    Held as a few sorted numpy runs, merged like a binary counter (the newest run is merged
    into the one before while it is at least half its size): O(log n) runs to search, and
    each key is copied O(log n) times in all. One sorted array re-sorted every 500,000 new
    keys made each write slower as the window filled (at 5 million keys, adding cost more
    than the ClickHouse insert)."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []
        self.watermark: datetime | None = None
        self.loaded = False

    @property
    def run_sizes(self) -> list[int]:
        return [int(run.size) for run in self._runs]

    def load(self, store: AnalyticsStore, since: datetime | None = None) -> int:
        """Read key hashes ingested since `since` (default: now - DEDUPE_WINDOW) and merge
        them in. Returns how many were read."""
        server_now = store.query("SELECT now64(6)")[0][0]
        if since is None:
            since = server_now - DEDUPE_WINDOW
        arr = store.query_np(
            "SELECT key_hash FROM usage_events WHERE ingested_at >= {since:DateTime64(6, 'UTC')}",
            {"since": since},
        )
        hashes = np.asarray(arr, dtype=np.uint64).reshape(-1)
        self._push(np.unique(hashes))
        self.watermark = server_now
        self.loaded = True
        return int(hashes.size)

    def refresh(self, store: AnalyticsStore) -> int:
        """Pick up keys written by other processes since the last load (after a rebalance)."""
        if not self.loaded or self.watermark is None:
            return self.load(store)
        return self.load(store, since=self.watermark - REFRESH_MARGIN)

    def candidates(self, hashes: Sequence[int]) -> list[bool]:
        if not hashes:
            return []
        wanted = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
        order = np.argsort(wanted)
        wanted = wanted[order]  # sorted keys: each search starts where the last one ended
        found = np.zeros(wanted.size, dtype=bool)
        for run in self._runs:
            at = np.searchsorted(run, wanted)
            np.minimum(at, run.size - 1, out=at)
            found |= run[at] == wanted
        hits = np.empty_like(found)
        hits[order] = found
        return hits.tolist()

    def add(self, hashes: Iterable[int]) -> None:
        self._push(np.unique(np.fromiter(hashes, dtype=np.uint64)))

    def _push(self, run: np.ndarray) -> None:
        """Add a sorted run without repeats."""
        if not run.size:
            return
        self._runs.append(run)
        while len(self._runs) > 1 and 2 * self._runs[-1].size >= self._runs[-2].size:
            newest = self._runs.pop()
            self._runs[-1] = _merge_sorted(self._runs[-1], newest)


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted runs without repeats, in linear time (the stable sort
    is a timsort, which merges the two runs it finds)."""
    merged = np.concatenate((a, b))
    merged.sort(kind="stable")
    keep = np.empty(merged.size, dtype=bool)
    keep[0] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    return merged[keep]


# --- writers -------------------------------------------------------------------------------------


@dataclass(slots=True)
class UsageWriteResult:
    inserted: int = 0
    duplicates_in_batch: int = 0
    duplicates_stored: int = 0

    @property
    def duplicates(self) -> int:
        return self.duplicates_in_batch + self.duplicates_stored


@dataclass(slots=True)
class UsageSource:
    source: str = "kafka"
    topic: str = ""
    partition: int = -1
    offset: int = -1
    #: the record the event came from: what a row ClickHouse refuses is dead-lettered as
    message: Message | None = None


def lookup_existing(store: AnalyticsStore, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Exact: which of these (organization_id, identifier) keys are in usage_events."""
    found: set[tuple[str, str]] = set()
    keys = list(keys)
    for i in range(0, len(keys), 5_000):
        chunk = keys[i : i + 5_000]
        rows = store.query(
            "SELECT DISTINCT organization_id, identifier FROM usage_events "
            "WHERE (organization_id, identifier) IN {keys:Array(Tuple(String, String))}",
            {"keys": chunk},
        )
        found.update((r[0], r[1]) for r in rows)
    return found


def rebuild_aggregates(store: AnalyticsStore, organization_id: str, start: datetime, end: datetime) -> None:
    """Recompute what the views derive from usage_events (usage_events_by_time, usage_hourly,
    usage_daily) for one organization over whole UTC days covering [start, end), from
    usage_events FINAL (the deduplicated truth)."""
    day_start = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if day_end < end:
        day_end += timedelta(days=1)
    params = {"org": organization_id, "s": day_start, "e": day_end}
    where = "organization_id = {org:String} AND timestamp >= {s:DateTime64(6, 'UTC')} AND timestamp < {e:DateTime64(6, 'UTC')}"
    agg = (
        "count() AS event_count, sum(value) AS value_sum, max(value) AS value_max, "
        "max((timestamp, identifier, value)) AS value_last"
    )
    settings = {"mutations_sync": 2}
    store.command(
        "DELETE FROM usage_hourly WHERE organization_id = {org:String} AND hour >= {s:DateTime('UTC')} AND hour < {e:DateTime('UTC')}",
        params,
        settings=settings,
    )
    store.command(
        "DELETE FROM usage_daily WHERE organization_id = {org:String} AND day >= toDate({s:DateTime('UTC')}) AND day < toDate({e:DateTime('UTC')})",
        params,
        settings=settings,
    )
    store.command(
        "DELETE FROM usage_events_by_time WHERE " + where,
        params,
        settings=settings,
    )
    store.command(
        "INSERT INTO usage_events_by_time (organization_id, event_name, timestamp, customer_id, identifier, value) "
        f"SELECT organization_id, event_name, timestamp, customer_id, identifier, value FROM usage_events FINAL WHERE {where}",
        params,
    )
    store.command(
        "INSERT INTO usage_hourly (organization_id, event_name, hour, customer_id, event_count, value_sum, value_max, value_last) "
        f"SELECT organization_id, event_name, toStartOfHour(timestamp) AS hour, customer_id, {agg} "
        f"FROM usage_events FINAL WHERE {where} GROUP BY organization_id, event_name, hour, customer_id",
        params,
    )
    store.command(
        "INSERT INTO usage_daily (organization_id, event_name, day, customer_id, event_count, value_sum, value_max, value_last) "
        f"SELECT organization_id, event_name, toDate(timestamp) AS day, customer_id, {agg} "
        f"FROM usage_events FINAL WHERE {where} GROUP BY organization_id, event_name, day, customer_id",
        params,
    )


class UsageWriter:
    """The one path into usage_events (per store, see `get_usage_writer`)."""

    def __init__(self, store: AnalyticsStore) -> None:
        self.store = store
        self.index = KeyIndex()
        self.lock = threading.RLock()
        self._refresh_requested = False

    def prepare(self) -> None:
        with self.lock:
            if not self.index.loaded:
                started = time.perf_counter()
                n = self.index.load(self.store)
                log.info("usage key index: %d keys loaded in %.2fs", n, time.perf_counter() - started)

    def refresh(self) -> None:
        with self.lock:
            self._refresh_requested = False
            self.index.refresh(self.store)

    def request_refresh(self) -> None:
        """Refresh the key index before the next write (cheap to call from a callback)."""
        self._refresh_requested = True

    def write(self, events: Sequence[tuple[UsageEvent, UsageSource]]) -> UsageWriteResult:
        return self.write_prepared(prepare_usage(events))

    def write_prepared(self, rows: Sequence[PreparedUsage]) -> UsageWriteResult:
        """Dedupe and insert rows prepared by `prepare_usage` (hash and encoding are done
        there, off the ordered path)."""
        result = UsageWriteResult()
        if not rows:
            return result
        with self.lock:
            self.prepare()
            if self._refresh_requested:
                self.refresh()
            unique: dict[tuple[str, str], PreparedUsage] = {}
            for row in rows:
                if row.key in unique:
                    result.duplicates_in_batch += 1
                else:
                    unique[row.key] = row
            batch = list(unique.values())
            hits = self.index.candidates([r.hash for r in batch])
            candidates = [r.key for r, hit in zip(batch, hits, strict=True) if hit]
            if candidates:
                existing = lookup_existing(self.store, candidates)
                for k in existing:
                    del unique[k]
                result.duplicates_stored = len(existing)
                batch = list(unique.values())
            if not batch:
                return result
            body = b"\n".join(r.line for r in batch)
            try:
                self.store.insert_raw("usage_events", USAGE_COLUMNS, body)
            except Exception:
                self._after_failed_insert({k: (r.event, r.source) for k, r in unique.items()})
                raise
            self.index.add(r.hash for r in batch)
            result.inserted = len(batch)
            return result

    def _after_failed_insert(self, unique: dict[tuple[str, str], tuple[UsageEvent, UsageSource]]) -> None:
        """The insert raised: find what landed anyway, remember it, repair its aggregates."""
        try:
            landed = lookup_existing(self.store, list(unique))
        except Exception:
            log.exception("usage insert failed and the follow-up lookup failed too; the batch will be retried")
            return
        if not landed:
            return
        log.warning(
            "usage insert failed after %d of %d rows landed; rebuilding their aggregates", len(landed), len(unique)
        )
        self.index.add(key_hash(o, i) for o, i in landed)
        spans: dict[str, list[datetime]] = {}
        for k in landed:
            ts = unique[k][0].timestamp
            span = spans.setdefault(k[0], [ts, ts])
            span[0], span[1] = min(span[0], ts), max(span[1], ts)
        for org, (lo, hi) in spans.items():
            rebuild_aggregates(self.store, org, lo, hi + timedelta(microseconds=1))


_ROW_ENCODER = msgspec.json.Encoder(decimal_format="number")


def _plain_decimal(value: Decimal) -> Decimal:
    """The same number, written without an exponent (JSON number text ClickHouse reads exactly)."""
    return value if "E" not in str(value) else Decimal(format_decimal(value))


def encode_usage_rows(items: Iterable[tuple[UsageEvent, UsageSource]]) -> bytes:
    """JSONCompactEachRow for USAGE_COLUMNS. Decimals go as JSON number text (exact, no float
    on either side), timestamps as epoch seconds with six decimals, property values as text.
    ClickHouse parses the rows itself: the cheapest insert path from Python (~1.5 us a row)."""
    return b"\n".join(encode_usage_row(event, src) for event, src in items)


def encode_usage_row(event: UsageEvent, src: UsageSource) -> bytes:
    ts = event.timestamp
    props = event.properties
    return _ROW_ENCODER.encode(
        [
            event.organization_id,
            event.identifier,
            event.event_name,
            event.customer_id,
            _plain_decimal(event.value),
            Decimal(f"{int(ts.timestamp())}.{ts.microsecond:06d}"),
            {k: property_text(v) for k, v in props.items()} if props else {},
            src.source,
            src.topic,
            src.partition,
            src.offset,
        ]
    )


@dataclass(frozen=True, slots=True)
class PreparedUsage:
    """A valid usage event with its dedupe key, key hash and encoded row."""

    event: UsageEvent
    source: UsageSource
    key: tuple[str, str]
    hash: int
    line: bytes


def prepare_usage(events: Iterable[tuple[UsageEvent, UsageSource]]) -> list[PreparedUsage]:
    out = []
    for event, src in events:
        org, ident = event.organization_id, event.identifier
        out.append(PreparedUsage(event, src, (org, ident), key_hash(org, ident), encode_usage_row(event, src)))
    return out


_writers: dict[str, UsageWriter] = {}
_writers_lock = threading.Lock()


def get_usage_writer(store: AnalyticsStore) -> UsageWriter:
    """The process-wide writer (and key index) for this store."""
    with _writers_lock:
        writer = _writers.get(store.url)
        if writer is None or writer.store is not store:
            writer = _writers[store.url] = UsageWriter(store)
        return writer


def insert_interactions(store: AnalyticsStore, rows: Sequence[list[Any]]) -> int:
    return store.insert("interactions", rows, INTERACTION_COLUMNS)


# ClickHouse error codes that say nothing about the rows: the server, its disk, memory or
# schema is in trouble, and the same insert may pass later (retry the batch, never refuse rows)
_TRANSIENT_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        16,  # NO_SUCH_COLUMN_IN_TABLE
        60,  # UNKNOWN_TABLE
        81,  # UNKNOWN_DATABASE
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
        1000,  # POCO_EXCEPTION
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed insert may pass unchanged later (connection, server, disk, memory),
    as opposed to ClickHouse refusing what was sent."""
    from clickhouse_connect.driver.exceptions import OperationalError

    from analytics.store import StoreError

    if isinstance(exc, (OperationalError, StoreError, OSError, TimeoutError, MemoryError)):
        return True
    code = getattr(exc, "code", None)
    return isinstance(code, int) and code in _TRANSIENT_CODES


def _refusal_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"ClickHouse refused the row: {text}"[:2000] if text else f"ClickHouse refused the row: {exc!r}"


def insert_isolating(insert: Any, rows: Sequence[Any]) -> list[tuple[Any, BaseException]]:
    """`insert(rows)`; when ClickHouse refuses it for a reason that is not transient, the
    rows are inserted in halves, down to single rows, so that each refused row is found and
    every other row is stored. Returns the refused rows with their error. A transient error
    propagates (the caller retries the whole batch: `insert` must be idempotent)."""
    if not rows:
        return []
    try:
        insert(rows)
        return []
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(rows) == 1:
            log.warning("ClickHouse refused a row: %s", exc)
            return [(rows[0], exc)]
    middle = len(rows) // 2
    return insert_isolating(insert, rows[:middle]) + insert_isolating(insert, rows[middle:])


def insert_dead_letters(store: AnalyticsStore, letters: Sequence[RejectedMessage]) -> int:
    return store.insert("usage_dead_letters", [d.row() for d in letters], DEAD_LETTER_COLUMNS)


# --- batches --------------------------------------------------------------------------------------


@dataclass(slots=True)
class IngestReport:
    messages: int = 0
    usage_inserted: int = 0
    usage_duplicates: int = 0
    interactions: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    dead_letter_reasons: list[str] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        self.messages += other.messages
        self.usage_inserted += other.usage_inserted
        self.usage_duplicates += other.usage_duplicates
        self.interactions += other.interactions
        self.dead_letters += other.dead_letters
        self.seconds += other.seconds


class BatchProcessor:
    """Turns a batch of records from usage.events and billing.events into inserts:
    usage (deduplicated) first, then interactions, then dead letters (the invalid messages,
    the events their meter cannot measure and the rows ClickHouse refused, with the
    reason). When `process` returns, everything is stored and the offsets may be committed;
    when it raises (a transient error), nothing may be committed and the same batch must be
    processed again (idempotent)."""

    def __init__(
        self, store: AnalyticsStore, usage_topics: Iterable[str], event_topics: Iterable[str], source: str = "kafka"
    ):
        self.store = store
        self.writer = get_usage_writer(store)
        self.meters = get_meter_book(store)
        self.usage_topics = frozenset(usage_topics)
        self.event_topics = frozenset(event_topics)
        self.source = source

    def process(self, messages: Sequence[Message]) -> IngestReport:
        """parse() then store(): validate, dedupe, insert."""
        return self.store_parsed(self.parse(messages))

    def parse(self, messages: Sequence[Message]) -> ParsedBatch:
        """Validate and classify (no I/O, no ordering: may run ahead of the previous batch)."""
        started = time.perf_counter()
        batch = ParsedBatch(len(messages))
        anchors: dict[int | None, datetime] = {}
        for msg in messages:
            try:
                self._classify(msg, batch, anchors)
            except Exception as exc:  # never let one message fail the batch
                log.exception("cannot classify %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                batch.dead.append(RejectedMessage(msg, "invalid", f"unexpected error: {exc!r}"))
        batch.prepared = []
        for event, src in batch.usage:
            try:
                batch.prepared.extend(prepare_usage([(event, src)]))
            except Exception as exc:  # an event that cannot be encoded is refused alone
                log.exception("cannot encode %s[%d]@%d", src.topic, src.partition, src.offset)
                if src.message is not None:
                    batch.dead.append(
                        RejectedMessage(
                            src.message, "invalid", f"cannot encode the event: {exc!r}", event.organization_id
                        )
                    )
        batch.seconds = time.perf_counter() - started
        return batch

    def _classify(self, msg: Message, batch: ParsedBatch, anchors: dict[int | None, datetime]) -> None:
        if msg.topic in self.event_topics:
            parsed_event = parse_billing_event(msg)
            if isinstance(parsed_event, RejectedMessage):
                batch.dead.append(parsed_event)
            else:
                batch.interactions.append(parsed_event.row)
                batch.interaction_messages.append(msg)
        elif msg.topic in self.usage_topics:
            anchor = anchors.get(msg.timestamp_ms)
            if anchor is None:
                anchor = anchors[msg.timestamp_ms] = msg.timestamp or datetime.now(UTC)
            parsed = parse_usage_message(msg, anchor)
            if isinstance(parsed, RejectedMessage):
                batch.dead.append(parsed)
            else:
                batch.usage.append((parsed, UsageSource(self.source, msg.topic, msg.partition, msg.offset, msg)))
        else:
            batch.dead.append(RejectedMessage(msg, "unsupported", f"unexpected topic {msg.topic!r}"))

    def store_parsed(self, batch: ParsedBatch) -> IngestReport:
        """Dedupe and insert, in the order batches were read. Idempotent: after a failure,
        call it again with the same batch."""
        started = time.perf_counter()
        result = IngestReport(messages=batch.messages)
        prepared = batch.prepared if batch.prepared is not None else prepare_usage(batch.usage)
        dead = list(batch.dead)
        prepared = self._measurable(batch, prepared, dead)

        def write_usage(rows: Sequence[PreparedUsage]) -> None:
            written = self.writer.write_prepared(rows)
            result.usage_inserted += written.inserted
            result.usage_duplicates += written.duplicates

        for row, exc in insert_isolating(write_usage, prepared):
            if row.source.message is None:  # no record to keep it as (replays keep theirs)
                raise exc
            dead.append(RejectedMessage(row.source.message, "refused", _refusal_text(exc), row.event.organization_id))

        def write_interactions(rows: Sequence[tuple[Message, list[Any]]]) -> None:
            result.interactions += insert_interactions(self.store, [r for _, r in rows])

        for (msg, row), exc in insert_isolating(write_interactions, batch.interactions_with_messages()):
            dead.append(RejectedMessage(msg, "refused", _refusal_text(exc), str(row[0])))
        if dead:
            result.dead_letters = insert_dead_letters(self.store, dead)
            result.dead_letter_reasons = [d.reason for d in dead[:20]]
        result.seconds = batch.seconds + time.perf_counter() - started
        return result

    def _measurable(
        self, batch: ParsedBatch, rows: Sequence[PreparedUsage], dead: list[RejectedMessage]
    ) -> list[PreparedUsage]:
        """The rows the meter of their event name can measure; the others (a valueKey
        property missing or not a number, billing/meters/rules.py) become dead letters with
        the reason, never rows that add nothing. In the ordered stage, so that a batch's
        `meter.created` events are known before the usage after them is judged. An event
        already stored (a replay of one stored before its meter existed) stays what it is:
        a duplicate for the writer, not a dead letter beside its row."""
        names = {(r.event.organization_id, r.event.event_name) for r in rows}
        self.meters.learn_batch(self.store, batch.interactions, names)
        refused = []
        for row in rows:
            event = row.event
            refusal = self.meters.refusal(event.organization_id, event.event_name, event.properties)
            if refusal is not None:
                refused.append((row, refusal))
        if not refused:
            return list(rows)
        stored = lookup_existing(self.store, [row.key for row, _ in refused])
        dropped = set()
        for row, refusal in refused:
            if row.key in stored:
                continue
            if row.source.message is None:  # no record to keep it as (as for a row ClickHouse refuses)
                raise ValueError(f"{refusal.code}: {refusal.message}")
            reason = f"{refusal.code}: {refusal.message}"
            dead.append(RejectedMessage(row.source.message, "invalid", reason, row.event.organization_id))
            dropped.add(id(row))
        return [row for row in rows if id(row) not in dropped]


@dataclass(slots=True)
class ParsedBatch:
    messages: int
    usage: list[tuple[UsageEvent, UsageSource]] = field(default_factory=list)
    prepared: list[PreparedUsage] | None = None
    interactions: list[list[Any]] = field(default_factory=list)
    #: the record of each interaction row (same order), for a row ClickHouse refuses
    interaction_messages: list[Message] = field(default_factory=list)
    dead: list[RejectedMessage] = field(default_factory=list)
    seconds: float = 0.0

    def interactions_with_messages(self) -> list[tuple[Message, list[Any]]]:
        return list(zip(self.interaction_messages, self.interactions, strict=True))
