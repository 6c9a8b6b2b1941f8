"""/v1/events: every domain event of the organization, kept 30 days, in the envelope its
webhooks deliver: `{id, type, createdAt, data: {object, previousAttributes}}`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.responses import list_response
from billing.db.pagination import CreatedRange, PageRequest
from billing.errors import ResourceMissing
from billing.notifications.events import event_resource, get_event, list_events
from contracts.resources import Event

TypeFilter = Annotated[
    str | None,
    Parameter(query="type", max_length=100, required=False, description="An event type, or a prefix: invoice.*"),
]
TypesFilter = Annotated[
    list[str] | None,
    Parameter(query="types", required=False, max_items=20, description="Any of these types (or prefixes)"),
]


class EventController(Controller):
    path = "/v1/events"
    tags = ["notifications"]

    @get("/", summary="List events, newest first, by type and creation time")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        created: CreatedRange,
        type: TypeFilter = None,
        types: TypesFilter = None,
    ) -> dict[str, Any]:
        names = [*([type] if type else []), *(types or [])]
        return list_response(await list_events(db, page_request, types=names, created=created), Event, self.path)

    @get("/{event_id:str}", summary="Retrieve an event")
    async def retrieve(self, event_id: str, db: AsyncSession) -> Event:
        event = await get_event(db, event_id)
        if event is None:
            raise ResourceMissing("event", event_id)
        return event_resource(event)
