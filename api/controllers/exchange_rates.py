"""/v1/exchange-rates: reference data for reporting in an organization's reporting
currency, never for deciding what a customer is charged. Every organization reads them;
only the operator's organizations (BILLING_FX_WRITER_ORGANIZATIONS) write them through
the API (see billing/fx/service.py); files are loaded with `billing fx import`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import run_command
from billing.db.pagination import PageRequest
from billing.fx.service import exchange_rate_json, list_exchange_rates, require_fx_writer, validated_rate
from billing.money.currencies import currency_param
from contracts.catalog import ExchangeRateCreate
from contracts.resources import ExchangeRate


class ExchangeRateController(Controller):
    path = "/v1/exchange-rates"
    tags = ["exchange rates"]

    @post("/", summary="Record an exchange rate (operator organizations only)", status_code=201)
    async def create(
        self, data: ExchangeRateCreate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[ExchangeRate]:
        require_fx_writer(caller.organization_id)
        validated_rate(data)
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/", summary="List exchange rates, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        base: Annotated[str | None, Parameter(query="base", max_length=16, required=False)] = None,
        quote: Annotated[str | None, Parameter(query="quote", max_length=16, required=False)] = None,
        source: Annotated[str | None, Parameter(query="source", max_length=100, required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_exchange_rates(
            db,
            page_request,
            base=None if base is None else currency_param(base, "base"),
            quote=None if quote is None else currency_param(quote, "quote"),
            source=source,
        )
        return {
            "object": "list",
            "data": [exchange_rate_json(row) for row in page.items],
            "hasMore": page.has_more,
            "url": self.path,
        }
