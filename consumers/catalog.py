"""Catalog commands: attribute definitions, products, prices and exchange rates. Parse,
call billing.catalog.service / billing.fx.service, report what happened."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog import service
from billing.fx import service as fx_service
from billing.models import Price as PriceRow
from consumers.registry import Applied, CommandRouter
from contracts.catalog import (
    AttributeDefinitionCreate,
    AttributeDefinitionDeleteCommand,
    AttributeDefinitionUpdateCommand,
    ExchangeRateCreate,
    PriceCreate,
    PriceUpdateCommand,
    ProductCreate,
    ProductDeleteCommand,
    ProductUpdateCommand,
)
from contracts.events import (
    EXCHANGE_RATE_CREATED,
    PRICE_CREATED,
    PRICE_DELETED,
    PRICE_UPDATED,
    PRODUCT_ATTRIBUTE_CREATED,
    PRODUCT_ATTRIBUTE_DELETED,
    PRODUCT_ATTRIBUTE_UPDATED,
    PRODUCT_CREATED,
    PRODUCT_DELETED,
    PRODUCT_UPDATED,
    EventType,
)
from contracts.resources import ExchangeRate, Price, Product, ProductAttributeDefinition

router = CommandRouter()


def _definition(
    definition: object, event: EventType[ProductAttributeDefinition]
) -> Applied[ProductAttributeDefinition]:
    resource = ProductAttributeDefinition.model_validate(definition).model_dump(mode="json")
    return Applied("product_attribute", resource, [event.of(resource)])


@router.handles(AttributeDefinitionCreate)
async def create_attribute(
    session: AsyncSession, command: AttributeDefinitionCreate
) -> Applied[ProductAttributeDefinition]:
    return _definition(await service.create_attribute_definition(session, command), PRODUCT_ATTRIBUTE_CREATED)


@router.handles(AttributeDefinitionUpdateCommand)
async def update_attribute(
    session: AsyncSession, command: AttributeDefinitionUpdateCommand
) -> Applied[ProductAttributeDefinition]:
    definition = await service.update_attribute_definition(session, command.id, command.changes)
    return _definition(definition, PRODUCT_ATTRIBUTE_UPDATED)


@router.handles(AttributeDefinitionDeleteCommand)
async def delete_attribute(session: AsyncSession, command: AttributeDefinitionDeleteCommand) -> Applied[dict[str, Any]]:
    deleted = await service.delete_attribute_definition(session, command.id)
    return Applied("product_attribute", deleted, [PRODUCT_ATTRIBUTE_DELETED.of(deleted)])


def _product(product: object, event: EventType[Product]) -> Applied[Product]:
    resource = Product.model_validate(product).model_dump(mode="json")
    return Applied("product", resource, [event.of(resource)])


@router.handles(ProductCreate)
async def create_product(session: AsyncSession, command: ProductCreate) -> Applied[Product]:
    return _product(await service.create_product(session, command), PRODUCT_CREATED)


@router.handles(ProductUpdateCommand)
async def update_product(session: AsyncSession, command: ProductUpdateCommand) -> Applied[Product]:
    return _product(await service.update_product(session, command.id, command.changes), PRODUCT_UPDATED)


@router.handles(ProductDeleteCommand)
async def delete_product(session: AsyncSession, command: ProductDeleteCommand) -> Applied[dict[str, Any]]:
    product, prices = await service.delete_product(session, command.id)
    return Applied("product", product, [*(PRICE_DELETED.of(price) for price in prices), PRODUCT_DELETED.of(product)])


def _price(price: PriceRow, previous_holder: PriceRow | None, event: EventType[Price]) -> Applied[Price]:
    resource = Price.model_validate(price).model_dump(mode="json")
    events = (
        []
        if previous_holder is None
        else [PRICE_UPDATED.of(Price.model_validate(previous_holder).model_dump(mode="json"))]
    )  # its lookupKey moved here
    return Applied("price", resource, [*events, event.of(resource)])


@router.handles(PriceCreate)
async def create_price(session: AsyncSession, command: PriceCreate) -> Applied[Price]:
    price, previous_holder = await service.create_price(session, command)
    return _price(price, previous_holder, PRICE_CREATED)


@router.handles(PriceUpdateCommand)
async def update_price(session: AsyncSession, command: PriceUpdateCommand) -> Applied[Price]:
    price, previous_holder = await service.update_price(session, command.id, command.changes)
    return _price(price, previous_holder, PRICE_UPDATED)


# exchange rates are shared reference data the tenant role only reads (the command says
# row_security = False); the handler lets only BILLING_FX_WRITER_ORGANIZATIONS write them
# (billing/fx/service.py)
@router.handles(ExchangeRateCreate)
async def create_exchange_rate(session: AsyncSession, command: ExchangeRateCreate) -> Applied[ExchangeRate]:
    resource = fx_service.exchange_rate_json(await fx_service.create_exchange_rate(session, command))
    return Applied("exchange_rate", resource, [EXCHANGE_RATE_CREATED.of(resource)])
