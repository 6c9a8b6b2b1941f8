"""Waits for command outcomes on `billing.events`.

Every API process reads all partitions of `billing.events` from the end (no consumer
group: each process must see the outcomes of its own requests) and resolves the waiter
registered under the event's commandId. A few other event types call back (`on_events`:
a key revoked or rolled through any API process empties this process's key cache); the
rest are skipped by header, without parsing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.envelopes import CommandOutcome
from contracts.settings import Settings
from producers.topics import BILLING_EVENTS, PARTITIONS, TopicSpec, ensure_topics, topic

log = logging.getLogger(__name__)


class KafkaRecord(Protocol):
    """What the listener reads of an aiokafka ConsumerRecord (aiokafka has no stubs)."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...
    @property
    def value(self) -> bytes: ...


class ReplyListener:
    def __init__(self, settings: Settings, on_events: Mapping[str, Callable[[], None]] | None = None) -> None:
        self._settings = settings
        self._on_events = dict(on_events or {})
        self._waiters: dict[str, list[asyncio.Future[CommandOutcome]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
            client_id="billing-api-replies",
        )
        name = topic(BILLING_EVENTS)
        counts = await ensure_topics(
            self._settings.kafka_bootstrap_servers, topics=[TopicSpec(BILLING_EVENTS, PARTITIONS[BILLING_EVENTS])]
        )
        await consumer.start()
        assigned = [TopicPartition(name, p) for p in range(counts[name])]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for partition in assigned:
            # resolve the end offsets now, so no outcome published after start is missed
            await consumer.position(partition)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()

    def expect(self, command_id: str) -> asyncio.Future[CommandOutcome]:
        future: asyncio.Future[CommandOutcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(command_id, []).append(future)
        return future

    def forget(self, command_id: str, future: asyncio.Future[CommandOutcome]) -> None:
        waiters = self._waiters.get(command_id, [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self._waiters.pop(command_id, None)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=100, max_records=1000)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading billing.events failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for record in records:
                    self._dispatch(record)

    def _dispatch(self, record: KafkaRecord) -> None:
        headers = dict(record.headers or ())
        event_type = headers.get("event-type", b"").decode()
        command_id = headers.get("command-id", b"").decode()
        if event_type in self._on_events:
            self._on_events[event_type]()
            return
        if not event_type.startswith("command.") or command_id not in self._waiters:
            return
        try:
            outcome = CommandOutcome.model_validate(json.loads(record.value)["data"])
        except Exception:
            log.exception("unreadable outcome event for %s", command_id)
            return
        for future in self._waiters.pop(command_id, []):
            if not future.done():
                future.set_result(outcome)
