"""The outbox relay: publishes the rows of the transactional outbox to Kafka after their
transaction committed, so an event goes out if and only if its change was committed (at
least once; readers dedupe on eventId)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from faststream.kafka import KafkaBroker

from producers.publisher import event_headers
from producers.topics import topic

log = logging.getLogger(__name__)

RELAY_BATCH = 500


class OutboxRow(Protocol):
    id: int
    topic: str
    key: str
    payload: dict[str, Any]


class OutboxStore(Protocol):
    """Where the rows live (billing/outbox.py over Postgres)."""

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    claim_unsent: Callable[[Any, int], Awaitable[Sequence[OutboxRow]]]
    mark_sent: Callable[[Any, Sequence[int]], Awaitable[None]]


class OutboxRelay:
    """`kick()` after a commit relays at once; a periodic pass picks up rows left by a
    process that died between its commit and its relay."""

    def __init__(self, store: OutboxStore, broker: KafkaBroker, interval: float = 0.5) -> None:
        self._store = store
        self._broker = broker
        self._interval = interval
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        """Publishes one batch; returns how many rows went out."""
        async with self._store.transaction() as session:
            rows = await self._store.claim_unsent(session, RELAY_BATCH)
            if not rows:
                return 0
            await asyncio.gather(
                *(
                    self._broker.publish(
                        row.payload,
                        topic=topic(row.topic),
                        key=row.key.encode(),
                        headers=event_headers(row.payload["type"], row.payload.get("commandId")),
                    )
                    for row in rows
                )
            )
            await self._store.mark_sent(session, [row.id for row in rows])
            return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                while await self.relay_once() == RELAY_BATCH:
                    pass
                backoff = 0.1
            except Exception:  # Kafka or Postgres away: the rows stay unsent and are retried
                log.exception("outbox relay failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            except TimeoutError:
                pass
