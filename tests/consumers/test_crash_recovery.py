"""A consumer killed with SIGKILL in the middle of a burst, then restarted, applies every
command exactly once (real Kafka, real Postgres, a real `billing consume` process)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

from sqlalchemy import func, select

from billing.models import Customer, ProcessedCommand
from contracts.customers import CustomerCreate
from contracts.envelopes import Actor, CommandEnvelope, utcnow
from contracts.settings import PROJECT_ROOT, get_settings
from producers.publisher import create_broker, publish_command
from producers.topics import ensure_topics
from tests.api.conftest import new_tenant

COMMANDS = 2000


def start_consumer(env: dict[str, str], log_path: str) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 (the consumer process writes to it after we return)
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "consume"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def counts(session_factory, organization_id: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        customers = await session.scalar(
            select(func.count()).select_from(Customer).where(Customer.organization_id == organization_id)
        )
        commands = await session.scalar(
            select(func.count())
            .select_from(ProcessedCommand)
            .where(ProcessedCommand.organization_id == organization_id)
        )
    return customers, commands


async def test_sigkill_mid_burst_then_restart_applies_each_command_once(
    database_url: str,
    session_factory,
    tmp_path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    prefix = get_settings().kafka_topic_prefix + "crash."
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", prefix)
    await ensure_topics(timeout=20)
    tenant = await new_tenant(session_factory, "Crash test")
    env = {**os.environ, "KAFKA_TOPIC_PREFIX": prefix, "DATABASE_URL": database_url}
    log_path = str(tmp_path / "consumer.log")

    broker = create_broker()
    await broker.start()
    envelopes = [
        CommandEnvelope(
            commandId=f"cmd_crash_{uuid.uuid4().hex}",
            type=CustomerCreate.command_type,
            organizationId=tenant.organization_id,
            actor=Actor(type="system", id="crash-test"),
            issuedAt=utcnow(),
            payload={"name": f"Customer {i}", "metadata": {"n": str(i)}},
        )
        for i in range(COMMANDS)
    ]

    async def publish_burst() -> None:
        for start in range(0, COMMANDS, 50):
            await asyncio.gather(*(publish_command(broker, e) for e in envelopes[start : start + 50]))
            await asyncio.sleep(0.03)

    consumer = start_consumer(env, log_path)
    burst = asyncio.create_task(publish_burst())
    try:
        killed_at = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            applied, _ = await counts(session_factory, tenant.organization_id)
            if applied >= 200:
                consumer.send_signal(signal.SIGKILL)
                consumer.wait(timeout=10)
                killed_at = applied
                break
            await asyncio.sleep(0.01)
        assert killed_at is not None, f"the consumer applied nothing within 90 s; see {log_path}"
        assert killed_at < COMMANDS, "the kill came too late to be mid-burst"

        await burst
        # the same commands again: a producer retry or a replaying client must change nothing
        await asyncio.gather(*(publish_command(broker, e) for e in envelopes[:100]))

        consumer = start_consumer(env, log_path)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            applied, recorded = await counts(session_factory, tenant.organization_id)
            if applied >= COMMANDS and recorded >= COMMANDS:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything still in flight would show up as an extra row
        applied, recorded = await counts(session_factory, tenant.organization_id)
        assert (applied, recorded) == (COMMANDS, COMMANDS), f"after restart: {applied} customers; see {log_path}"
        async with session_factory() as session:
            names = (
                await session.scalars(select(Customer.name).where(Customer.organization_id == tenant.organization_id))
            ).all()
        assert sorted(names) == sorted(f"Customer {i}" for i in range(COMMANDS))
    finally:
        if consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
            try:
                consumer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                consumer.kill()
        await broker.stop()
