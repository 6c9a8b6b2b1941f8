"""The one Kafka publisher: a FastStream KafkaBroker with acks=all and an idempotent
producer. Messages are keyed by organization, so one tenant's messages stay in order.

Every process publishes through `Publisher`, which replaces the broker's producer after a
fatal idempotence error: aiokafka's sender stops for good on one (after a broker restart
the broker may answer OutOfOrderSequenceNumber or UnknownProducerId for the producer's old
id), and every later send fails with the same error until the process restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from faststream.kafka import KafkaBroker
from faststream.kafka.publisher.producer import AioKafkaFastProducerImpl
from faststream.kafka.publisher.state import RealProducer

from contracts.envelopes import CommandEnvelope
from contracts.settings import Settings, get_settings
from producers.topics import BILLING_COMMANDS, topic

log = logging.getLogger(__name__)

FATAL_PRODUCER_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)
# a producer that cannot stop (its broker away) is dropped after this long
STOP_TIMEOUT_SECONDS = 5.0
# waits between attempts to start a broker while Kafka is away: doubling up to the last
START_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


def create_broker(settings: Settings | None = None) -> KafkaBroker:
    settings = settings or get_settings()
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        # no linger: a request's command (and a batch's events) go out at once; under load
        # the producer batches whatever queued while a request to the broker was in flight.
        # linger_ms=1 cost ~8 ms per request end to end (the API -> consumer -> API round trip)
        linger_ms=0,
        request_timeout_ms=10_000,
        client_id="billing",
        # FastStream's per-message access log ("Received", "Processed") at DEBUG: at INFO it
        # writes two lines per batch on the hot path
        log_level=logging.DEBUG,
    )


async def start_broker(broker: KafkaBroker, stop: asyncio.Event, what: str) -> bool:
    """Starts `broker` (its producer and subscribers), waiting for Kafka while it is away:
    a consumer process started during an outage, or restarted by a supervisor then, waits
    for the broker rather than exiting. False if `stop` was set first."""
    attempt = 0
    while not stop.is_set():
        try:
            await broker.start()
            return True
        except (KafkaError, OSError) as error:
            delay = START_RETRY_SECONDS[min(attempt, len(START_RETRY_SECONDS) - 1)]
            log.warning("%s: Kafka is not reachable (%r); trying again in %.1f s", what, error, delay)
            with contextlib.suppress(Exception):  # what started of it is dropped either way
                await broker.stop()
        attempt += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    return False


class Publisher:
    """`broker.publish` with the same arguments, and a producer that heals: when a send
    fails with a fatal idempotence error (or finds the producer dead or missing), the
    producer is stopped and a new one started (a new producer id, fresh sequences), once
    for all the sends that saw the same producer fail. The failed send still raises: the
    caller answers or retries it as any other Kafka failure."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self._lock = asyncio.Lock()
        self._generation = 0
        self.replacements = 0

    async def publish(
        self,
        message: Any,
        topic: str,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: dict[str, str] | None = None,
        no_confirm: bool = False,
    ) -> Any:
        """As `KafkaBroker.publish`; with `no_confirm` the returned awaitable is the ack."""
        generation = self._generation
        if not self._producer_alive():
            await self._replace(generation)
            if not self._producer_alive():
                raise KafkaConnectionError("no Kafka producer (the broker is away); the next send tries again")
            generation = self._generation
        try:
            sent = await self.broker.publish(
                message, topic=topic, key=key, partition=partition, headers=headers, no_confirm=no_confirm
            )
        except Exception as error:
            await self._after_failure(error, generation)
            raise
        if no_confirm:
            return asyncio.ensure_future(self._confirmed(sent, generation))
        return sent

    async def _confirmed(self, ack: Any, generation: int) -> Any:
        try:
            return await ack
        except Exception as error:
            await self._after_failure(error, generation)
            raise

    async def _after_failure(self, error: Exception, generation: int) -> None:
        if isinstance(error, FATAL_PRODUCER_ERRORS) or not self._producer_alive():
            await self._replace(generation)

    def _fast_producer(self) -> AioKafkaFastProducerImpl | None:
        """FastStream's wrapper of the aiokafka producer; None before the broker starts
        (its config holds a placeholder then)."""
        state = self.broker.config.producer
        return state if isinstance(state, AioKafkaFastProducerImpl) else None

    def _aiokafka_producer(self) -> AIOKafkaProducer | None:
        state = self._fast_producer()
        # between a disconnect and a connect the wrapper holds an empty state, whose
        # `producer` raises rather than answering None
        if state is None or not isinstance(state._producer, RealProducer):
            return None
        return state._producer.producer

    def _producer_alive(self) -> bool:
        producer = self._aiokafka_producer()
        if producer is None or producer._closed:
            return False
        sender = producer._sender.sender_task
        txn = producer._txn_manager
        return not (sender is not None and sender.done()) and not (txn is not None and txn.is_fatal_error())

    async def _replace(self, generation: int) -> None:
        async with self._lock:
            if generation != self._generation:
                return  # another send replaced it already
            self._generation += 1
            state = self._fast_producer()
            if state is None:
                raise KafkaConnectionError("no Kafka producer: the broker has not started")
            log.warning("replacing the Kafka producer (fatal idempotence error, or dead)")
            try:
                await asyncio.wait_for(state.disconnect(), STOP_TIMEOUT_SECONDS)
            except Exception as error:  # it is dropped either way
                log.warning("stopping the old Kafka producer failed: %r", error)
            new = AIOKafkaProducer(**self.broker._connection_kwargs)
            try:
                await state.connect(new, serializer=state.serializer, codec=state.codec)
            except Exception as error:
                await new.stop()
                # left without a producer: the next send tries again
                raise KafkaConnectionError(f"no Kafka producer: {error!r}") from error
            self.replacements += 1

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()


def event_headers(event_type: str, command_id: str | None) -> dict[str, str]:
    # readers that only want some event types can skip the others without parsing JSON
    headers = {"event-type": event_type}
    if command_id:
        headers["command-id"] = command_id
    return headers


async def publish_command(publisher: Publisher | KafkaBroker, envelope: CommandEnvelope) -> None:
    await publisher.publish(
        envelope.model_dump_json().encode(),
        topic=topic(BILLING_COMMANDS),
        key=envelope.organizationId.encode(),
        headers={"command-type": envelope.type, "command-id": envelope.commandId},
    )
