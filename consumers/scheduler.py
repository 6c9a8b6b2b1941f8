"""The scheduler: finds due work in Postgres (billing/scheduling) and publishes one
command per unit to `billing.commands`, where the command consumer applies it.

Each batch is claimed, published and acknowledged by Kafka, then committed: Kafka holds
every command whose claim is committed, and a crash in between leaves the units
unclaimed for the next pass, which publishes the same command ids again (answered as
duplicates). Any number of schedulers may run: each locks the rows it claims and skips
the ones another holds. Commands are keyed by organization, as every command is, so one
subscription's commands are applied in the order they were published.

Runs inside `billing consume` and `billing dev`, as `billing scheduler`, and one pass at a
time as `billing renewals run`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics import queries
from analytics.store import AnalyticsStore, StoreError, get_store
from billing import clock
from billing.db.sessions import create_engine, create_session_factory
from billing.meters.usage import MeterTotal
from billing.scheduling.due import DUE_KINDS
from billing.scheduling.service import DueWork, claim_due, claim_test_clock_steps, count_due
from billing.scheduling.usage import UsageUnavailable, measure
from billing.subscriptions.periods import Period
from contracts.resources import Meter as MeterResource
from contracts.settings import Settings, get_settings, require_safe_settings
from producers.publisher import Publisher, create_broker, publish_command, start_broker

log = logging.getLogger(__name__)

BATCH_SIZE: Final = 500
# work is due this long after its moment: the consumer's clock, on another machine, must
# find it due too (a renewal it found early would be refused, and its claim kept)
CLOCK_MARGIN: Final = timedelta(seconds=1)


def due_by() -> datetime:
    """The moment a pass takes work up to: now, less the margin."""
    return clock.now() - CLOCK_MARGIN


async def count_pass(
    sessions: async_sessionmaker[AsyncSession], now: datetime, organization_ids: Collection[str] | None = None
) -> int:
    """How many units a pass up to `now` would publish."""
    async with sessions() as session:
        return sum([await count_due(session, kind, now, organization_ids) for kind in DUE_KINDS])


class ClickHouseUsage:
    """Meter totals from the process's analytics store (analytics/store.get_store), opened
    on first use: a scheduler only needs ClickHouse when a draft has metered lines."""

    def __init__(self, clickhouse_url: str) -> None:
        self.clickhouse_url = clickhouse_url
        self._store: AnalyticsStore | None = None

    async def __call__(
        self, organization_id: str, meter: MeterResource, customer_id: str, period: Period
    ) -> Decimal | None:
        if self._store is None:
            try:
                self._store = await asyncio.to_thread(get_store, self.clickhouse_url)
            except StoreError as error:
                raise UsageUnavailable(f"ClickHouse is not readable from this scheduler: {error}") from error
        return await queries.meter_total(self._store, organization_id, meter, customer_id, period.start, period.end)


async def run_pass(
    sessions: async_sessionmaker[AsyncSession],
    publisher: Publisher | KafkaBroker,
    now: datetime,
    *,
    batch_size: int = BATCH_SIZE,
    organization_ids: Collection[str] | None = None,
    published: Callable[[list[DueWork]], None] = lambda works: None,
    meter_total: MeterTotal | None = None,
) -> Counter[str]:
    """Publishes every unit due by `now` (or, for a test clock's customers, by its time), of
    the given organizations or all, batch by batch, then a step for each advancing test
    clock with nothing left in flight; `published` hears of each batch once it is
    committed. A draft's metered lines are measured with `meter_total`. How many of each type."""
    counts: Counter[str] = Counter()

    async def publish_claimed(claim: Callable[[AsyncSession], Awaitable[tuple[int, list[DueWork]]]]) -> None:
        while True:
            async with sessions() as session, session.begin():
                found, claimed = await claim(session)
                if not found:
                    return
                works = await measure(session, claimed, meter_total)
                issued_at = clock.now()
                await asyncio.gather(*(publish_command(publisher, work.envelope(issued_at)) for work in works))
            counts.update(work.command.command_type for work in works)
            if works:
                published(works)

    for kind in DUE_KINDS:
        await publish_claimed(lambda session: claim_due(session, kind, now, batch_size, organization_ids))  # noqa: B023 (awaited at once)
    # last: a test clock moves on once what its time made due is applied
    await publish_claimed(lambda session: claim_test_clock_steps(session, batch_size, organization_ids))
    return counts


async def run_scheduler(
    stop: asyncio.Event,
    settings: Settings | None = None,
    *,
    organization_ids: Collection[str] | None = None,
    batch_size: int = BATCH_SIZE,
) -> None:
    """A pass every `scheduler_interval_seconds` until `stop` is set. A pass that fails
    (Postgres or Kafka away) is logged and the next one tries again: nothing was claimed."""
    settings = settings or get_settings()
    require_safe_settings(settings)
    engine = create_engine(settings.database_url, pool_size=2)
    sessions = create_session_factory(engine)
    broker = create_broker(settings)
    publisher = Publisher(broker)
    meter_total = ClickHouseUsage(settings.clickhouse_url)
    if not await start_broker(broker, stop, "the scheduler"):
        await engine.dispose()
        return
    try:
        while not stop.is_set():
            try:
                counts = await run_pass(
                    sessions,
                    publisher,
                    due_by(),
                    batch_size=batch_size,
                    organization_ids=organization_ids,
                    meter_total=meter_total,
                )
                if counts:
                    log.info("scheduler published %s", dict(counts))
            except Exception:
                log.exception("a scheduler pass failed; the next one tries again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.scheduler_interval_seconds)
    finally:
        await publisher.stop()
        await engine.dispose()
