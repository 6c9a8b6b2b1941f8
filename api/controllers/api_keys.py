"""/v1/api-keys: an organization's own keys. The secret is shown once, in the response
that creates it; commands carry only its hash."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, delete, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller, KeyCache
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import command_response, run_command
from billing.organizations.keys import new_key
from billing.organizations.service import list_api_keys
from contracts.api_keys import (
    ApiKeyCreate,
    ApiKeyRoll,
    IssueApiKeyCommand,
    NewApiKey,
    RevokeApiKeyCommand,
    RollApiKeyCommand,
)
from contracts.resources import ApiKey


def _with_secret(response: Response[Any], secret: str) -> Response[ApiKey]:
    """The key as the command returned it, with the secret this request made (shown once)."""
    if response.status_code in (200, 201):
        response.content = {**response.content, "secret": secret}
    return response


class ApiKeyController(Controller):
    path = "/v1/api-keys"
    tags = ["api keys"]

    @get("/", summary="List the organization's API keys (prefixes only)")
    async def index(self, db: AsyncSession) -> dict[str, Any]:
        keys = await list_api_keys(db)
        return {
            "object": "list",
            "data": [ApiKey.model_validate(k).model_dump(mode="json") for k in keys],
            "hasMore": False,
            "url": self.path,
        }

    @post("/", summary="Create an API key; its secret is in this response only", status_code=201)
    async def create(
        self, data: ApiKeyCreate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[ApiKey]:
        key = new_key()
        command = IssueApiKeyCommand(id=key.id, name=data.name, secretHash=key.secret_hash, prefix=key.prefix)
        outcome = await bus.execute(caller.organization_id, caller.actor, command, idempotency_key)
        return _with_secret(command_response(outcome, created=True), key.secret)

    @post(
        "/{key_id:str}/roll", summary="Roll an API key: a new secret, the old one revoked or expiring", status_code=201
    )
    async def roll(
        self,
        key_id: str,
        data: ApiKeyRoll,
        caller: Caller,
        bus: CommandBus,
        key_cache: KeyCache,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ApiKey]:
        key = new_key()
        command = RollApiKeyCommand(
            oldKeyId=key_id,
            newKey=NewApiKey(id=key.id, name="rolled", secretHash=key.secret_hash, prefix=key.prefix),
            expiresInSeconds=data.expiresInSeconds,
        )
        outcome = await bus.execute(caller.organization_id, caller.actor, command, idempotency_key)
        key_cache.clear()
        return _with_secret(command_response(outcome, created=True), key.secret)

    @delete("/{key_id:str}", summary="Revoke an API key", status_code=200)
    async def revoke(
        self,
        key_id: str,
        caller: Caller,
        bus: CommandBus,
        key_cache: KeyCache,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ApiKey]:
        response = await run_command(bus, caller, RevokeApiKeyCommand(id=key_id), idempotency_key)
        key_cache.clear()
        return response
