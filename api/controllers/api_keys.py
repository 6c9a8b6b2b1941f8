"""/v1/api-keys: an organization's own keys. The secret is shown once, in the response
that creates it; commands carry only its hash."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.params import IdempotencyKey
from api.responses import command_response
from billing.organizations.keys import new_key
from billing.organizations.service import list_api_keys
from contracts.api_keys import ApiKeyCreate, ApiKeyRoll
from contracts.resources import ApiKey


def _with_secret(response: Response[Any], secret: str) -> Response[Any]:
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
        self, data: ApiKeyCreate, caller: Caller, state: State, idempotency_key: IdempotencyKey = None
    ) -> ApiKey:
        key = new_key()
        payload = {"id": key.id, "name": data.name, "secretHash": key.secret_hash, "prefix": key.prefix}
        outcome = await state.bus.execute(
            caller.organization_id, caller.actor, "api_key.create", payload, idempotency_key
        )
        return _with_secret(command_response(outcome, created=True), key.secret)  # type: ignore[return-value]

    @post(
        "/{key_id:str}/roll", summary="Roll an API key: a new secret, the old one revoked or expiring", status_code=201
    )
    async def roll(
        self, key_id: str, data: ApiKeyRoll, caller: Caller, state: State, idempotency_key: IdempotencyKey = None
    ) -> ApiKey:
        key = new_key()
        payload = {
            "oldKeyId": key_id,
            "newKey": {"id": key.id, "name": "rolled", "secretHash": key.secret_hash, "prefix": key.prefix},
            "expiresInSeconds": data.expiresInSeconds,
        }
        outcome = await state.bus.execute(
            caller.organization_id, caller.actor, "api_key.roll", payload, idempotency_key
        )
        state.key_cache.clear()
        return _with_secret(command_response(outcome, created=True), key.secret)  # type: ignore[return-value]

    @delete("/{key_id:str}", summary="Revoke an API key", status_code=200)
    async def revoke(self, key_id: str, caller: Caller, state: State, idempotency_key: IdempotencyKey = None) -> ApiKey:
        outcome = await state.bus.execute(
            caller.organization_id, caller.actor, "api_key.revoke", {"id": key_id}, idempotency_key
        )
        state.key_cache.clear()
        return command_response(outcome)  # type: ignore[return-value]
