"""Card-data guard: a write request whose body holds a plausible card number is refused.

Card numbers never reach us (they are collected by Stripe.js on the customer's device and
arrive as ``pm_...`` tokens). A POST, PUT or PATCH whose body holds something that looks
like one anywhere (`billing.payments.card_numbers.find_card_number`: 13-19 digits passing
Luhn, as a string, a number or a key, at any depth) is answered

    400 {"error": {"type": "invalid_request_error", "code": "card_data_not_allowed",
                   "param": "metadata[note]", "message": "..."}}

by this middleware, which runs first: before authentication, validation, the handler,
logging and publishing, so the number is never logged, stored or sent to Kafka. The
message names the field, never the digits. The same holds, for every method, for the
query string (``param`` the parameter's name), the path and the ``Idempotency-Key``
header (both kept with the command and sent through Kafka; ``param`` null).

Bodies: JSON (parsed exactly: integers and decimals are not rounded through floats), form
bodies (``application/x-www-form-urlencoded``: each key and value), and anything else
(multipart, text, or JSON that does not parse) scanned as text, then answered with
``param`` null. A body larger than the app's limit is not read here: the app refuses it
(413) without reading it either.

The body is read once and handed on unchanged (byte for byte: the Stripe webhook needs
the raw body for its signature).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from api.input_rules import header, read_body, replay, respond
from billing.payments.card_numbers import contains_card_number, find_card_number
from billing.requests.input_rules import trimmed_param

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})
CODE = "card_data_not_allowed"


def _form_param(body: bytes) -> str | bool | None:
    """The first form field holding a card number (its name), True when found in a field
    without a usable name, False when none."""
    text = body.decode("utf-8", "replace")
    for key, value in parse_qsl(text, keep_blank_values=True):
        if contains_card_number(key) or contains_card_number(value):
            return key or True
    return contains_card_number(text)


def card_param(body: bytes, content_type: str | None) -> str | bool | None:
    """Where in `body` a card number is: a Stripe-style param path, True when found
    somewhere without a path (unparsable body), or False when none."""
    if not body:
        return False
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return _form_param(body)
    if kind.startswith("multipart/"):
        return contains_card_number(body.decode("latin-1"))
    try:
        document: Any = json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return contains_card_number(body.decode("utf-8", "replace"))
    path = find_card_number(document)
    if path is None:
        return False
    return path if path else True


def _redacted(param: str | None) -> str | None:
    """The path without the segments that are themselves the number (a card in a KEY): the
    answer names where it is, never the digits."""
    return trimmed_param(param, contains_card_number)


def request_line_param(scope: Scope) -> str | bool | None:
    """Where outside the body a card number is: the query parameter's name, True for the
    path or the `Idempotency-Key` header (kept with the command and sent through Kafka), or
    False when none."""
    query = scope.get("query_string", b"").decode("utf-8", "replace")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if contains_card_number(key) or contains_card_number(value):
            return key or True
    if contains_card_number(query) or contains_card_number(scope.get("path", "")):
        return True
    idempotency_key = header(scope, b"idempotency-key")
    return idempotency_key is not None and contains_card_number(idempotency_key)


def rejection(param: str | None) -> dict[str, Any]:
    param = _redacted(param)
    where = f" in `{param}`" if param else ""
    return {
        "error": {
            "type": "invalid_request_error",
            "code": CODE,
            "param": param,
            "message": (
                f"The request holds what looks like a card number{where}. Card numbers must never be sent to this "
                "API: collect cards with Stripe.js or Elements and send the PaymentMethod id (pm_...) instead."
            ),
        }
    }


class CardDataGuard(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        found = request_line_param(scope)
        if found is not False:
            await respond(send, 400, rejection(found if isinstance(found, str) else None))
            return
        if str(scope.get("method", "GET")).upper() not in WRITE_METHODS:
            await next_app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await next_app(scope, receive, send)  # the app refuses it (413) unread
            return
        chunks, complete = await read_body(receive, self.max_body_bytes)
        if not complete:
            await next_app(scope, replay(chunks, True, receive), send)
            return
        body = b"".join(chunks)
        found = card_param(body, header(scope, b"content-type"))
        if found is not False:
            del body, chunks
            await respond(send, 400, rejection(found if isinstance(found, str) else None))
            return
        await next_app(scope, replay([body], False, receive), send)


__all__ = ["CODE", "WRITE_METHODS", "CardDataGuard", "card_param", "rejection", "request_line_param"]
