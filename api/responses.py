"""How command outcomes and pages become HTTP responses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from litestar import Response
from pydantic import BaseModel

from api.auth import Caller
from api.bus import IDEMPOTENCY_MISMATCH, CommandBus, EarlierOutcome, Pending, Replayed
from billing.db.pagination import Page
from billing.documents.pdf import Document, render_pdf
from billing.errors import BillingError, IdempotencyError, ResourceMissing
from contracts.commands import Command
from contracts.envelopes import CommandOutcome

ResourceT = TypeVar("ResourceT")


async def run_command(
    bus: CommandBus,
    caller: Caller,
    command: Command[ResourceT],
    idempotency_key: str | None,
    *,
    created: bool = False,
    earlier: EarlierOutcome | None = None,
) -> Response[ResourceT]:
    """Publishes the caller's command, awaits its outcome and answers with it: the
    resource the command declares (or 202 with its status URL)."""
    outcome = await bus.execute(caller.organization_id, caller.actor, command, idempotency_key, earlier=earlier)
    return command_response(outcome, created=created)


COMMAND_ID_HEADER = "Command-Id"
REPLAYED_HEADER = "Idempotent-Replayed"


class CommandFailed(BillingError):
    """A command's recorded failure, answered with the headers of its command."""

    def __init__(self, outcome: CommandOutcome) -> None:
        error = outcome.error or {"type": "api_error", "message": "The command failed.", "status": 500}
        failure = BillingError.from_dict(error)
        super().__init__(
            failure.message, code=failure.code, param=failure.param, type=failure.type, status=failure.status
        )
        self.headers = command_headers(outcome)


def command_headers(outcome: CommandOutcome | Pending) -> dict[str, str]:
    """Which command a write was (what `/v1/commands/{id}` takes), and whether its answer
    is the stored one of an earlier request with the same Idempotency-Key."""
    if isinstance(outcome, Pending):
        return {COMMAND_ID_HEADER: outcome.command_id}
    headers = {COMMAND_ID_HEADER: outcome.commandId}
    if isinstance(outcome, Replayed):
        headers[REPLAYED_HEADER] = "true"
    return headers


def command_response(outcome: CommandOutcome | Pending, *, created: bool = False) -> Response[Any]:
    headers = command_headers(outcome)
    if isinstance(outcome, Pending):
        url = f"/v1/commands/{outcome.command_id}"
        return Response(
            {"object": "command", "id": outcome.command_id, "status": "pending", "statusUrl": url},
            status_code=202,
            headers={**headers, "Location": url},
        )
    if outcome.status == "failed":
        raise CommandFailed(outcome)
    return Response(outcome.result, status_code=201 if created else 200, headers=headers)


def list_response(page: Page[Any], resource: type[BaseModel], url: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [resource.model_validate(row).model_dump(mode="json") for row in page.items],
        "hasMore": page.has_more,
        "url": url,
    }


def search_response(page: Page[Any], resource: type[BaseModel], url: str) -> dict[str, Any]:
    """Stripe's search result: a list whose `nextPage` continues it."""
    body = list_response(page, resource, url)
    body["object"] = "search_result"
    body["nextPage"] = body["data"][-1]["id"] if page.has_more else None
    return body


def replayed_write(
    earlier: EarlierOutcome,
    command_type: str,
    idempotency_key: str | None,
    answers: Callable[[dict[str, Any]], bool],
    *,
    created: bool = True,
) -> Response[Any] | None:
    """For a write whose command carries what the API made before it (a gateway's answer
    such as a refund's; a new id or secret): the first answer to its Idempotency-Key, so a
    retry makes nothing twice; None when nothing was made under the key yet. The key of
    another request (`answers` says whether the first result answers this one), or of
    another write, is refused."""
    first = earlier.outcome
    if first is None:
        return None
    if first.commandType != command_type or (first.result is not None and not answers(first.result)):
        raise IdempotencyError(IDEMPOTENCY_MISMATCH.format(key=idempotency_key), code="idempotency_key_in_use")
    return command_response(Replayed.model_validate(first.model_dump()), created=created)


async def pdf_response(document: Document | None, resource: str, resource_id: str) -> Response[bytes]:
    """The document as an inline PDF named after it; rendered off the event loop (laying
    out a long invoice takes a while and would stall every other request)."""
    if document is None:
        raise ResourceMissing(resource, resource_id)
    content = await asyncio.to_thread(render_pdf, document)
    filename = (document.number or f"{resource_id}-draft").replace('"', "")
    return Response(
        content, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{filename}.pdf"'}
    )
