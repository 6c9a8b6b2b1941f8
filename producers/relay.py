"""The outbox relay: publishes the rows of the transactional outbox to Kafka after their
transaction committed, so an event goes out if and only if its change was committed (at
least once; readers dedupe on eventId)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any, Protocol

from producers.publisher import Publisher, event_headers
from producers.topics import topic

log = logging.getLogger(__name__)

RELAY_BATCH = 500


class OutboxRow(Protocol):
    """A row to publish, as a model or as the pipeline's frozen copy of one (read-only)."""

    @property
    def id(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


class OutboxStore(Protocol):
    """Where the rows live (billing/delivery/outbox.py over Postgres)."""

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    async def claim_unsent(self, session: Any, limit: int, min_age_seconds: float) -> Sequence[OutboxRow]: ...

    async def mark_sent(self, session: Any, ids: Sequence[int]) -> None: ...

    async def mark_sent_alone(self, ids: Sequence[int]) -> None: ...


class OutboxRelay:
    """The committer of a transaction hands its rows to `relay_committed` at once; a
    periodic sweep publishes rows that stayed unsent for `grace` seconds (their process
    died, or Kafka was away). A row may thus go out twice, never zero times."""

    def __init__(self, store: OutboxStore, publisher: Publisher, interval: float = 1.0, grace: float = 3.0) -> None:
        self._store = store
        self._publisher = publisher
        self._interval = interval
        self._grace = grace

    async def _publish(self, rows: Sequence[OutboxRow]) -> None:
        # hand every row to the producer first, then wait for the acks together: awaiting
        # each publish in turn costs about ten times the CPU per message
        acks = [
            await self._publisher.publish(
                row.payload,
                topic=topic(row.topic),
                key=row.key.encode(),
                headers=event_headers(row.payload["type"], row.payload.get("commandId")),
                no_confirm=True,
            )
            for row in rows
        ]
        await asyncio.gather(*acks)

    async def relay_committed(self, rows: Sequence[OutboxRow]) -> None:
        """Publishes rows whose transaction just committed, then marks them sent."""
        if not rows:
            return
        try:
            await self._publish(rows)
            await self._store.mark_sent_alone([row.id for row in rows])
        except Exception:  # the sweep publishes them later
            log.exception("relaying %d committed events failed; the sweep will retry", len(rows))

    async def sweep_once(self) -> int:
        """Publishes one batch of rows left unsent; returns how many went out."""
        async with self._store.transaction() as session:
            rows = await self._store.claim_unsent(session, RELAY_BATCH, self._grace)
            if not rows:
                return 0
            await self._publish(rows)
            await self._store.mark_sent(session, [row.id for row in rows])
            return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self._interval
        while not stop.is_set():
            try:
                while await self.sweep_once() == RELAY_BATCH:
                    pass
                backoff = self._interval
            except Exception:  # Kafka or Postgres away: the rows stay unsent and are retried
                log.exception("outbox sweep failed; retrying in %.1fs", backoff)
                backoff = min(backoff * 2, 30.0)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
