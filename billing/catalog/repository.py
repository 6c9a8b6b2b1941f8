"""Tenant-scoped catalog reads for the API and the services (the tenant session adds the
organization filter to every query), and the JSON shape of prices and quotes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import ColumnElement, String, cast, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.attributes import AttributeDefinition, filter_json
from billing.catalog.pricing import PriceTerms
from billing.db.pagination import CreatedRange, Page, PageRequest, paginate
from billing.db.search import Clause, SearchQuery, combined, text_condition
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest
from billing.models import Price, Product, ProductAttributeDefinition
from contracts.enums import PriceType, RecurringInterval, UsageType

PRODUCT_SEARCH_FIELDS = {"name", "description", "active", "metadata"}


# --- attribute definitions ----------------------------------------------------------------------


async def get_attribute_definition(
    session: AsyncSession, definition_id: str, *, for_update: bool = False
) -> ProductAttributeDefinition | None:
    return await get_one(
        session, ProductAttributeDefinition, ProductAttributeDefinition.id, definition_id, for_update=for_update
    )


async def get_attribute_definition_by_key(session: AsyncSession, key: str) -> ProductAttributeDefinition | None:
    return await get_one(session, ProductAttributeDefinition, ProductAttributeDefinition.key, key)


async def attribute_definitions(session: AsyncSession) -> list[AttributeDefinition]:
    """The organization's current definitions (deprecated ones included), for validation."""
    tenant_of(session)
    rows = await session.scalars(select(ProductAttributeDefinition).order_by(ProductAttributeDefinition.key))
    return [AttributeDefinition.of(row) for row in rows.all()]


async def list_attribute_definitions(
    session: AsyncSession, page: PageRequest, *, deprecated: bool | None = None
) -> Page[ProductAttributeDefinition]:
    tenant_of(session)
    statement = select(ProductAttributeDefinition)
    if deprecated is not None:
        statement = statement.where(ProductAttributeDefinition.deprecated.is_(deprecated))
    return await paginate(session, statement, ProductAttributeDefinition, page, "product attribute")


# --- products -------------------------------------------------------------------------------------


async def get_product(session: AsyncSession, product_id: str, *, for_update: bool = False) -> Product | None:
    return await get_one(session, Product, Product.id, product_id, for_update=for_update)


async def list_products(
    session: AsyncSession,
    page: PageRequest,
    *,
    active: bool | None = None,
    ids: Sequence[str] | None = None,
    created: CreatedRange = CreatedRange(),
    attributes: Mapping[str, str] | None = None,
) -> Page[Product]:
    """`attributes` maps a key to the query's raw value (`attributes[color]=red`); each
    becomes a JSONB containment test, typed by the attribute's definition, served by the
    GIN index on products.attributes."""
    tenant_of(session)
    statement = select(Product)
    if active is not None:
        statement = statement.where(Product.active.is_(active))
    if ids:
        statement = statement.where(Product.id.in_(list(ids)))
    statement = created.apply(statement, Product.created_at)
    if attributes:
        definitions = {definition.key: definition for definition in await attribute_definitions(session)}
        for key, raw in attributes.items():
            document = filter_json(key, raw, definitions.get(key))
            statement = statement.where(Product.attributes.op("@>")(cast(literal(document, String()), JSONB)))
    return await paginate(session, statement, Product, page, "product")


def _product_condition(clause: Clause) -> ColumnElement[bool]:
    column: ColumnElement[str]
    if clause.field == "metadata":
        column = Product.metadata_[clause.key].astext
    elif clause.field == "active":
        if clause.op != ":" or clause.value not in ("true", "false"):
            raise InvalidRequest("Search active:'true' or active:'false'.", code="invalid_search_query", param="query")
        return Product.active.is_(clause.value == "true")
    else:
        column = getattr(Product, clause.field)
    return text_condition(column, clause)


async def search_products(session: AsyncSession, query: SearchQuery, page: PageRequest) -> Page[Product]:
    tenant_of(session)
    conditions = [_product_condition(clause) for clause in query.clauses]
    return await paginate(session, select(Product).where(combined(query, conditions)), Product, page, "product")


# --- prices ----------------------------------------------------------------------------------------


async def get_price(session: AsyncSession, price_id: str, *, for_update: bool = False) -> Price | None:
    return await get_one(session, Price, Price.id, price_id, for_update=for_update)


async def get_price_by_lookup_key(session: AsyncSession, lookup_key: str, *, for_update: bool = False) -> Price | None:
    return await get_one(session, Price, Price.lookup_key, lookup_key, for_update=for_update)


async def list_prices(
    session: AsyncSession,
    page: PageRequest,
    *,
    product: str | None = None,
    type_: PriceType | None = None,
    active: bool | None = None,
    currency: str | None = None,
    lookup_keys: Sequence[str] | None = None,
    interval: RecurringInterval | None = None,
    usage_type: UsageType | None = None,
    created: CreatedRange = CreatedRange(),
) -> Page[Price]:
    """`currency` matches the price's own currency or one of its currencyOptions (a price
    that can be charged in it), as a price list by currency wants."""
    tenant_of(session)
    statement = select(Price)
    if product is not None:
        statement = statement.where(Price.product_id == product)
    if type_ is not None:
        statement = statement.where(Price.type == type_)
    if active is not None:
        statement = statement.where(Price.active.is_(active))
    if currency is not None:
        statement = statement.where(or_(Price.currency == currency, Price.currency_options.has_key(currency)))
    if lookup_keys:
        statement = statement.where(Price.lookup_key.in_(list(lookup_keys)))
    if interval is not None:
        statement = statement.where(Price.recurring_interval == interval)
    if usage_type is not None:
        statement = statement.where(Price.recurring_usage_type == usage_type)
    statement = created.apply(statement, Price.created_at)
    return await paginate(session, statement, Price, page, "price")


# --- JSON shapes -------------------------------------------------------------------------------------


def price_terms(price: Price) -> PriceTerms:
    """What a stored price charges, for the pricing engine."""
    return PriceTerms.from_dict(
        {
            "currency": price.currency,
            "billingScheme": price.billing_scheme.value,
            "unitAmount": price.unit_amount,
            "unitAmountDecimal": price.unit_amount_decimal,
            "tiersMode": price.tiers_mode.value if price.tiers_mode is not None else None,
            "tiers": price.tiers,
            "transformQuantity": price.transform_quantity,
            "currencyOptions": price.currency_options,
        }
    )
