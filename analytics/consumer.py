"""The analytics consumer: usage.events and billing.events -> ClickHouse, in batches.

Run it inside another process's event loop (the `billing dev` command):

    stop = asyncio.Event()
    task = asyncio.create_task(run_analytics_consumer(settings, stop))
    ...
    stop.set(); await task          # finishes the batch in flight, commits, closes

or as its own process: `python -m analytics.consumer` (SIGINT/SIGTERM stop it cleanly), or
`billing analytics consume` (cli/analytics.py).

Why aiokafka directly and not FastStream's batch subscriber: this consumer needs (1) the raw
bytes of every record, so that a record that is not even JSON goes to the dead-letter table
as it was, with its topic/partition/offset (FastStream decodes before the handler and acks or
nacks per its own policy); (2) batches bounded by size *and* time across two topics, with
the offsets committed only after ClickHouse accepted the whole batch, in order, with one
batch inserting while the next is fetched; (3) rebalance hooks: finish and commit the batch
in flight before partitions are revoked, and refresh the dedupe key index when partitions
are assigned (another process may have written them). aiokafka gives all three in ~200 lines.

Delivery: at-least-once from Kafka, made exactly-once in effect by the dedupe in
`analytics.ingest` (usage by (organization_id, identifier); interactions by event id; dead
letters by Kafka coordinates). A row ClickHouse refuses (a value or string it cannot
store) is found by re-inserting the batch in halves and becomes a dead letter with
ClickHouse's reason; the rest of the batch is stored (analytics.ingest.insert_isolating). An
event its meter cannot measure (the meter's valueKey property missing or not a number) is
a dead letter too, with the reason (analytics.meters, billing/meters/rules.py). A
batch that fails for a transient reason (connection, server, disk, memory) is retried with
backoff, forever, without committing and without fetching past it (a broken ClickHouse
stalls the consumer, it never drops or skips data); a stopped or crashed consumer resumes
from the last commit. Nothing raised by a message can crash the consumer: bad messages
become dead letters.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from analytics.ingest import BatchProcessor, IngestReport, Message, ParsedBatch
from analytics.migrations import migrate
from analytics.store import AnalyticsStore, get_store
from contracts.settings import Settings, get_settings

log = logging.getLogger(__name__)

USAGE_EVENTS = "usage.events"
BILLING_EVENTS = "billing.events"


def usage_topic(settings: Settings) -> str:
    return f"{settings.kafka_topic_prefix}{USAGE_EVENTS}"


def billing_events_topic(settings: Settings) -> str:
    return f"{settings.kafka_topic_prefix}{BILLING_EVENTS}"


@dataclass(slots=True)
class ConsumerConfig:
    #: consumer group; default "<prefix>analytics"
    group_id: str | None = None
    #: a batch is stored when it has this many records ...
    max_batch: int = 10_000
    #: ... or when its first record is this old
    linger_ms: int = 200
    #: backoff between retries of a batch that failed to store
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    auto_offset_reset: str = "earliest"
    session_timeout_ms: int = 30_000
    client_id: str = "billing-analytics"
    #: extra keyword arguments for AIOKafkaConsumer
    kafka_options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ConsumerStats:
    batches: int = 0
    messages: int = 0
    usage_inserted: int = 0
    usage_duplicates: int = 0
    interactions: int = 0
    dead_letters: int = 0
    commits: int = 0
    store_failures: int = 0
    #: seconds spent validating (GIL-bound) and storing (dedupe + insert) batches
    parse_seconds: float = 0.0
    store_seconds: float = 0.0
    last_error: str | None = None
    started_at: float = field(default_factory=time.monotonic)

    def add(self, r: IngestReport) -> None:
        self.batches += 1
        self.messages += r.messages
        self.usage_inserted += r.usage_inserted
        self.usage_duplicates += r.usage_duplicates
        self.interactions += r.interactions
        self.dead_letters += r.dead_letters


class AnalyticsConsumer:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: AnalyticsStore | None = None,
        config: ConsumerConfig | None = None,
        stats: ConsumerStats | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.config = config or ConsumerConfig()
        self.store = store
        self.stats = stats or ConsumerStats()
        self.topics = (usage_topic(self.settings), billing_events_topic(self.settings))
        self.group_id = self.config.group_id or f"{self.settings.kafka_topic_prefix}analytics"
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._processor: BatchProcessor | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._stop: asyncio.Event = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------
    async def run(self, stop_event: asyncio.Event | None = None) -> ConsumerStats:
        """Consume until `stop_event` is set; then store and commit what was fetched."""
        if stop_event is not None:
            self._stop = stop_event
        store = self.store = self.store or get_store(self.settings.clickhouse_url)
        await asyncio.to_thread(migrate, store)
        self._processor = BatchProcessor(store, [self.topics[0]], [self.topics[1]])
        await asyncio.to_thread(self._processor.writer.prepare)
        consumer = self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            client_id=self.config.client_id,
            enable_auto_commit=False,
            auto_offset_reset=self.config.auto_offset_reset,
            isolation_level="read_committed",
            max_poll_records=self.config.max_batch,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            # generous group timeouts: on a loaded 2-core machine (billing dev runs the API,
            # the consumers and this in one process) the event loop can be starved for
            # seconds; being evicted costs a rebalance and re-reading uncommitted batches
            session_timeout_ms=self.config.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.config.session_timeout_ms // 10),
            rebalance_timeout_ms=2 * self.config.session_timeout_ms,
            **self.config.kafka_options,
        )
        consumer.subscribe(list(self.topics), listener=_Listener(self))
        # start() waits for the topics to exist: keep that interruptible by stop_event
        starting = asyncio.ensure_future(consumer.start())
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not starting.done():
            log.warning("analytics consumer stopped before Kafka had the topics %s", ", ".join(self.topics))
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await consumer.stop()
            return self.stats
        starting.result()
        log.info("analytics consumer started: group %s, topics %s", self.group_id, ", ".join(self.topics))
        try:
            # A two-stage pipeline: batch N+1 is validated (GIL-bound) while batch N is being
            # inserted (the engine releases the GIL) and batch N+2 is being fetched. Stores
            # and commits stay in read order; at most two batches are in flight.
            previous: asyncio.Task[bool] | None = None
            while not self._stop.is_set():
                batch = await self._accumulate(consumer)
                if not batch:
                    continue
                task = asyncio.create_task(self._store_and_commit(batch, previous))
                if previous is not None:
                    await previous
                previous = self._inflight = task
            if self._inflight is not None:
                await self._inflight
        finally:
            inflight, self._inflight = self._inflight, None
            if inflight is not None and not inflight.done():
                inflight.cancel()
            await consumer.stop()
            log.info("analytics consumer stopped: %s", self.stats)
        return self.stats

    async def _accumulate(self, consumer: AIOKafkaConsumer) -> list[Any]:
        records: list[Any] = []
        deadline: float | None = None
        cfg = self.config
        while len(records) < cfg.max_batch and not self._stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            timeout_ms = cfg.linger_ms if deadline is None else max(1, int((deadline - now) * 1000))
            try:
                fetched = await consumer.getmany(timeout_ms=timeout_ms, max_records=cfg.max_batch - len(records))
            except KafkaError as exc:  # aiokafka reconnects by itself; keep going
                self.stats.last_error = f"fetch: {exc!r}"
                log.warning("analytics consumer fetch error: %r", exc)
                await asyncio.sleep(cfg.retry_initial_s)
                continue
            for recs in fetched.values():
                records.extend(recs)
            if records and deadline is None:
                deadline = time.monotonic() + cfg.linger_ms / 1000
        return records

    async def _store_and_commit(self, records: Sequence[Any], previous: asyncio.Task[bool] | None = None) -> bool:
        """Store one batch, then commit its offsets. True when both happened (or the commit
        was refused by a rebalance, after the store)."""
        assert self._processor is not None and self._consumer is not None
        processor = self._processor
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, -1), r.offset + 1)
        parsed = await asyncio.to_thread(_parse_records, processor, records)  # never raises per message
        if previous is not None:
            if not previous.done():
                await asyncio.wait([previous])  # keep stores and commits in read order
            if previous.cancelled() or previous.exception() is not None or previous.result() is not True:
                # the batch before this one was not stored: committing this one would skip
                # it. Only happens while stopping; the next run re-reads from the last commit.
                return False
        backoff = self.config.retry_initial_s
        self.stats.parse_seconds += parsed.seconds
        while True:
            try:
                t0 = time.perf_counter()
                result = await asyncio.to_thread(processor.store_parsed, parsed)
                self.stats.store_seconds += time.perf_counter() - t0
                break
            except Exception as exc:  # ClickHouse down, disk full, ...: retry, never skip
                self.stats.store_failures += 1
                self.stats.last_error = f"store: {exc!r}"
                log.exception("analytics batch of %d records failed to store; retrying in %.1fs", len(records), backoff)
                if self._stop.is_set() and self.stats.store_failures > 3:
                    log.error("stopping with an unstored batch: it will be redelivered from the last commit")
                    return False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.retry_max_s)
        self.stats.add(result)
        await self._commit(offsets)
        return True

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        mine = {tp: OffsetAndMetadata(off, "") for tp, off in offsets.items() if tp in assigned}
        if not mine:
            return
        try:
            await self._consumer.commit(mine)
            self.stats.commits += 1
        except (CommitFailedError, KafkaError) as exc:
            # a rebalance took the partitions: the new owner re-reads them and dedupe
            # makes that harmless
            self.stats.last_error = f"commit: {type(exc).__name__}"
            log.warning(
                "analytics offset commit failed (%s, a rebalance); the records will be re-read", type(exc).__name__
            )

    async def drain(self) -> None:
        """Wait for the batch in flight (rebalance: before partitions are revoked)."""
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            try:
                await asyncio.shield(inflight)
            except Exception:
                log.exception("batch in flight failed during a rebalance")

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._processor is not None:
            # partitions may come from another process: learn the keys it stored before the
            # next batch is stored (not here: a slow callback stretches the rebalance)
            self._processor.writer.request_refresh()
            self._processor.meters.request_reload()  # meters it learned from their billing.events
        log.info("analytics consumer assigned %d partitions", len(assigned))
        self.ready.set()


def _parse_records(processor: BatchProcessor, records: Sequence[Any]) -> ParsedBatch:
    return processor.parse([Message.from_record(r) for r in records])


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka has no stubs: its base class is Any to mypy
    def __init__(self, owner: AnalyticsConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.drain()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.on_assigned(assigned)


async def run_analytics_consumer(
    settings: Settings | None = None,
    stop_event: asyncio.Event | None = None,
    *,
    store: AnalyticsStore | None = None,
    config: ConsumerConfig | None = None,
    stats: ConsumerStats | None = None,
    ready: asyncio.Event | None = None,
) -> ConsumerStats:
    """Run the analytics consumer in the current event loop until `stop_event` is set.

    `ready` (optional) is set once the consumer has joined its group and got partitions.
    Returns the counters (also visible live through `stats`)."""
    consumer = AnalyticsConsumer(settings, store=store, config=config, stats=stats)
    if ready is not None:
        consumer.ready = ready
    return await consumer.run(stop_event)


async def _main() -> None:
    settings = get_settings()
    # open the store first, so a chDB directory held by another process fails right away
    store = await asyncio.to_thread(get_store, settings.clickhouse_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_analytics_consumer(settings, stop, store=store)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main())


if __name__ == "__main__":
    main()
