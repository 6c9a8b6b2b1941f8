"""Webhook endpoints: tenant-scoped reads for the API, and the writes the consumers call
inside a command's transaction (never committing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.models import WebhookEndpoint
from billing.requests.patch import merge_metadata, parse_changes
from contracts.enums import WebhookEndpointStatus
from contracts.webhooks import WebhookEndpointCreateCommand, WebhookEndpointUpdate

_COLUMNS = {"enabledEvents": "enabled_events"}
DISABLED_BY_ORGANIZATION = "manual"
DISABLED_FOR_FAILING = "failing"


async def get_endpoint(session: AsyncSession, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint | None:
    return await get_one(session, WebhookEndpoint, WebhookEndpoint.id, endpoint_id, for_update=for_update)


async def require_endpoint(session: AsyncSession, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id, for_update=for_update)
    if endpoint is None:
        raise ResourceMissing("webhook_endpoint", endpoint_id)
    return endpoint


async def list_endpoints(session: AsyncSession, page: PageRequest) -> Page[WebhookEndpoint]:
    tenant_of(session)
    return await paginate(session, select(WebhookEndpoint), WebhookEndpoint, page, "webhook_endpoint")


async def create_endpoint(session: AsyncSession, command: WebhookEndpointCreateCommand) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        id=command.id,
        organization_id=tenant_of(session),
        url=command.url,
        description=command.description,
        enabled_events=list(command.enabledEvents),
        status=WebhookEndpointStatus.enabled,
        metadata_=dict(command.metadata),
        secret_encrypted=command.secretEncrypted,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def update_endpoint(session: AsyncSession, endpoint_id: str, changes: dict[str, Any]) -> WebhookEndpoint:
    """`changes` holds only the fields the client sent. Enabling an endpoint again clears
    its failing streak: its pending deliveries go out again."""
    update = parse_changes(WebhookEndpointUpdate, changes)
    endpoint = await require_endpoint(session, endpoint_id, for_update=True)
    for field in update.model_fields_set:
        value = getattr(update, field)
        if field in ("url", "enabledEvents", "status") and value is None:
            raise InvalidRequest(f"{field} cannot be null.", code="parameter_invalid", param=field)
        if field == "metadata":
            endpoint.metadata_ = merge_metadata(endpoint.metadata_, value)
        elif field == "status":
            status = WebhookEndpointStatus(value)
            if status != endpoint.status:
                endpoint.status = status
                endpoint.disabled_reason = (
                    DISABLED_BY_ORGANIZATION if status == WebhookEndpointStatus.disabled else None
                )
                endpoint.failing_since = None
        else:
            setattr(endpoint, _COLUMNS.get(field, field), value)
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
    """Deletes the endpoint and its deliveries (their log goes with it)."""
    endpoint = await require_endpoint(session, endpoint_id, for_update=True)
    await session.delete(endpoint)
    await session.flush()
    return endpoint


async def rotate_secret(
    session: AsyncSession, endpoint_id: str, secret_encrypted: str, previous_expires_at: datetime
) -> WebhookEndpoint:
    """The new secret signs from now on; the current one beside it until `previous_expires_at`."""
    endpoint = await require_endpoint(session, endpoint_id, for_update=True)
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = previous_expires_at
    endpoint.secret_encrypted = secret_encrypted
    await session.flush()
    return endpoint


def signing_secrets_encrypted(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The encrypted secrets that sign a delivery at `now`: the current one, and the one
    before a rotation while its overlap lasts."""
    secrets = [endpoint.secret_encrypted]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and now < expires:
        secrets.append(endpoint.previous_secret_encrypted)
    return secrets
