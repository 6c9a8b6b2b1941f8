"""/v1/tax-rates: percentage taxes for invoice lines, inclusive or exclusive."""

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
from billing.tax_rates.repository import get_tax_rate, list_tax_rates
from contracts.resources import TaxRate
from contracts.tax_rates import TaxRateCreate, TaxRateUpdate, TaxRateUpdateCommand


class TaxRateController(Controller):
    path = "/v1/tax-rates"
    tags = ["tax rates"]

    @post("/", summary="Create a tax rate (percentage and inclusive are fixed from then on)", status_code=201)
    async def create(
        self, data: TaxRateCreate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[TaxRate]:
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/{tax_rate_id:str}", summary="Retrieve a tax rate")
    async def retrieve(self, tax_rate_id: str, db: AsyncSession) -> TaxRate:
        rate = await get_tax_rate(db, tax_rate_id)
        if rate is None:
            raise ResourceMissing("tax_rate", tax_rate_id)
        return TaxRate.model_validate(rate)

    @patch("/{tax_rate_id:str}", summary="Update what describes a tax rate, or archive it (active: false)")
    async def update(
        self,
        tax_rate_id: str,
        data: TaxRateUpdate,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TaxRate]:
        command = TaxRateUpdateCommand(id=tax_rate_id, changes=data.model_dump(mode="json", exclude_unset=True))
        return await run_command(bus, caller, command, idempotency_key)

    @get("/", summary="List tax rates, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        active: Annotated[bool | None, Parameter(query="active", required=False)] = None,
        inclusive: Annotated[bool | None, Parameter(query="inclusive", required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_tax_rates(db, page_request, active=active, inclusive=inclusive)
        return list_response(page, TaxRate, self.path)
