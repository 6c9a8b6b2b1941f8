"""Dashboard sign-in without secrets in URLs.

Two ways in, both ending in the same cookie:
- the sign-in form posts the organization's secret key (in the body, never the URL) to
  POST /dashboard/login;
- POST /v1/dashboard/sessions (Bearer key, like any API call) answers a one-time link
  `/dashboard/login?token=...` valid for 60 seconds; opening it sets the cookie and
  redirects to /dashboard, so the token leaves the address bar at once.

The cookie holds a signed token (HMAC-SHA256) naming the organization and the API key,
valid for one hour; it is HttpOnly, SameSite=Strict, limited to /dashboard, and Secure when
the request came over HTTPS. Every request also checks that the key is still active, so
revoking the key ends its dashboard sessions. The signing key is derived from the
secrets keyring (`Keyring.derive_key(SIGNING_PURPOSE)`), so every API process of a
deployment accepts every other's cookies and a restart signs no one out; rolling the first
encryption key does. A link is spent once per API process (the spent nonces are kept in
memory): behind several processes, a leaked link could be opened once on each within its
60 seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from billing.db.sessions import get_one, tenant_session
from billing.models import ApiKey
from billing.organizations.service import is_usable

COOKIE = "billing_dashboard"
COOKIE_PATH = "/dashboard"
SESSION_SECONDS = 3600
LINK_SECONDS = 60

SIGNING_PURPOSE = "billing dashboard sessions v1"
_used_links: dict[str, float] = {}
_used_lock = threading.Lock()


@dataclass(frozen=True)
class Token:
    organization_id: str
    api_key_id: str
    purpose: str
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(signing_key: bytes, caller: Caller, purpose: str, seconds: int) -> tuple[str, datetime]:
    expires = int(time.time()) + seconds
    body = {"o": caller.organization_id, "k": caller.api_key_id, "p": purpose, "e": expires, "n": secrets.token_hex(8)}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signature = _b64(hmac.new(signing_key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", datetime.fromtimestamp(expires, UTC)


def verify(signing_key: bytes, token: str | None, purpose: str) -> Token | None:
    """The token's claims when its signature, purpose and expiry hold; else None."""
    if not token or len(token) > 1024 or token.count(".") != 1:
        return None
    payload, signature = token.split(".")
    expected = _b64(hmac.new(signing_key, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature, expected):
        return None
    try:
        body = json.loads(_unb64(payload))
        claims = Token(str(body["o"]), str(body["k"]), str(body["p"]), int(body["e"]), str(body["n"]))
    except (ValueError, KeyError, TypeError):
        return None
    if claims.purpose != purpose or claims.expires < time.time():
        return None
    return claims


def spend_link(claims: Token) -> bool:
    """A sign-in link works once: False when this one was used already."""
    now = time.time()
    with _used_lock:
        for nonce in [n for n, expires in _used_links.items() if expires < now]:
            del _used_links[nonce]
        if claims.nonce in _used_links:
            return False
        _used_links[claims.nonce] = claims.expires
        return True


async def active_caller(sessions: async_sessionmaker[AsyncSession], claims: Token | None) -> Caller | None:
    """The caller of a verified token, when its key is still usable (read in the token's
    organization: a key of another organization is not found)."""
    if claims is None:
        return None
    async with tenant_session(sessions, claims.organization_id) as session:
        key = await get_one(session, ApiKey, ApiKey.id, claims.api_key_id)
    if key is None or not is_usable(key, datetime.now(UTC)):
        return None
    return Caller(key.organization_id, key.id)
