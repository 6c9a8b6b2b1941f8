"""/v1/meters: how usage events of one name become a billable quantity."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import list_response, run_command
from billing.db.pagination import PageRequest
from billing.errors import ResourceMissing
from billing.meters.repository import get_meter, list_meters
from contracts.meters import MeterCreate, MeterUpdate, MeterUpdateCommand
from contracts.resources import Meter


class MeterController(Controller):
    path = "/v1/meters"
    tags = ["meters"]

    @post("/", summary="Create a meter (one per eventName)", status_code=201)
    async def create(
        self, data: MeterCreate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[Meter]:
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/{meter_id:str}", summary="Retrieve a meter")
    async def retrieve(self, meter_id: str, db: AsyncSession) -> Meter:
        meter = await get_meter(db, meter_id)
        if meter is None:
            raise ResourceMissing("meter", meter_id)
        return Meter.model_validate(meter)

    @patch("/{meter_id:str}", summary="Update a meter's displayName, or deactivate / reactivate it")
    async def update(
        self, meter_id: str, data: MeterUpdate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[Meter]:
        command = MeterUpdateCommand(id=meter_id, changes=data.model_dump(mode="json", exclude_unset=True))
        return await run_command(bus, caller, command, idempotency_key)

    @get("/", summary="List meters, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        active: Annotated[bool | None, Parameter(query="active", required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_meters(db, page_request, active=active)
        return list_response(page, Meter, self.path)
