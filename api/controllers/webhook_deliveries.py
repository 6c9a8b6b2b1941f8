"""/v1/webhook-deliveries: the delivery log, one delivery per event and endpoint with
every attempt (status, response code, duration, the start of the response body), and
manual redelivery."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import list_response, run_command
from billing.db.pagination import Page, PageRequest
from billing.notifications import deliveries
from contracts.resources import WebhookDelivery
from contracts.webhooks import WebhookDeliveryDetails, WebhookDeliveryRedeliver

EndpointFilter = Annotated[str | None, Parameter(query="endpoint", max_length=64, required=False)]
EventFilter = Annotated[str | None, Parameter(query="event", max_length=64, required=False)]


class WebhookDeliveryController(Controller):
    path = "/v1/webhook-deliveries"
    tags = ["notifications"]

    @get("/", summary="List deliveries with their attempts, newest first, by endpoint or event")
    async def index(
        self, db: AsyncSession, page_request: PageRequest, endpoint: EndpointFilter = None, event: EventFilter = None
    ) -> dict[str, Any]:
        page = await deliveries.list_deliveries(db, page_request, endpoint_id=endpoint, event_id=event)
        detailed = Page(await deliveries.with_attempts(db, page.items), page.has_more)
        return list_response(detailed, WebhookDeliveryDetails, self.path)

    @get("/{delivery_id:str}", summary="Retrieve a delivery with its attempts")
    async def retrieve(self, delivery_id: str, db: AsyncSession) -> WebhookDeliveryDetails:
        [details] = await deliveries.with_attempts(db, [await deliveries.require_delivery(db, delivery_id)])
        return details

    @post(
        "/{delivery_id:str}/redeliver",
        summary="Send a delivery again now, its retry schedule started over",
        status_code=200,
    )
    async def redeliver(
        self,
        delivery_id: str,
        caller: Caller,
        bus: CommandBus,
        db: AsyncSession,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[WebhookDelivery]:
        await deliveries.require_delivery(db, delivery_id)  # an unknown id is refused before any command
        return await run_command(bus, caller, WebhookDeliveryRedeliver(id=delivery_id), idempotency_key)
