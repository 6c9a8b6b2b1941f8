"""Webhook endpoint and redelivery commands: parse, call billing.notifications, report what happened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing import clock
from billing.models import WebhookEndpoint as WebhookEndpointRow
from billing.notifications import deliveries, endpoints
from consumers.registry import Applied, CommandRouter
from contracts.events import (
    WEBHOOK_ENDPOINT_CREATED,
    WEBHOOK_ENDPOINT_DELETED,
    WEBHOOK_ENDPOINT_UPDATED,
    EventType,
)
from contracts.resources import WebhookDelivery, WebhookEndpoint
from contracts.webhooks import (
    WebhookDeliveryRedeliver,
    WebhookEndpointCreateCommand,
    WebhookEndpointDelete,
    WebhookEndpointUpdateCommand,
    WebhookSecretRotateCommand,
)

router = CommandRouter()


def _applied(endpoint: WebhookEndpointRow, event: EventType[WebhookEndpoint]) -> Applied[WebhookEndpoint]:
    resource = WebhookEndpoint.model_validate(endpoint).model_dump(mode="json")
    return Applied("webhook_endpoint", resource, [event.of(resource)])


@router.handles(WebhookEndpointCreateCommand)
async def create(session: AsyncSession, command: WebhookEndpointCreateCommand) -> Applied[WebhookEndpoint]:
    return _applied(await endpoints.create_endpoint(session, command), WEBHOOK_ENDPOINT_CREATED)


@router.handles(WebhookEndpointUpdateCommand)
async def update(session: AsyncSession, command: WebhookEndpointUpdateCommand) -> Applied[WebhookEndpoint]:
    return _applied(await endpoints.update_endpoint(session, command.id, command.changes), WEBHOOK_ENDPOINT_UPDATED)


@router.handles(WebhookEndpointDelete)
async def delete(session: AsyncSession, command: WebhookEndpointDelete) -> Applied[WebhookEndpoint]:
    return _applied(await endpoints.delete_endpoint(session, command.id), WEBHOOK_ENDPOINT_DELETED)


@router.handles(WebhookSecretRotateCommand)
async def rotate_secret(session: AsyncSession, command: WebhookSecretRotateCommand) -> Applied[WebhookEndpoint]:
    endpoint = await endpoints.rotate_secret(session, command.id, command.secretEncrypted, command.previousExpiresAt)
    return _applied(endpoint, WEBHOOK_ENDPOINT_UPDATED)


@router.handles(WebhookDeliveryRedeliver)
async def redeliver(session: AsyncSession, command: WebhookDeliveryRedeliver) -> Applied[WebhookDelivery]:
    delivery = await deliveries.redeliver(session, command.id, clock.now())
    return Applied("webhook_delivery", WebhookDelivery.model_validate(delivery).model_dump(mode="json"))
