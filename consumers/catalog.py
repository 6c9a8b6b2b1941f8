"""Catalog commands: attribute definitions, products, prices and exchange rates. Parse,
call billing.catalog.service / billing.fx.service, report what happened."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog import service
from billing.catalog.repository import price_json
from billing.fx import service as fx_service
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
from contracts.resources import Product, ProductAttributeDefinition

router = CommandRouter()


def _definition(definition: object, event_type: str) -> Applied:
    resource = ProductAttributeDefinition.model_validate(definition).model_dump(mode="json")
    return Applied("product_attribute", resource, [(event_type, resource)])


@router.command("product_attribute.create", AttributeDefinitionCreate)
async def create_attribute(session: AsyncSession, payload: AttributeDefinitionCreate) -> Applied:
    return _definition(await service.create_attribute_definition(session, payload), "product_attribute.created")


@router.command("product_attribute.update", AttributeDefinitionUpdateCommand)
async def update_attribute(session: AsyncSession, payload: AttributeDefinitionUpdateCommand) -> Applied:
    definition = await service.update_attribute_definition(session, payload.id, payload.changes)
    return _definition(definition, "product_attribute.updated")


@router.command("product_attribute.delete", AttributeDefinitionDeleteCommand)
async def delete_attribute(session: AsyncSession, payload: AttributeDefinitionDeleteCommand) -> Applied:
    deleted = await service.delete_attribute_definition(session, payload.id)
    return Applied("product_attribute", deleted, [("product_attribute.deleted", deleted)])


def _product(product: object, event_type: str) -> Applied:
    resource = Product.model_validate(product).model_dump(mode="json")
    return Applied("product", resource, [(event_type, resource)])


@router.command("product.create", ProductCreate)
async def create_product(session: AsyncSession, payload: ProductCreate) -> Applied:
    return _product(await service.create_product(session, payload), "product.created")


@router.command("product.update", ProductUpdateCommand)
async def update_product(session: AsyncSession, payload: ProductUpdateCommand) -> Applied:
    return _product(await service.update_product(session, payload.id, payload.changes), "product.updated")


@router.command("product.delete", ProductDeleteCommand)
async def delete_product(session: AsyncSession, payload: ProductDeleteCommand) -> Applied:
    product, prices = await service.delete_product(session, payload.id)
    events: list[tuple[str, dict[str, Any]]] = [("price.deleted", price) for price in prices]
    return Applied("product", product, [*events, ("product.deleted", product)])


def _price(price: object, previous_holder: object | None, event_type: str) -> Applied:
    resource = price_json(price)  # type: ignore[arg-type]
    events: list[tuple[str, dict[str, Any]]] = []
    if previous_holder is not None:  # its lookupKey moved to this price
        events.append(("price.updated", price_json(previous_holder)))  # type: ignore[arg-type]
    events.append((event_type, resource))
    return Applied("price", resource, events)


@router.command("price.create", PriceCreate)
async def create_price(session: AsyncSession, payload: PriceCreate) -> Applied:
    price, previous_holder = await service.create_price(session, payload)
    return _price(price, previous_holder, "price.created")


@router.command("price.update", PriceUpdateCommand)
async def update_price(session: AsyncSession, payload: PriceUpdateCommand) -> Applied:
    price, previous_holder = await service.update_price(session, payload.id, payload.changes)
    return _price(price, previous_holder, "price.updated")


# exchange rates are shared reference data the tenant role only reads; the handler lets
# only BILLING_FX_WRITER_ORGANIZATIONS write them (billing/fx/service.py)
@router.command("exchange_rate.create", ExchangeRateCreate, row_security=False)
async def create_exchange_rate(session: AsyncSession, payload: ExchangeRateCreate) -> Applied:
    resource = fx_service.exchange_rate_json(await fx_service.create_exchange_rate(session, payload))
    return Applied("exchange_rate", resource, [("exchange_rate.created", resource)])
