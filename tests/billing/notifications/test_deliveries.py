"""Delivery bookkeeping on the real Postgres: an event is recorded once with one delivery
per subscribed endpoint; a claim leases it (a second claim finds nothing); a failure is
due again on the schedule; an endpoint failing long enough is disabled exactly once; a
success ends its failing streak."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing import clock
from billing.ids import new_id
from billing.models import WebhookDelivery, WebhookEndpoint
from billing.notifications.deliveries import AttemptResult, claim_due, record_attempt
from billing.notifications.events import record_events
from contracts.enums import WebhookDeliveryStatus, WebhookEndpointStatus
from contracts.envelopes import EventEnvelope, new_event_id
from tests.api.conftest import new_tenant

# three days of retries in 0.26 s, five days before disabling in 0.43 s
SCALE = 0.000001


async def endpoint(session_factory: Any, organization_id: str, events: list[str]) -> str:
    endpoint_id = new_id("webhook_endpoint")
    async with session_factory() as session, session.begin():
        session.add(
            WebhookEndpoint(
                id=endpoint_id,
                organization_id=organization_id,
                url="http://127.0.0.1:9/hook",
                enabled_events=events,
                status=WebhookEndpointStatus.enabled,
                metadata_={},
                secret_encrypted="not used here",
            )
        )
    return endpoint_id


def event(organization_id: str, event_type: str = "customer.created") -> EventEnvelope:
    return EventEnvelope(
        eventId=new_event_id(),
        type=event_type,
        organizationId=organization_id,
        occurredAt=clock.now(),
        data={"id": "cus_1"},
    )


async def test_an_event_is_recorded_once_with_a_delivery_per_subscribed_endpoint(session_factory: Any) -> None:
    tenant = await new_tenant(session_factory, "Deliveries")
    every = await endpoint(session_factory, tenant.organization_id, ["*"])
    customers = await endpoint(session_factory, tenant.organization_id, ["customer.created"])
    await endpoint(session_factory, tenant.organization_id, ["invoice.paid"])
    created = event(tenant.organization_id)
    async with session_factory() as session, session.begin():
        assert await record_events(session, [created]) == 2
        assert await record_events(session, [created]) == 0  # Kafka delivered it twice
    async with session_factory() as session:
        rows = (await session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == created.eventId))).all()
    assert {row.endpoint_id for row in rows} == {every, customers}


async def test_an_endpoint_gets_no_event_from_before_it_existed(session_factory: Any) -> None:
    tenant = await new_tenant(session_factory, "Late endpoint")
    await endpoint(session_factory, tenant.organization_id, ["*"])
    earlier = event(tenant.organization_id).model_copy(update={"occurredAt": clock.now() - timedelta(minutes=5)})
    async with session_factory() as session, session.begin():
        assert await record_events(session, [earlier, event(tenant.organization_id)]) == 1


async def test_failures_are_retried_on_schedule_and_the_endpoint_is_disabled_once(session_factory: Any) -> None:
    tenant = await new_tenant(session_factory, "Failing endpoint")
    endpoint_id = await endpoint(session_factory, tenant.organization_id, ["*"])
    async with session_factory() as session, session.begin():
        await record_events(session, [event(tenant.organization_id) for _ in range(3)])
    now = clock.now() + timedelta(seconds=1)
    async with session_factory() as session, session.begin():
        jobs = [job for job in await claim_due(session, now, 100, 2) if job.endpoint_id == endpoint_id]
    assert len(jobs) == 2  # at most two of one endpoint per claim
    async with session_factory() as session, session.begin():
        assert [
            job for job in await claim_due(session, now, 100, 2) if job.delivery_id in {j.delivery_id for j in jobs}
        ] == []
    disabled = []
    for index, job in enumerate(jobs * 2):
        failed = AttemptResult(now + timedelta(seconds=index), 3, response_status=500, response_body="down")
        async with session_factory() as session, session.begin():
            disabled.append(await record_attempt(session, job, failed, SCALE))
    assert [item is not None for item in disabled].count(True) == 1
    async with session_factory() as session:
        row = await session.get(WebhookEndpoint, endpoint_id)
        delivery = await session.get(WebhookDelivery, jobs[0].delivery_id)
    assert row is not None and row.status == WebhookEndpointStatus.disabled and row.disabled_reason == "failing"
    assert delivery is not None and delivery.attempt_count == 2
    async with session_factory() as session, session.begin():
        assert [
            job for job in await claim_due(session, now + timedelta(days=1), 100, 2) if job.endpoint_id == endpoint_id
        ] == []


async def test_a_success_ends_the_failing_streak(session_factory: Any) -> None:
    tenant = await new_tenant(session_factory, "Recovering endpoint")
    endpoint_id = await endpoint(session_factory, tenant.organization_id, ["*"])
    async with session_factory() as session, session.begin():
        await record_events(session, [event(tenant.organization_id)])
    now = clock.now() + timedelta(seconds=1)
    async with session_factory() as session, session.begin():
        (job,) = [job for job in await claim_due(session, now, 100, 4) if job.endpoint_id == endpoint_id]
    async with session_factory() as session, session.begin():
        await record_attempt(session, job, AttemptResult(now, 2, error="connection refused"), 1.0)
    async with session_factory() as session:
        delivery = await session.get(WebhookDelivery, job.delivery_id)
        assert delivery is not None and delivery.status == WebhookDeliveryStatus.pending
        assert delivery.next_attempt_at == now + timedelta(seconds=5)
    async with session_factory() as session, session.begin():
        await record_attempt(session, job, AttemptResult(now + timedelta(seconds=5), 2, response_status=204), 1.0)
    async with session_factory() as session:
        delivery = await session.get(WebhookDelivery, job.delivery_id)
        row = await session.get(WebhookEndpoint, endpoint_id)
    assert delivery is not None and delivery.status == WebhookDeliveryStatus.succeeded
    assert row is not None and row.failing_since is None
