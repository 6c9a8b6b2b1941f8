"""Re-read usage.events and billing.events from a point in time into ClickHouse.

Idempotent: records go through the same `BatchProcessor` as the live consumer, so usage
already stored is recognised by (organization_id, identifier) and skipped, interactions and
dead letters collapse on their keys. Safe to run while the live consumer runs (both share
the dedupe in one process; across processes the key index is refreshed first). It reads with
no consumer group and commits nothing: the live consumer's offsets are untouched.

    stats = await areplay(settings, since=datetime(2025, 1, 1, tzinfo=UTC))
    # or, from a shell: billing analytics replay --since 2025-01-01T00:00:00Z
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from analytics.consumer import BILLING_EVENTS, USAGE_EVENTS
from analytics.ingest import BatchProcessor, IngestReport, Message
from analytics.migrations import migrate
from analytics.store import AnalyticsStore, get_store
from contracts.settings import Settings, get_settings

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (done, total)


@dataclass(slots=True)
class ReplayStats:
    partitions: int = 0
    total: int = 0
    messages: int = 0
    usage_inserted: int = 0
    usage_duplicates: int = 0
    interactions: int = 0
    dead_letters: int = 0
    seconds: float = 0.0

    def add(self, r: IngestReport) -> None:
        self.messages += r.messages
        self.usage_inserted += r.usage_inserted
        self.usage_duplicates += r.usage_duplicates
        self.interactions += r.interactions
        self.dead_letters += r.dead_letters


async def areplay(
    settings: Settings | None = None,
    since: datetime | None = None,
    *,
    until: datetime | None = None,
    store: AnalyticsStore | None = None,
    topics: Sequence[str] = (USAGE_EVENTS, BILLING_EVENTS),
    batch_size: int = 10_000,
    on_progress: ProgressCallback | None = None,
) -> ReplayStats:
    """Replay records with a Kafka timestamp in [since, until) (until: the end of the topics
    as they are when the replay starts). Topic names are given without the prefix."""
    if since is None or since.tzinfo is None:
        raise ValueError("since must be a timezone-aware datetime")
    if until is not None and until.tzinfo is None:
        raise ValueError("until must be timezone-aware")
    settings = settings or get_settings()
    store = store or get_store(settings.clickhouse_url)
    await asyncio.to_thread(migrate, store)
    prefix = settings.kafka_topic_prefix
    full = [f"{prefix}{t}" for t in topics]
    processor = BatchProcessor(
        store,
        [f"{prefix}{USAGE_EVENTS}"] if USAGE_EVENTS in topics else [],
        [f"{prefix}{BILLING_EVENTS}"] if BILLING_EVENTS in topics else [],
        source="replay",
    )
    await asyncio.to_thread(processor.writer.refresh)
    stats = ReplayStats()
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=batch_size,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = await _partitions(settings.kafka_bootstrap_servers, full)
        tps = [TopicPartition(t, p) for t in full for p in partitions[t]]
        consumer.assign(tps)
        since_ms = int(since.timestamp() * 1000)
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends = await consumer.end_offsets(tps)
        if until is not None:
            untils = await consumer.offsets_for_times({tp: int(until.timestamp() * 1000) for tp in tps})
            ends = {tp: (untils[tp].offset if untils.get(tp) is not None else ends[tp]) for tp in tps}
        todo: dict[TopicPartition, tuple[int, int]] = {}
        for tp in tps:
            found = starts.get(tp)
            if found is None or found.offset >= ends[tp]:
                continue
            todo[tp] = (found.offset, ends[tp])
            consumer.seek(tp, found.offset)
        others = [tp for tp in tps if tp not in todo]
        if others:
            consumer.pause(*others)
        stats.partitions = len(todo)
        stats.total = sum(end - start for start, end in todo.values())
        if on_progress:
            on_progress(0, stats.total)
        remaining = dict(todo)
        idle = 0
        while remaining:
            fetched = await consumer.getmany(*remaining.keys(), timeout_ms=500, max_records=batch_size)
            batch: list[Message] = []
            for tp, records in fetched.items():
                end = remaining.get(tp, (0, -1))[1]
                batch.extend(Message.from_record(r) for r in records if r.offset < end)
            if batch:
                idle = 0
                result = await asyncio.to_thread(processor.process, batch)
                stats.add(result)
            else:
                idle += 1
                if idle >= 20:  # 10 s without a record below the end offsets: nothing left to read
                    log.warning("replay: no more records before the end offsets of %d partitions", len(remaining))
                    break
            for tp in list(remaining):
                position = await consumer.position(tp)
                if position >= remaining[tp][1]:
                    consumer.pause(tp)
                    del remaining[tp]
            if on_progress:
                done = 0
                for tp, (start, end) in todo.items():
                    pos = end if tp not in remaining else await consumer.position(tp)
                    done += min(pos, end) - start
                on_progress(done, stats.total)
    finally:
        await consumer.stop()
    stats.seconds = time.perf_counter() - started
    log.info("replay done: %s", stats)
    return stats


async def _partitions(bootstrap: str, topics: list[str]) -> dict[str, list[int]]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    out: dict[str, list[int]] = {}
    for d in described:
        if d.get("error_code", 0) != 0 or not d.get("partitions"):
            raise ValueError(f"topic {d.get('topic')!r} not found (error code {d.get('error_code')})")
        out[d["topic"]] = sorted(p["partition"] for p in d["partitions"])
    missing = [t for t in topics if t not in out]
    if missing:
        raise ValueError(f"topics not found: {', '.join(missing)}")
    return out


def replay(
    settings: Settings | None = None,
    since: datetime | None = None,
    *,
    until: datetime | None = None,
    topics: Sequence[str] = (USAGE_EVENTS, BILLING_EVENTS),
    batch_size: int = 10_000,
    progress: bool = True,
) -> ReplayStats:
    """Blocking replay with a rich progress bar (for the CLI)."""
    if not progress:
        return asyncio.run(areplay(settings, since, until=until, topics=topics, batch_size=batch_size))
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("replay", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return asyncio.run(
            areplay(settings, since, until=until, topics=topics, batch_size=batch_size, on_progress=update)
        )


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """ISO-8601 with offset ("2025-01-31T00:00:00Z"), a date ("2025-01-31", UTC midnight),
    epoch seconds, or a duration back from now: "90m", "6h", "2d", "1w"."""
    from datetime import timedelta

    now = now or datetime.now(UTC)
    t = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if t and t[-1] in units and t[:-1].isdigit():
        return now - timedelta(seconds=int(t[:-1]) * units[t[-1]])
    if t.isdigit():
        return datetime.fromtimestamp(int(t), UTC)
    try:
        parsed = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a time (ISO-8601, epoch seconds, or 6h / 2d)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
