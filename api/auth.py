"""Authentication: `Authorization: Bearer <secret key>` names the organization; nothing
else does. Every tenant read goes through a session bound to that organization."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db import tenant_session
from billing.errors import AuthenticationError
from billing.organizations.service import authenticate
from contracts.envelopes import Actor


@dataclass(frozen=True)
class Caller:
    organization_id: str
    api_key_id: str

    @property
    def actor(self) -> Actor:
        return Actor(type="api_key", id=self.api_key_id)


def bearer_secret(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header:
        raise AuthenticationError(
            "You did not provide an API key. Send it as `Authorization: Bearer sk_...`.", code="api_key_missing"
        )
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError("Use `Authorization: Bearer sk_...`.", code="api_key_invalid")
    return secret.strip()


async def provide_caller(request: Request, state: State) -> Caller:
    secret = bearer_secret(request)
    async with state.sessions() as session:
        key = await authenticate(session, secret)
    if key is None:
        shown = secret[:11] + "*" * 4 if len(secret) > 11 else "*" * 4
        raise AuthenticationError(f"Invalid API Key provided: {shown}", code="api_key_invalid")
    return Caller(key.organization_id, key.id)


async def provide_db(caller: Caller, state: State) -> AsyncIterator[AsyncSession]:
    async with tenant_session(state.sessions, caller.organization_id) as session:
        yield session


def rate_limit_identity(request: Request) -> str:
    """Requests are counted per key (hashed, so the limiter never holds a secret)."""
    header = request.headers.get("authorization", "")
    return hashlib.sha256(header.encode()).hexdigest() if header else (request.client.host if request.client else "anonymous")
