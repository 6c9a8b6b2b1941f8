"""The outbox relay over real Postgres and Kafka: rows left unsent by a committer that
died are swept out after the grace period, once, and marked sent."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer
from sqlalchemy import insert, select, update

from billing.delivery.outbox import PostgresOutboxStore, outbox_row
from billing.models import Outbox
from contracts.envelopes import EventEnvelope, new_event_id, utcnow
from contracts.settings import get_settings
from producers.publisher import Publisher, create_broker
from producers.relay import OutboxRelay
from producers.topics import BILLING_EVENTS, ensure_topics, topic


async def test_the_sweep_publishes_rows_a_dead_committer_left_behind(session_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", get_settings().kafka_topic_prefix + "sweep.")
    await ensure_topics(timeout=20)
    organization = f"org_sweep_{uuid.uuid4().hex[:8]}"
    events = [
        EventEnvelope(
            eventId=new_event_id(),
            type="customer.created",
            organizationId=organization,
            occurredAt=utcnow(),
            data={"n": n},
        )
        for n in range(3)
    ]
    async with session_factory() as session, session.begin():
        ids = (
            await session.scalars(insert(Outbox).returning(Outbox.id), [outbox_row(e, BILLING_EVENTS) for e in events])
        ).all()
        # as if committed a minute ago by a process that died before relaying
        await session.execute(
            update(Outbox).where(Outbox.id.in_(ids)).values(created_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    reader = AIOKafkaConsumer(
        topic(BILLING_EVENTS),
        bootstrap_servers=get_settings().kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await reader.start()
    broker = create_broker()
    await broker.start()
    try:
        relay = OutboxRelay(PostgresOutboxStore(session_factory), Publisher(broker), grace=3.0)
        assert await relay.sweep_once() >= 3
        assert await relay.sweep_once() == 0  # marked sent: not published again
        seen: list[str] = []
        async with asyncio.timeout(20):
            while len([e for e in seen if e in {ev.eventId for ev in events}]) < 3:
                for records in (await reader.getmany(timeout_ms=200)).values():
                    seen += [json.loads(r.value)["eventId"] for r in records]
        assert sorted(e for e in seen if e in {ev.eventId for ev in events}) == sorted(ev.eventId for ev in events)
        async with session_factory() as session:
            sent = (await session.scalars(select(Outbox.sent_at).where(Outbox.id.in_(ids)))).all()
        assert all(sent)
    finally:
        await broker.stop()
        await reader.stop()
