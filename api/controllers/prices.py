"""/v1/prices: Stripe's price model (per_unit, tiered graduated/volume, package via
transformQuantity, one_time or recurring, currencyOptions). Amounts are immutable once
created; PATCH changes active, nickname, metadata and lookupKey only.
`POST /v1/prices/{id}/quote` prices a quantity in one of the price's currencies."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, TypeVar

from litestar import Controller, Response, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import list_response, run_command
from billing.catalog.repository import get_price, list_prices
from billing.catalog.service import (
    check_lookup_key,
    check_price_update,
    product_for_price,
    quote_price,
    validated_price,
)
from billing.db.pagination import CreatedRange, PageRequest
from billing.errors import InvalidRequest, ResourceMissing
from billing.models import Price as PriceRow
from billing.money.currencies import currency_param
from contracts.catalog import PriceCreate, PriceUpdate, PriceUpdateCommand, QuoteRequest
from contracts.enums import PriceType, RecurringInterval, UsageType
from contracts.resources import Price

E = TypeVar("E", bound=StrEnum)


def _choice(value: str | None, choices: type[E], param: str) -> E | None:
    """An enum query filter, its error naming the param as the client wrote it."""
    if value is None:
        return None
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(member.value for member in choices)
        raise InvalidRequest(
            f"Invalid {param}: must be one of {allowed}.", code="parameter_invalid", param=param
        ) from None


async def _price(db: AsyncSession, price_id: str) -> PriceRow:
    price = await get_price(db, price_id)
    if price is None:
        raise ResourceMissing("price", price_id)
    return price


class PriceController(Controller):
    path = "/v1/prices"
    tags = ["prices"]

    @post("/", summary="Create a price", status_code=201)
    async def create(
        self,
        data: PriceCreate,
        db: AsyncSession,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Price]:
        validated_price(data)  # every rule of the definition, answered at once
        await product_for_price(db, data.product)
        await check_lookup_key(db, data.lookupKey, data.transferLookupKey, None)
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/{price_id:str}", summary="Retrieve a price")
    async def retrieve(self, price_id: str, db: AsyncSession) -> Price:
        return Price.model_validate(await _price(db, price_id))

    @patch("/{price_id:str}", summary="Update a price's active, nickname, metadata or lookupKey (amounts never change)")
    async def update(
        self,
        price_id: str,
        data: PriceUpdate,
        db: AsyncSession,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Price]:
        check_price_update(data)
        await _price(db, price_id)
        if "lookupKey" in data.model_fields_set:
            await check_lookup_key(db, data.lookupKey, bool(data.transferLookupKey), price_id)
        command = PriceUpdateCommand(id=price_id, changes=data.model_dump(mode="json", exclude_unset=True))
        return await run_command(bus, caller, command, idempotency_key)

    @post(
        "/{price_id:str}/quote",
        summary="What the price charges for a quantity, per tier, in one of its currencies",
        status_code=200,
    )
    async def quote(self, price_id: str, data: QuoteRequest, db: AsyncSession) -> dict[str, Any]:
        return quote_price(await _price(db, price_id), data.quantity, data.currency)

    @get("/", summary="List prices, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        created: CreatedRange,
        product: Annotated[str | None, Parameter(query="product", max_length=64, required=False)] = None,
        price_type: Annotated[
            str | None, Parameter(query="type", max_length=32, required=False, description="one_time | recurring")
        ] = None,
        active: Annotated[bool | None, Parameter(query="active", required=False)] = None,
        currency: Annotated[
            str | None,
            Parameter(
                query="currency", max_length=16, required=False, description="The price's currency or a currencyOption"
            ),
        ] = None,
        lookup_keys: Annotated[list[str] | None, Parameter(query="lookupKeys", required=False, max_items=10)] = None,
        interval: Annotated[
            str | None,
            Parameter(
                query="recurring[interval]", max_length=32, required=False, description="day | week | month | year"
            ),
        ] = None,
        usage_type: Annotated[
            str | None,
            Parameter(query="recurring[usageType]", max_length=32, required=False, description="licensed | metered"),
        ] = None,
    ) -> dict[str, Any]:
        if currency is not None:
            currency = currency_param(currency, "currency")
        page = await list_prices(
            db,
            page_request,
            product=product,
            type_=_choice(price_type, PriceType, "type"),
            active=active,
            currency=currency,
            lookup_keys=lookup_keys,
            interval=_choice(interval, RecurringInterval, "recurring[interval]"),
            usage_type=_choice(usage_type, UsageType, "recurring[usageType]"),
            created=created,
        )
        return list_response(page, Price, self.path)
