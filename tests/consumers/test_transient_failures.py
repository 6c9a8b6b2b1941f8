"""Postgres away: the consumer retries with backoff and applies the commands once it is
back; nothing is skipped. Postgres is reached through a TCP relay that this test opens
only after the commands were published."""

from __future__ import annotations

import asyncio
import socket
import uuid

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from billing.models import Customer
from consumers.app import run_command_consumer
from contracts.customers import CustomerCreate
from contracts.envelopes import Actor, CommandEnvelope, utcnow
from contracts.settings import get_settings
from producers.publisher import create_broker, publish_command
from producers.topics import ensure_topics
from tests.api.conftest import new_tenant


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_commands_wait_for_postgres_and_are_applied_when_it_returns(
    database_url: str,
    session_factory,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", get_settings().kafka_topic_prefix + "pgdown.")
    await ensure_topics(timeout=20)
    tenant = await new_tenant(session_factory, "Postgres away")
    real = make_url(database_url)
    port = _free_port()
    monkeypatch.setenv("DATABASE_URL", real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False))

    broker = create_broker()
    await broker.start()
    for n in range(20):
        await publish_command(
            broker,
            CommandEnvelope(
                commandId=f"cmd_{uuid.uuid4().hex}",
                type=CustomerCreate.command_type,
                organizationId=tenant.organization_id,
                actor=Actor(type="system", id="test"),
                issuedAt=utcnow(),
                payload={"name": f"waited {n}"},
            ),
        )
    await broker.stop()

    stop, ready = asyncio.Event(), asyncio.Event()
    consumer = asyncio.create_task(run_command_consumer(stop, ready=ready))
    relay = None
    try:
        await asyncio.wait_for(ready.wait(), timeout=60)
        await asyncio.sleep(2.0)  # the consumer holds the batch and retries against a closed port
        async with session_factory() as session:
            assert (
                await session.scalar(
                    select(func.count()).select_from(Customer).where(Customer.organization_id == tenant.organization_id)
                )
                == 0
            )

        async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
            server_reader, server_writer = await asyncio.open_connection(real.host, real.port)
            await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))

        relay = await asyncio.start_server(forward, "127.0.0.1", port)
        for _ in range(300):
            async with session_factory() as session:
                count = await session.scalar(
                    select(func.count()).select_from(Customer).where(Customer.organization_id == tenant.organization_id)
                )
            if count == 20:
                break
            await asyncio.sleep(0.1)
        assert count == 20
    finally:
        stop.set()
        await asyncio.wait_for(consumer, timeout=30)
        if relay is not None:
            relay.close()
