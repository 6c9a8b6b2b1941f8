"""Webhook deliveries: claimed by a sender, attempted outside any transaction, recorded.

A sender claims due deliveries by leasing them (a conditional UPDATE: two senders never
hold the same row), at most `per_endpoint` per endpoint in one claim, so one slow or dead
endpoint cannot fill a sender's slots. It then makes the HTTP request with no
transaction open, and records the attempt: the endpoint's row is locked for that, so of
two senders recording failures at once exactly one disables a failing endpoint and emits
its one `webhook_endpoint.disabled`. A sender that dies mid-request loses only its lease:
the delivery is due again once the lease runs out."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.errors import ResourceMissing
from billing.ids import new_id
from billing.models import Event, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from billing.notifications.endpoints import DISABLED_FOR_FAILING, signing_secrets_encrypted
from billing.notifications.events import event_resource
from billing.notifications.schedule import next_attempt, should_disable
from contracts.enums import WebhookDeliveryStatus, WebhookEndpointStatus
from contracts.resources import WebhookDelivery as WebhookDeliveryResource
from contracts.resources import WebhookDeliveryAttempt as WebhookDeliveryAttemptResource
from contracts.webhooks import WebhookDeliveryDetails

# longer than a request may take (15 s) plus the wait for its endpoint's slot
LEASE: Final = timedelta(seconds=60)
RESPONSE_BODY_KEPT: Final = 1000


@dataclass(frozen=True)
class DeliveryJob:
    """What a sender needs to make one attempt."""

    delivery_id: str
    organization_id: str
    endpoint_id: str
    url: str
    event_id: str
    # the event as GET /v1/events/{id} returns it
    body: bytes
    # encrypted, the current one first (billing/notifications/endpoints.signing_secrets_encrypted)
    secrets_encrypted: tuple[str, ...]


@dataclass(frozen=True)
class AttemptResult:
    attempted_at: datetime
    duration_ms: int
    response_status: int | None = None
    response_body: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        WebhookDelivery.status == WebhookDeliveryStatus.pending,
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
    )


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, per_endpoint: int, busy: Collection[str] = ()
) -> list[DeliveryJob]:
    """Leases up to `limit` due deliveries of enabled endpoints, earliest first, at most
    `per_endpoint` of any endpoint and none of the `busy` ones; across organizations."""
    ranked = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.next_attempt_at,
            func.row_number()
            .over(partition_by=WebhookDelivery.endpoint_id, order_by=WebhookDelivery.next_attempt_at)
            .label("rank"),
        )
        .join(
            WebhookEndpoint,
            and_(
                WebhookEndpoint.organization_id == WebhookDelivery.organization_id,
                WebhookEndpoint.id == WebhookDelivery.endpoint_id,
            ),
        )
        .where(_due(now), WebhookEndpoint.status == WebhookEndpointStatus.enabled)
    )
    if busy:
        ranked = ranked.where(WebhookDelivery.endpoint_id.not_in(list(busy)))
    chosen = ranked.subquery()
    ids = select(chosen.c.id).where(chosen.c.rank <= per_endpoint).order_by(chosen.c.next_attempt_at).limit(limit)
    leased = (
        await session.scalars(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids), _due(now))
            .values(leased_until=now + LEASE)
            .returning(WebhookDelivery.id),
            execution_options={"synchronize_session": False},
        )
    ).all()
    if not leased:
        return []
    rows = await session.execute(
        select(WebhookDelivery.id, WebhookEndpoint, Event)
        .join(
            WebhookEndpoint,
            and_(
                WebhookEndpoint.organization_id == WebhookDelivery.organization_id,
                WebhookEndpoint.id == WebhookDelivery.endpoint_id,
            ),
        )
        .join(
            Event, and_(Event.organization_id == WebhookDelivery.organization_id, Event.id == WebhookDelivery.event_id)
        )
        .where(WebhookDelivery.id.in_(leased))
        .order_by(WebhookDelivery.next_attempt_at)
    )
    return [
        DeliveryJob(
            delivery_id,
            endpoint.organization_id,
            endpoint.id,
            endpoint.url,
            event.id,
            event_resource(event).model_dump_json().encode(),
            tuple(signing_secrets_encrypted(endpoint, now)),
        )
        for delivery_id, endpoint, event in rows.all()
    ]


async def record_attempt(
    session: AsyncSession, job: DeliveryJob, result: AttemptResult, scale: float
) -> WebhookEndpoint | None:
    """Records one attempt and what follows from it: success, the next scheduled time, or
    failed for good; the endpoint's failing streak. The endpoint when this attempt
    disabled it (the caller emits `webhook_endpoint.disabled`), else None. A success,
    the common case, takes no lock on the endpoint: it clears a failing streak only if
    there is one (so concurrent successes to one endpoint do not queue on its row)."""
    if result.succeeded:
        await _record_success(session, job, result)
        return None
    endpoint = await session.scalar(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.organization_id == job.organization_id, WebhookEndpoint.id == job.endpoint_id)
        .with_for_update()
    )
    delivery = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.organization_id == job.organization_id, WebhookDelivery.id == job.delivery_id)
        .with_for_update()
    )
    if endpoint is None or delivery is None:
        return None  # deleted while the request was made
    session.add(_attempt_row(job, result))
    delivery.attempt_count += 1
    delivery.leased_until = None
    delivery.scheduled_attempts += 1
    delivery.next_attempt_at = next_attempt(
        delivery.created_at, delivery.scheduled_attempts, result.attempted_at, scale
    )
    if delivery.next_attempt_at is None:
        delivery.status = WebhookDeliveryStatus.failed
    if endpoint.failing_since is None:
        endpoint.failing_since = result.attempted_at
    if endpoint.status == WebhookEndpointStatus.enabled and should_disable(
        endpoint.failing_since, result.attempted_at, scale
    ):
        endpoint.status = WebhookEndpointStatus.disabled
        endpoint.disabled_reason = DISABLED_FOR_FAILING
        await session.flush()
        return endpoint
    return None


def _attempt_row(job: DeliveryJob, result: AttemptResult) -> WebhookDeliveryAttempt:
    return WebhookDeliveryAttempt(
        id=new_id("webhook_attempt"),
        organization_id=job.organization_id,
        delivery_id=job.delivery_id,
        attempted_at=result.attempted_at,
        duration_ms=result.duration_ms,
        succeeded=result.succeeded,
        response_status=result.response_status,
        response_body=result.response_body[:RESPONSE_BODY_KEPT] if result.response_body else None,
        error=result.error[:500] if result.error else None,
    )


async def _record_success(session: AsyncSession, job: DeliveryJob, result: AttemptResult) -> None:
    delivered = await session.scalar(
        update(WebhookDelivery)
        .where(WebhookDelivery.organization_id == job.organization_id, WebhookDelivery.id == job.delivery_id)
        .values(
            status=WebhookDeliveryStatus.succeeded,
            next_attempt_at=None,
            leased_until=None,
            attempt_count=WebhookDelivery.attempt_count + 1,
        )
        .returning(WebhookDelivery.id),
        execution_options={"synchronize_session": False},
    )
    if delivered is None:
        return  # deleted while the request was made
    session.add(_attempt_row(job, result))
    await session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.organization_id == job.organization_id,
            WebhookEndpoint.id == job.endpoint_id,
            WebhookEndpoint.failing_since.is_not(None),
        )
        .values(failing_since=None),
        execution_options={"synchronize_session": False},
    )


async def redeliver(session: AsyncSession, delivery_id: str, now: datetime) -> WebhookDelivery:
    """Makes a delivery pending and due at once, its retry schedule started over (within
    the three days from its event, it is retried on failure again)."""
    delivery = await require_delivery(session, delivery_id, for_update=True)
    delivery.status = WebhookDeliveryStatus.pending
    delivery.next_attempt_at = now
    delivery.leased_until = None
    delivery.scheduled_attempts = 0
    await session.flush()
    return delivery


async def require_delivery(session: AsyncSession, delivery_id: str, *, for_update: bool = False) -> WebhookDelivery:
    delivery = await get_one(session, WebhookDelivery, WebhookDelivery.id, delivery_id, for_update=for_update)
    if delivery is None:
        raise ResourceMissing("webhook_delivery", delivery_id)
    return delivery


async def list_deliveries(
    session: AsyncSession, page: PageRequest, *, endpoint_id: str | None = None, event_id: str | None = None
) -> Page[WebhookDelivery]:
    tenant_of(session)
    statement = select(WebhookDelivery)
    if endpoint_id is not None:
        statement = statement.where(WebhookDelivery.endpoint_id == endpoint_id)
    if event_id is not None:
        statement = statement.where(WebhookDelivery.event_id == event_id)
    return await paginate(session, statement, WebhookDelivery, page, "webhook_delivery")


async def attempts_of(session: AsyncSession, delivery_ids: Collection[str]) -> dict[str, list[WebhookDeliveryAttempt]]:
    """Each delivery's attempts, oldest first."""
    tenant_of(session)
    rows = await session.scalars(
        select(WebhookDeliveryAttempt)
        .where(WebhookDeliveryAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(WebhookDeliveryAttempt.attempted_at, WebhookDeliveryAttempt.id)
    )
    found: dict[str, list[WebhookDeliveryAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    for attempt in rows:
        found[attempt.delivery_id].append(attempt)
    return found


async def with_attempts(session: AsyncSession, rows: Collection[WebhookDelivery]) -> list[WebhookDeliveryDetails]:
    """The deliveries as the API returns them: each with its attempts inline."""
    attempts = await attempts_of(session, [row.id for row in rows])
    return [
        WebhookDeliveryDetails(
            **WebhookDeliveryResource.model_validate(row).model_dump(),
            attempts=[WebhookDeliveryAttemptResource.model_validate(attempt) for attempt in attempts[row.id]],
        )
        for row in rows
    ]
