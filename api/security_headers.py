"""Headers every response carries, whoever answered it (handler, guard, error handler or
the router itself), and the policy of the HTML pages.

- ``X-Content-Type-Options: nosniff``: a JSON answer that echoes input is never run as
  script or style by a browser that guesses types.
- ``Cache-Control: no-store`` unless the response chose its own: API answers carry
  secrets (a new API key, a rolled one) and tenant data, and no proxy or browser cache may
  keep them (Stripe answers ``no-cache, no-store`` on every API response too).
- HTML pages (the dashboard, the API reference) get a Content-Security-Policy that runs
  only scripts served by the API itself and, for inline scripts, exactly the ones in the
  page: their SHA-256 is computed from the page as sent (the API reference inlines the
  OpenAPI document in its start-up script, so it cannot be a fixed hash). Nothing is
  loaded from another origin, the page cannot be framed, forms post only back here.
"""

from __future__ import annotations

import base64
import hashlib
import re

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

BASE_HEADERS = ((b"x-content-type-options", b"nosniff"),)
NO_STORE = (b"cache-control", b"no-store")
# a <script> element without a src attribute, and its text
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def content_security_policy(page: bytes) -> bytes:
    """The policy of an HTML page: its own origin only, and its inline scripts by hash."""
    hashes = sorted(
        {
            "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
            for script in _INLINE_SCRIPT.findall(page)
        }
    )
    directives = [
        "default-src 'self'",
        "script-src " + " ".join(["'self'", *hashes]),
        # Swagger UI and the charts set style attributes
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
    return "; ".join(directives).encode()


async def add_base_headers(message: Message, scope: Scope) -> None:
    """The app's before-send hook: it sees every answer, also the router's own 404 and 405
    that no middleware runs for."""
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers", ()))
    names = {name.lower() for name, _ in headers}
    headers.extend(header for header in BASE_HEADERS if header[0] not in names)
    if b"cache-control" not in names:
        headers.append(NO_STORE)
    message["headers"] = headers


class PagePolicy(ASGIMiddleware):
    """The Content-Security-Policy of HTML answers, hashing the page as sent."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        start: HTTPResponseStartEvent | None = None
        page: list[bytes] = []

        async def send_with_policy(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    start = message  # held until the page is whole: its policy hashes its scripts
                    return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            page.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(page)
            policy = (b"content-security-policy", content_security_policy(body))
            await send({**start, "headers": [*start.get("headers", ()), policy]})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await next_app(scope, receive, send_with_policy)


__all__ = ["PagePolicy", "add_base_headers", "content_security_policy"]
