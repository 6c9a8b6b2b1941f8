"""The input rules of billing/requests/input_rules.py applied to every request, before
authentication, validation and the handler: headers, the URL path, the query string and
the body (read once, handed on unchanged).

Refusals are Stripe-shaped: 400 ``invalid_characters`` or ``invalid_json`` naming the
param, 431 ``request_header_too_large``, and 404 ``resource_missing`` (param ``id``) for a
path id that cannot name anything: bad text, or not the shape of the resource's ids
(billing/ids.py: its prefix and alphabet). Ids that have the shape are looked up as before.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPRequestEvent, Receive, ReceiveMessage, Scope, Send

from billing import ids
from billing.requests.input_rules import Refusal, body_refusal, headers_refusal, pairs_refusal, path_has_bad_text

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# bodies above this are checked in a worker thread (a 250 KB usage batch takes ~10 ms;
# the usage endpoint takes megabytes)
_INLINE_BODY_BYTES = 64 * 1024
# path parameters whose name is not `<resource>_id`
_PATH_ID_RESOURCES = {"definition_id": "product_attribute", "key_id": "api_key"}


def path_id_resource(name: str) -> str | None:
    """The resource (billing/ids.py PREFIXES) whose id a path parameter holds, if known."""
    resource = _PATH_ID_RESOURCES.get(name) or (name[:-3] if name.endswith("_id") else None)
    return resource if resource in ids.PREFIXES else None


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def read_body(receive: Receive, limit: int) -> tuple[list[bytes], bool]:
    """The body's chunks and whether they are all of it (False: over `limit`, stopped)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # a disconnect: hand on what came
            return chunks, True
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
            size += len(chunk)
        if not message.get("more_body", False):
            return chunks, True
        if size > limit:
            return chunks, False


def replay(chunks: Iterable[bytes], more: bool, receive: Receive) -> Receive:
    """A receive that hands on the body read so far, then the rest from `receive`."""
    pending = list(chunks) or [b""]
    index = 0

    async def replayed() -> ReceiveMessage:
        nonlocal index
        if index < len(pending):
            body = pending[index]
            index += 1
            event: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": more or index < len(pending)}
            return event
        return await receive()

    return replayed


async def respond(send: Send, status: int, content: dict[str, Any]) -> None:
    payload = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def _error(refusal: Refusal) -> dict[str, Any]:
    return {
        "error": {
            "type": "invalid_request_error",
            "code": refusal.code,
            "message": refusal.message,
            "param": refusal.param,
        }
    }


def _missing(resource: str | None, value: str | None) -> Refusal:
    name = resource.replace("_", " ") if resource else "object"
    if value is None:
        return Refusal(f"No such {name}: the id in the URL holds characters no id has.", "resource_missing", "id", 404)
    shown = value if len(value) <= 64 else value[:64] + "..."
    return Refusal(f"No such {name}: '{shown}'", "resource_missing", "id", 404)


def url_refusal(scope: Scope) -> Refusal | None:
    params = scope.get("path_params") or {}
    if path_has_bad_text(scope.get("raw_path") or scope["path"].encode()):
        # the server decoded the path with U+FFFD for what is not UTF-8: that names the param
        spoilt = [
            name for name, value in params.items() if isinstance(value, str) and ("\x00" in value or "\ufffd" in value)
        ]
        return _missing(path_id_resource(spoilt[0]) if spoilt else None, None)
    for name, value in params.items():
        resource = path_id_resource(name)
        if resource is not None and isinstance(value, str) and not ids.has_shape(resource, value):
            return _missing(resource, value)
    return pairs_refusal(scope.get("query_string", b""))


class InputRules(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, default_max_body_bytes: int) -> None:
        self.default_max_body_bytes = default_max_body_bytes

    def _limit(self, scope: Scope) -> int:
        handler = scope.get("route_handler")
        limit = handler.resolve_request_max_body_size() if isinstance(handler, HTTPRouteHandler) else None
        return limit or self.default_max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        refusal = headers_refusal(scope.get("headers", ())) or url_refusal(scope)
        if refusal is not None:
            await respond(send, refusal.status, _error(refusal))
            return
        if str(scope.get("method", "GET")).upper() not in BODY_METHODS:
            await next_app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await next_app(scope, receive, send)  # the app refuses it (413) unread
            return
        chunks, complete = await read_body(receive, limit)
        if not complete:
            await next_app(scope, replay(chunks, True, receive), send)
            return
        body = b"".join(chunks)
        content_type = header(scope, b"content-type")
        if len(body) > _INLINE_BODY_BYTES:
            refusal = await asyncio.to_thread(body_refusal, body, content_type)
        else:
            refusal = body_refusal(body, content_type)
        if refusal is not None:
            await respond(send, refusal.status, _error(refusal))
            return
        await next_app(scope, replay([body], False, receive), send)


__all__ = ["BODY_METHODS", "InputRules", "header", "path_id_resource", "read_body", "replay", "respond", "url_refusal"]
