"""The notifications consumer on real Kafka and Postgres: what is not an event on
`billing.events` is skipped and the events around it are recorded; an endpoint whose
secret this deployment cannot decrypt gets a failed attempt, and the sender goes on. (The
payment worker reads `billing.events` through the same consumers/subscribers.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from billing import clock
from billing.models import Event
from billing.notifications.deliveries import DeliveryJob
from billing.organizations.stripe_account import ensure_keyring
from consumers.notifications import attempt_delivery
from contracts.envelopes import EventEnvelope, new_event_id
from contracts.settings import get_settings
from producers.publisher import create_broker
from producers.topics import BILLING_EVENTS, ensure_topics, topic
from tests.api.conftest import new_tenant, notifications_running


async def test_a_message_that_is_not_an_event_does_not_stop_the_recorder(session_factory: Any) -> None:
    await ensure_topics(get_settings().kafka_bootstrap_servers, timeout=20)
    tenant = await new_tenant(session_factory, "Not only events")
    events = [
        EventEnvelope(
            eventId=new_event_id(),
            type="customer.created",
            organizationId=tenant.organization_id,
            occurredAt=clock.now(),
            data={"id": f"cus_{number}"},
        )
        for number in range(2)
    ]
    broker = create_broker(get_settings())
    await broker.start()
    try:
        key = tenant.organization_id.encode()
        for body in (
            events[0].model_dump_json().encode(),
            b"not json",
            b'{"type": 3}',
            events[1].model_dump_json().encode(),
        ):
            await broker.publish(body, topic=topic(BILLING_EVENTS), key=key)  # one partition: in this order
    finally:
        await broker.stop()
    async with notifications_running():
        async with asyncio.timeout(30):
            while True:
                async with session_factory() as session:
                    ids = [event.eventId for event in events]
                    recorded = set((await session.scalars(select(Event.id).where(Event.id.in_(ids)))).all())
                if recorded == {event.eventId for event in events}:
                    break
                await asyncio.sleep(0.05)


async def test_a_secret_that_cannot_be_decrypted_is_a_failed_attempt() -> None:
    job = DeliveryJob("whdel_1", "org_1", "we_1", "http://127.0.0.1:9/hook", "evt_1", b"{}", ("not a token",))
    async with httpx.AsyncClient() as client:
        result = await attempt_delivery(client, job, ensure_keyring(get_settings()), allow_private=True)
    assert not result.succeeded and result.response_status is None
    assert result.error == "the endpoint's signing secret cannot be decrypted with this deployment's keys"
