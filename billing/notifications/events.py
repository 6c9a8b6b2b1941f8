"""Events, kept 30 days, and the deliveries each one owes: written by the notifications
consumer from `billing.events` (billing/notifications is the only writer), read by the API.

An event is recorded once whatever number of times Kafka delivers it (its id is the
envelope's eventId); its deliveries are made in the same transaction, one per enabled
endpoint of its organization that subscribes to its type and existed when it occurred, due
at once."""

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
# rows of one INSERT: far below Postgres' 32,767 parameters
DELIVERIES_PER_INSERT: Final = 1000


def event_data(envelope: EventEnvelope) -> dict[str, Any]:
    """The event's `data`: the resource as its API returns it. Handlers emit the resource
    after the change, so `previousAttributes` is null."""
    return {"object": envelope.data, "previousAttributes": None}


def subscribes(enabled_events: Sequence[str], event_type: str) -> bool:
    return ALL_EVENTS in enabled_events or event_type in enabled_events


async def record_events(session: AsyncSession, envelopes: Sequence[EventEnvelope]) -> int:
    """Records the domain events among `envelopes` (not command outcomes) with their
    deliveries, in a few statements whatever their number; a repeat of an event already
    recorded changes nothing. How many deliveries were made. Runs across organizations:
    every row names its event's."""
    events = list(
        {envelope.eventId: envelope for envelope in envelopes if envelope.type not in OUTCOME_EVENTS}.values()
    )
    if not events:
        return 0
    inserted = await session.scalars(
        insert(Event)
        .values(
            [
                {
                    "id": envelope.eventId,
                    "organization_id": envelope.organizationId,
                    "type": envelope.type,
                    "data": event_data(envelope),
                    "command_id": envelope.commandId,
                    "created_at": envelope.occurredAt,
                }
                for envelope in events
            ]
        )
        .on_conflict_do_nothing()
        .returning(Event.id)
    )
    recorded = set(inserted.all())
    fresh = [envelope for envelope in events if envelope.eventId in recorded]
    if not fresh:
        return 0
    endpoints = (
        await session.execute(
            select(
                WebhookEndpoint.organization_id,
                WebhookEndpoint.id,
                WebhookEndpoint.enabled_events,
                WebhookEndpoint.created_at,
            ).where(
                WebhookEndpoint.organization_id.in_({envelope.organizationId for envelope in fresh}),
                WebhookEndpoint.status == WebhookEndpointStatus.enabled,
            )
        )
    ).all()
    deliveries = [
        {
            "id": new_id("webhook_delivery"),
            "organization_id": envelope.organizationId,
            "endpoint_id": endpoint_id,
            "event_id": envelope.eventId,
            "next_attempt_at": envelope.occurredAt,
        }
        for envelope in fresh
        for organization_id, endpoint_id, enabled_events, created_at in endpoints
        # as in Stripe, an endpoint gets the events from its creation on (a backlog recorded
        # late, e.g. after downtime, is not sent to endpoints made since)
        if organization_id == envelope.organizationId
        and created_at <= envelope.occurredAt
        and subscribes(enabled_events, envelope.type)
    ]
    for first in range(0, len(deliveries), DELIVERIES_PER_INSERT):
        await session.execute(insert(WebhookDelivery).values(deliveries[first : first + DELIVERIES_PER_INSERT]))
    return len(deliveries)


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
