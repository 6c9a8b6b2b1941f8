"""Events, kept 30 days, and the deliveries each one owes: written by the notifications
consumer from `billing.events` (billing/notifications is the only writer), read by the API.

An event is recorded once whatever number of times Kafka delivers it (its id is the
envelope's eventId); its deliveries are made in the same transaction, one per enabled
endpoint of its organization that subscribes to its type, due at once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import CreatedRange, Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.ids import new_id
from billing.models import Event, WebhookDelivery, WebhookEndpoint
from contracts.enums import WebhookEndpointStatus
from contracts.envelopes import EventEnvelope
from contracts.resources import Event as EventResource
from contracts.webhooks import ALL_EVENTS, OUTCOME_EVENTS

RETENTION: Final = timedelta(days=30)
# `type=invoice.*` in a list filter: every type under that prefix
WILDCARD: Final = ".*"


def event_data(envelope: EventEnvelope) -> dict[str, Any]:
    """The event's `data`: the resource as its API returns it. Handlers emit the resource
    after the change, so `previousAttributes` is null."""
    return {"object": envelope.data, "previousAttributes": None}


async def record_events(session: AsyncSession, envelopes: Sequence[EventEnvelope]) -> int:
    """Records the domain events among `envelopes` (not command outcomes) with their
    deliveries; a repeat of an event already recorded changes nothing. How many deliveries
    were made. Runs across organizations: every statement names the event's."""
    made = 0
    for envelope in envelopes:
        if envelope.type in OUTCOME_EVENTS:
            continue
        recorded = await session.scalar(
            insert(Event)
            .values(
                id=envelope.eventId,
                organization_id=envelope.organizationId,
                type=envelope.type,
                data=event_data(envelope),
                command_id=envelope.commandId,
                created_at=envelope.occurredAt,
            )
            .on_conflict_do_nothing()
            .returning(Event.id)
        )
        if recorded is None:
            continue
        endpoints = (
            await session.scalars(
                select(WebhookEndpoint.id).where(
                    WebhookEndpoint.organization_id == envelope.organizationId,
                    WebhookEndpoint.status == WebhookEndpointStatus.enabled,
                    or_(
                        WebhookEndpoint.enabled_events.contains([envelope.type]),
                        WebhookEndpoint.enabled_events.contains([ALL_EVENTS]),
                    ),
                )
            )
        ).all()
        if endpoints:
            await session.execute(
                insert(WebhookDelivery).values(
                    [
                        {
                            "id": new_id("webhook_delivery"),
                            "organization_id": envelope.organizationId,
                            "endpoint_id": endpoint_id,
                            "event_id": envelope.eventId,
                            "next_attempt_at": envelope.occurredAt,
                        }
                        for endpoint_id in endpoints
                    ]
                )
            )
            made += len(endpoints)
    return made


async def forget_old_events(session: AsyncSession, now: datetime) -> int:
    """Deletes the events older than 30 days, and their deliveries with them; how many."""
    result = await session.execute(delete(Event).where(Event.created_at < now - RETENTION))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a DELETE's CursorResult


def event_resource(event: Event) -> EventResource:
    return EventResource.model_validate(event)


async def get_event(session: AsyncSession, event_id: str) -> Event | None:
    return await get_one(session, Event, Event.id, event_id)


async def list_events(
    session: AsyncSession, page: PageRequest, *, types: Sequence[str] = (), created: CreatedRange | None = None
) -> Page[Event]:
    """`types` are exact names, or a prefix with WILDCARD (`invoice.*`)."""
    tenant_of(session)
    statement = select(Event)
    if types:
        exact = [name for name in types if not name.endswith(WILDCARD)]
        prefixes = [name.removesuffix("*") for name in types if name.endswith(WILDCARD)]
        statement = statement.where(
            or_(Event.type.in_(exact), *(Event.type.startswith(prefix, autoescape=True) for prefix in prefixes))
        )
    if created is not None:
        statement = created.apply(statement, Event.created_at)
    return await paginate(session, statement, Event, page, "event")
