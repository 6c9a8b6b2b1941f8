"""Authentication: `Authorization: Bearer <secret key>` names the organization; nothing
else does. Every tenant read goes through a session bound to that organization.

Default deny: `ApiKeyAuthentication` runs on every route of the app (every method, OPTIONS
too) and refuses a request without a valid key before anything reads its body or
parameters. Only a route marked public skips it, with Litestar's opt key
(`@get(..., exclude_from_auth=True)`, or `opt={PUBLIC: True}` on a router): health, the
API reference, the Stripe webhook (its signature is the credential) and the dashboard
(its own session cookie). A route nobody marked is guarded, whatever its handler asks for.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy.ext.asyncio import AsyncSession

from api.services import services_of
from billing.db.sessions import tenant_session
from billing.errors import AuthenticationError
from billing.organizations.keys import hash_secret
from billing.organizations.service import authenticate
from contracts.envelopes import Actor


@dataclass(frozen=True)
class Caller:
    organization_id: str
    api_key_id: str

    @property
    def actor(self) -> Actor:
        return Actor(type="api_key", id=self.api_key_id)


# the mark of a route that needs no API key (Litestar's own opt key for it)
PUBLIC = "exclude_from_auth"


def bearer_secret(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header:
        raise AuthenticationError(
            "You did not provide an API key. Send it as `Authorization: Bearer sk_...`.", code="api_key_missing"
        )
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError("Use `Authorization: Bearer sk_...`.", code="api_key_invalid")
    return secret.strip()


class KeyCache:
    """Recently authenticated keys, by the hash of their secret, for a few seconds: most
    requests then cost no database round trip for authentication. Every API process
    forgets everything when a key is revoked or rolled through the API (the
    `api_key.revoked` / `api_key.rolled` events, api/replies.py), moments after the change;
    `seconds` bounds what no event announces (`billing org keys revoke` writes straight to
    Postgres)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._callers: dict[str, tuple[Caller, float]] = {}

    def get(self, secret_hash: str) -> Caller | None:
        entry = self._callers.get(secret_hash)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, secret_hash: str, caller: Caller, key_expires_at: datetime | None) -> None:
        valid_for = self._seconds
        if key_expires_at is not None:
            valid_for = min(valid_for, (key_expires_at - datetime.now(UTC)).total_seconds())
        if valid_for > 0:
            self._callers[secret_hash] = (caller, time.monotonic() + valid_for)

    def clear(self) -> None:
        self._callers.clear()


async def authenticate_caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The caller the request's key names; AuthenticationError (401) for a missing, made-up,
    revoked or expired key."""
    services = services_of(connection.app.state)
    secret = bearer_secret(connection)
    secret_hash = hash_secret(secret)
    cached = services.key_cache.get(secret_hash)
    if cached is not None:
        services.key_use.saw(cached.organization_id, cached.api_key_id)
        return cached
    async with services.sessions() as session:
        key = await authenticate(session, secret)
    if key is None:
        shown = secret[:11] + "*" * 4 if len(secret) > 11 else "*" * 4
        raise AuthenticationError(f"Invalid API Key provided: {shown}", code="api_key_invalid")
    caller = Caller(key.organization_id, key.id)
    services.key_cache.put(secret_hash, caller, key.expires_at)
    services.key_use.saw(caller.organization_id, caller.api_key_id)
    return caller


class ApiKeyAuthentication(AbstractAuthenticationMiddleware):
    """The default-deny wall: every route needs a valid key unless it is marked PUBLIC."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        return AuthenticationResult(user=await authenticate_caller(connection), auth=None)


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """The caller ApiKeyAuthentication found; a public route has none to give."""
    caller = request.scope.get("user")
    if not isinstance(caller, Caller):
        raise RuntimeError(f"{request.url.path} is a public route: it has no authenticated caller")
    return caller


async def provide_db(caller: Caller, state: State) -> AsyncIterator[AsyncSession]:
    async with tenant_session(services_of(state).sessions, caller.organization_id) as session:
        yield session


def rate_limit_identity(key_cache: KeyCache) -> Callable[[Request[Any, Any, Any]], str]:
    """The bucket a request is counted in: its API key's id, however the header is spelt
    (any case of "Bearer", extra spaces), once this process has authenticated the key
    (the limiter runs before authentication, so it asks the key cache, never Postgres);
    anything else (no key, a key not seen in the last seconds, a made-up one) counts
    against the client's address, so inventing keys never buys a fresh bucket. Buckets
    are per API process (Litestar's memory store): N processes allow N times the rate."""

    def identity(request: Request[Any, Any, Any]) -> str:
        try:
            secret = bearer_secret(request)
        except AuthenticationError:
            secret = None
        caller = key_cache.get(hash_secret(secret)) if secret else None
        if caller is not None:
            return f"key:{caller.api_key_id}"
        return f"address:{request.client.host if request.client else 'unknown'}"

    return identity
