"""POST /v1/usage-events: one event, or {"events": [...]} of up to 1,000.

The request is checked in full before anything is published (all or nothing at the API):
the contract (contracts/usage.py: exact decimal values, timestamp window, sizes), then
duplicate identifiers within the batch (the second one is named), then Postgres: every
eventName must have an active meter of this organization, every customerId must be a
live customer of it, and an event of a meter with a `valueKey` must carry that property as
a number (billing/meters/rules.py: 400 `properties[tokens]`, never an event its meter
would count as nothing; the analytics consumer applies the same rule to what publishers
write straight to Kafka). Then each event goes to Kafka `usage.events` with organizationId set
from the API key and the organization as message key (the analytics consumer refuses a
message whose key and organizationId disagree).

The answer is 202 Accepted: the events are durable in Kafka, and are counted in
/v1/analytics once the analytics consumer has stored them (usually well under a second).
An identifier already accepted earlier (another request) is accepted again and collapsed
by the consumer: the first event wins, so a client may safely retry a whole batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaError
from litestar import Controller, Request, Response, post
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.card_guard import CODE as CARD_DATA_CODE
from api.card_guard import card_param, rejection
from api.services import Clock
from billing.errors import InvalidRequest, ServiceUnavailable, from_validation_error
from billing.meters.repository import check_usage_references
from billing.requests.usage import check_unique_identifiers
from contracts.usage import MAX_BATCH_EVENTS, UsageEvent, parse_json, parse_usage_request
from producers.publisher import Publisher
from producers.topics import USAGE_EVENTS, topic

#: 1,000 events with properties do not fit the API's default 256 KiB
MAX_USAGE_BODY_BYTES = 4 * 1024 * 1024
#: what api/card_guard.py scans before the app (api/app.py MAX_BODY_BYTES)
GUARDED_BODY_BYTES = 256 * 1024


def _refusal(error: ValidationError) -> InvalidRequest:
    refused = from_validation_error(error)
    refused.message = refused.message.replace(": Value error, ", ": ")
    first = error.errors(include_url=False)[0]
    if tuple(first["loc"]) == ("events",) and first["type"] == "too_long":
        refused.message = f"A request can carry at most {MAX_BATCH_EVENTS} events; send the rest in another request."
        refused.code = "parameter_invalid"
    elif not first["loc"]:
        refused.message = 'The body must be one event object or {"events": [...]}.'
    return refused


async def publish_usage(publisher: Publisher, events: list[UsageEvent]) -> None:
    """Every event to `usage.events`, keyed by organization; all sends in flight at once."""
    name = topic(USAGE_EVENTS)
    pending = []
    for event in events:
        key, value = event.to_kafka()
        pending.append(await publisher.publish(value, topic=name, key=key, no_confirm=True))
    await asyncio.gather(*pending)


class UsageEventController(Controller):
    path = "/v1/usage-events"
    tags = ["usage"]

    @post(
        "/",
        summary="Record usage: one event or {events: [...]} (up to 1,000); 202 once durable in Kafka",
        status_code=202,
        request_max_body_size=MAX_USAGE_BODY_BYTES,
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        caller: Caller,
        db: AsyncSession,
        publisher: Publisher,
        clock: Clock,
    ) -> Response[Any]:
        raw = await request.body()
        if len(raw) > GUARDED_BODY_BYTES:
            # the card-data guard reads bodies up to the API's usual limit only; this route
            # takes more, so it scans the rest itself before anything is parsed or published
            found = await asyncio.to_thread(card_param, raw, request.headers.get("content-type"))
            if found is not False:
                error = rejection(found if isinstance(found, str) else None)["error"]
                raise InvalidRequest(error["message"], code=CARD_DATA_CODE, param=error["param"])
        received_at = clock()
        try:
            shape = parse_json(raw)
            events = parse_usage_request(raw, caller.organization_id, received_at)
        except ValidationError as error:
            raise _refusal(error) from None
        except ValueError as error:
            raise InvalidRequest(f"Invalid JSON body: {error}", code="invalid_json") from None
        batch = isinstance(shape, dict) and "events" in shape
        check_unique_identifiers([e.identifier for e in events], batch=batch)
        await check_usage_references(db, [(e.event_name, e.customer_id, e.properties) for e in events], batch=batch)
        try:
            await publish_usage(publisher, events)
        except (KafkaError, OSError) as error:
            raise ServiceUnavailable(
                "The usage queue is unavailable. Retry the request: events that did get through are "
                "deduplicated by identifier.",
                code="queue_unavailable",
            ) from error
        return Response(
            {
                "object": "usage_event_batch",
                "status": "accepted",
                "count": len(events),
                "receivedAt": received_at.isoformat().replace("+00:00", "Z"),
            },
            status_code=202,
        )
