"""/v1/webhook-endpoints: where an organization receives its events, signed per the
Standard Webhooks specification. The signing secret is made here, crosses Kafka
encrypted, and is shown in the response of the write that made it (create, rotate)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Controller, Response, delete, get, patch, post
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import list_response, replayed_write, run_command
from billing import clock
from billing.db.pagination import PageRequest
from billing.ids import new_id
from billing.notifications import endpoints
from billing.notifications.addresses import check_saved_url
from billing.notifications.signing import new_secret
from billing.secrets.encryption import Keyring
from contracts.resources import WebhookEndpoint
from contracts.settings import Settings
from contracts.webhooks import (
    WebhookEndpointCreate,
    WebhookEndpointCreateCommand,
    WebhookEndpointDelete,
    WebhookEndpointUpdate,
    WebhookEndpointUpdateCommand,
    WebhookEndpointWithSecret,
    WebhookSecretRotate,
    WebhookSecretRotateCommand,
)


async def _with_signing_secret(
    response: Response[Any], db: AsyncSession, keyring: Keyring
) -> Response[WebhookEndpointWithSecret]:
    """The endpoint as the command returned it, with its current secret read back from
    its row: a retry with the same Idempotency-Key shows the secret the first request
    made, not one this request made up."""
    if response.status_code in (200, 201):
        row = await endpoints.require_endpoint(db, response.content["id"])
        response.content = {**response.content, "secret": keyring.decrypt(row.secret_encrypted)}
    return response


class WebhookEndpointController(Controller):
    path = "/v1/webhook-endpoints"
    tags = ["notifications"]

    @post(
        "/",
        summary="Create a webhook endpoint; its signing secret is in this response",
        description=(
            "Deliveries are signed per the Standard Webhooks specification (webhook-id, webhook-timestamp, "
            "webhook-signature). Outside the local stack the URL must reach a public address."
        ),
        status_code=201,
    )
    async def create(
        self,
        data: WebhookEndpointCreate,
        caller: Caller,
        bus: CommandBus,
        db: AsyncSession,
        keyring: Keyring,
        settings: Settings,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[WebhookEndpointWithSecret]:
        earlier = await bus.earlier(caller.organization_id, idempotency_key)
        replayed = replayed_write(
            earlier,
            WebhookEndpointCreateCommand.command_type,
            idempotency_key,
            lambda first: all(first.get(field) == value for field, value in data.model_dump(mode="json").items()),
        )
        if replayed is not None:
            return await _with_signing_secret(replayed, db, keyring)
        await check_saved_url(data.url, allow_private=settings.local)
        command = WebhookEndpointCreateCommand(
            id=new_id("webhook_endpoint"),
            secretEncrypted=keyring.encrypt(new_secret()),
            **data.model_dump(),
        )
        response = await run_command(bus, caller, command, idempotency_key, created=True, earlier=earlier)
        return await _with_signing_secret(response, db, keyring)

    @get("/{endpoint_id:str}", summary="Retrieve a webhook endpoint (without its secret)")
    async def retrieve(self, endpoint_id: str, db: AsyncSession) -> WebhookEndpoint:
        return WebhookEndpoint.model_validate(await endpoints.require_endpoint(db, endpoint_id))

    @get("/", summary="List webhook endpoints, newest first")
    async def index(self, db: AsyncSession, page_request: PageRequest) -> dict[str, Any]:
        return list_response(await endpoints.list_endpoints(db, page_request), WebhookEndpoint, self.path)

    @patch(
        "/{endpoint_id:str}",
        summary="Update a webhook endpoint: url, events, description, metadata; disable or enable it",
        description="Enabling a disabled endpoint again clears its failing streak: its pending deliveries go out.",
    )
    async def update(
        self,
        endpoint_id: str,
        data: WebhookEndpointUpdate,
        caller: Caller,
        bus: CommandBus,
        db: AsyncSession,
        settings: Settings,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[WebhookEndpoint]:
        await endpoints.require_endpoint(db, endpoint_id)  # an unknown id is refused before any command
        if data.url is not None:
            await check_saved_url(data.url, allow_private=settings.local)
        command = WebhookEndpointUpdateCommand(id=endpoint_id, changes=data.model_dump(mode="json", exclude_unset=True))
        return await run_command(bus, caller, command, idempotency_key)

    @delete("/{endpoint_id:str}", summary="Delete a webhook endpoint and its delivery log", status_code=200)
    async def remove(
        self,
        endpoint_id: str,
        caller: Caller,
        bus: CommandBus,
        db: AsyncSession,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[WebhookEndpoint]:
        await endpoints.require_endpoint(db, endpoint_id)
        return await run_command(bus, caller, WebhookEndpointDelete(id=endpoint_id), idempotency_key)

    @post(
        "/{endpoint_id:str}/rotate-secret",
        summary="Rotate the signing secret; the old one still signs, beside it, for expiresInHours",
        status_code=200,
    )
    async def rotate_secret(
        self,
        endpoint_id: str,
        data: WebhookSecretRotate,
        caller: Caller,
        bus: CommandBus,
        db: AsyncSession,
        keyring: Keyring,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[WebhookEndpointWithSecret]:
        earlier = await bus.earlier(caller.organization_id, idempotency_key)
        replayed = replayed_write(
            earlier,
            WebhookSecretRotateCommand.command_type,
            idempotency_key,
            lambda first: first.get("id") == endpoint_id,
            created=False,
        )
        if replayed is not None:
            return await _with_signing_secret(replayed, db, keyring)
        await endpoints.require_endpoint(db, endpoint_id)
        command = WebhookSecretRotateCommand(
            id=endpoint_id,
            secretEncrypted=keyring.encrypt(new_secret()),
            previousExpiresAt=clock.now() + timedelta(hours=data.expiresInHours),
        )
        response = await run_command(bus, caller, command, idempotency_key, earlier=earlier)
        return await _with_signing_secret(response, db, keyring)
