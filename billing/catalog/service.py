"""Catalog writes, called by the consumers inside the command's transaction: attribute
definitions, products and prices. Each function takes a tenant session, changes rows, and
never commits. The API runs the same checks before publishing (so that bad input is
answered at once); here they run again, as the authority.

Decisions (documented in the README's catalog section):
- A product is deleted only when none of its prices is in use. A price is in use when a
  subscription item (of a subscription in any status), a subscription schedule phase or an
  invoice line item refers to it: those are billing history. A product whose prices are
  all unused is deleted together with them (price.deleted events). Otherwise archive it
  (active=false), as Stripe advises.
- Price amounts never change: PATCH takes active, nickname, metadata and lookupKey only.
- A lookupKey is unique in the organization; `transferLookupKey: true` moves it from the
  price that has it (which gets a price.updated event) in the same transaction.
- An attribute definition is removed at once (its key can then be defined anew); the
  values products already have are kept, see billing/catalog/attributes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.attributes import (
    attributes_after_update,
    attributes_for_new_product,
    check_definition,
)
from billing.catalog.pricing import InvalidQuantity, PricingError, UnsupportedCurrency, quote
from billing.catalog.repository import (
    attribute_definitions,
    get_attribute_definition,
    get_attribute_definition_by_key,
    get_price,
    get_price_by_lookup_key,
    get_product,
    price_terms,
)
from billing.catalog.validation import PriceValidationError, ValidatedPrice, validate_price
from billing.db.sessions import tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.models import (
    InvoiceLineItem,
    Meter,
    Price,
    Product,
    ProductAttributeDefinition,
    SubscriptionItem,
    SubscriptionSchedulePhase,
)
from billing.money.amounts import AmountOutOfRange
from billing.money.currencies import is_known_currency
from billing.requests.patch import merge_metadata, parse_changes
from contracts.catalog import (
    MAX_ATTRIBUTE_DEFINITIONS,
    AttributeDefinitionCreate,
    AttributeDefinitionUpdate,
    PriceCreate,
    PriceUpdate,
    ProductCreate,
    ProductUpdate,
)
from contracts.decimals import plain_decimal
from contracts.enums import AttributeType, BillingScheme, PriceType, RecurringInterval, TiersMode, UsageType


def _not_null(field: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid {field}: it cannot be null.", code="parameter_invalid", param=field)


# --- attribute definitions ----------------------------------------------------------------------


async def create_attribute_definition(
    session: AsyncSession, data: AttributeDefinitionCreate
) -> ProductAttributeDefinition:
    check_definition(data.type, data.enumValues, data.defaultValue)
    existing = await get_attribute_definition_by_key(session, data.key)
    if existing is not None:
        state = "a deprecated attribute" if existing.deprecated else "an attribute"
        raise InvalidRequest(
            f"The key '{data.key}' is already used by {state} ({existing.id}); update it, or delete it first.",
            code="attribute_key_in_use",
            param="key",
        )
    count = await session.scalar(select(func.count(ProductAttributeDefinition.id)))
    if (count or 0) >= MAX_ATTRIBUTE_DEFINITIONS:
        raise InvalidRequest(
            f"An organization can define at most {MAX_ATTRIBUTE_DEFINITIONS} product attributes.",
            code="attribute_limit_reached",
            param="key",
        )
    definition = ProductAttributeDefinition(
        id=new_id("product_attribute"),
        organization_id=tenant_of(session),
        key=data.key,
        label=data.label,
        type=data.type,
        required=data.required,
        enum_values=data.enumValues,
        default_value=data.defaultValue,
    )
    session.add(definition)
    await session.flush()
    return definition


async def _live_definition(session: AsyncSession, definition_id: str) -> ProductAttributeDefinition:
    definition = await get_attribute_definition(session, definition_id, for_update=True)
    if definition is None:
        raise ResourceMissing("product attribute", definition_id)
    return definition


def check_definition_update(definition: Any, update: AttributeDefinitionUpdate) -> tuple[Any, Any]:
    """The enum values and default the definition will have after `update`, checked;
    raises InvalidRequest with the param the client should change."""
    sent = update.model_fields_set
    for field in ("label", "required", "deprecated"):
        if field in sent and getattr(update, field) is None:
            raise _not_null(field)
    enum_values = update.enumValues if "enumValues" in sent else definition.enum_values
    default = update.defaultValue if "defaultValue" in sent else definition.default_value
    try:
        check_definition(AttributeType(definition.type), enum_values, default)
    except InvalidRequest as error:
        if error.param == "defaultValue" and "defaultValue" not in sent:
            # the stored default no longer fits the new enumValues: the change is the culprit
            raise InvalidRequest(
                f"Invalid enumValues: they must keep the default value {default!r} (or change defaultValue too).",
                code="parameter_invalid",
                param="enumValues",
            ) from None
        raise
    return enum_values, default


async def update_attribute_definition(
    session: AsyncSession, definition_id: str, changes: dict[str, Any]
) -> ProductAttributeDefinition:
    update = parse_changes(AttributeDefinitionUpdate, changes)
    definition = await _live_definition(session, definition_id)
    enum_values, default = check_definition_update(definition, update)
    sent = update.model_fields_set
    # a null label was refused by check_definition_update
    if "label" in sent and update.label is not None:
        definition.label = update.label
    if "required" in sent:
        definition.required = bool(update.required)
    definition.enum_values = enum_values
    definition.default_value = default
    if "deprecated" in sent and bool(update.deprecated) != definition.deprecated:
        definition.deprecated = bool(update.deprecated)
        definition.deprecated_at = datetime.now(UTC) if update.deprecated else None
    await session.flush()
    return definition


async def delete_attribute_definition(session: AsyncSession, definition_id: str) -> dict[str, Any]:
    """Removes the definition; products keep the values they have (see attributes.py)."""
    definition = await _live_definition(session, definition_id)
    await session.execute(delete(ProductAttributeDefinition).where(ProductAttributeDefinition.id == definition.id))
    return {"id": definition.id, "key": definition.key, "deleted": True}


# --- products ---------------------------------------------------------------------------------------


async def create_product(session: AsyncSession, data: ProductCreate) -> Product:
    attributes = attributes_for_new_product(data.attributes, await attribute_definitions(session))
    product = Product(
        id=new_id("product"),
        organization_id=tenant_of(session),
        name=data.name,
        description=data.description,
        active=data.active,
        attributes=attributes,
        metadata_=data.metadata,
        unit_label=data.unitLabel,
    )
    session.add(product)
    await session.flush()
    return product


async def _live_product(session: AsyncSession, product_id: str) -> Product:
    product = await get_product(session, product_id, for_update=True)
    if product is None:
        raise ResourceMissing("product", product_id)
    return product


async def product_changes(session: AsyncSession, product: Product, update: ProductUpdate) -> dict[str, Any]:
    """Column values after `update` (only what it changes), checked; no writes."""
    values: dict[str, Any] = {}
    for field in update.model_fields_set:
        value = getattr(update, field)
        if field in ("name", "active") and value is None:
            raise _not_null(field)
        if field == "attributes":
            values["attributes"] = attributes_after_update(
                product.attributes, value, await attribute_definitions(session)
            )
        elif field == "metadata":
            values["metadata_"] = merge_metadata(product.metadata_, value)
        elif field == "unitLabel":
            values["unit_label"] = value
        else:
            values[field] = value
    return values


async def update_product(session: AsyncSession, product_id: str, changes: dict[str, Any]) -> Product:
    update = parse_changes(ProductUpdate, changes)
    product = await _live_product(session, product_id)
    for column, value in (await product_changes(session, product, update)).items():
        setattr(product, column, value)
    await session.flush()
    return product


async def prices_in_use(session: AsyncSession, price_ids: list[str]) -> list[str]:
    """Which of `price_ids` subscriptions, schedules or invoices refer to."""
    if not price_ids:
        return []
    used: set[str] = set()
    used.update(
        (
            await session.scalars(
                select(SubscriptionItem.price_id).where(SubscriptionItem.price_id.in_(price_ids)).distinct()
            )
        ).all()
    )
    used.update(
        price_id
        for price_id in (
            await session.scalars(
                select(InvoiceLineItem.price_id).where(InvoiceLineItem.price_id.in_(price_ids)).distinct()
            )
        ).all()
        if price_id is not None
    )
    for price_id in set(price_ids) - used:
        referenced = await session.scalar(
            select(SubscriptionSchedulePhase.id)
            .where(SubscriptionSchedulePhase.items.contains([{"priceId": price_id}]))
            .limit(1)
        )
        if referenced is not None:
            used.add(price_id)
    return sorted(used)


async def delete_product(session: AsyncSession, product_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Deletes the product and its prices when none of them is in use; returns the deleted
    product and prices (as `{"id", "deleted": true}`)."""
    product = await _live_product(session, product_id)
    price_ids = list(
        (await session.scalars(select(Price.id).where(Price.product_id == product.id).with_for_update())).all()
    )
    used = await prices_in_use(session, price_ids)
    if used:
        shown = ", ".join(used[:5]) + (" ..." if len(used) > 5 else "")
        raise InvalidRequest(
            f"The product '{product.id}' cannot be deleted: its price(s) {shown} are used by subscriptions or "
            "invoices. Archive it instead (active=false).",
            code="product_in_use",
        )
    if price_ids:
        await session.execute(delete(Price).where(Price.id.in_(price_ids)))
    await session.execute(delete(Product).where(Product.id == product.id))
    return {"id": product.id, "deleted": True}, [{"id": price_id, "deleted": True} for price_id in price_ids]


# --- prices ---------------------------------------------------------------------------------------


def validated_price(data: PriceCreate) -> ValidatedPrice:
    """The price definition checked by billing.catalog.validation, errors as 400s."""
    try:
        return validate_price(data.terms())
    except PriceValidationError as error:
        raise InvalidRequest(error.message, code=error.code, param=error.param or None) from None


def _stored_tiers(tiers: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Tiers as Stripe returns them: the open-ended last tier has upTo null."""
    if tiers is None:
        return None
    return [{**tier, "upTo": None if tier["upTo"] == "inf" else tier["upTo"]} for tier in tiers]


def _stored_options(options: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    for code, option in (options or {}).items():
        stored[code] = {**option, "tiers": _stored_tiers(option["tiers"])} if "tiers" in option else dict(option)
    return stored


async def product_for_price(session: AsyncSession, product_id: str) -> Product:
    product = await get_product(session, product_id)
    if product is None:
        raise InvalidRequest(f"No such product: '{product_id}'", code="resource_missing", param="product")
    return product


async def _meter_id(session: AsyncSession, meter_id: str | None) -> str | None:
    if meter_id is None:
        return None
    found = await session.scalar(select(Meter.id).where(Meter.id == meter_id))
    if found is None:
        raise InvalidRequest(f"No such meter: '{meter_id}'", code="resource_missing", param="recurring[meter]")
    return found


def _lookup_key_in_use(lookup_key: str, holder: Price) -> InvalidRequest:
    return InvalidRequest(
        f"The lookup key '{lookup_key}' is already used by price '{holder.id}'. "
        "Send transferLookupKey: true to move it to this price.",
        code="lookup_key_in_use",
        param="lookupKey",
    )


async def check_lookup_key(session: AsyncSession, lookup_key: str | None, transfer: bool, price_id: str | None) -> None:
    """Refuses a lookup key another price holds unless it is to be transferred: the API's
    early answer, before the command is published (`claim_lookup_key` decides when it is
    applied)."""
    if lookup_key is None or transfer:
        return
    holder = await get_price_by_lookup_key(session, lookup_key)
    if holder is not None and holder.id != price_id:
        raise _lookup_key_in_use(lookup_key, holder)


async def claim_lookup_key(
    session: AsyncSession, lookup_key: str, transfer: bool, price_id: str | None
) -> Price | None:
    """Checks that `lookup_key` can go to the price `price_id` (None: a new price); with
    `transfer`, takes it from the price that has it and returns that price."""
    holder = await get_price_by_lookup_key(session, lookup_key, for_update=True)
    if holder is None or holder.id == price_id:
        return None
    if not transfer:
        raise _lookup_key_in_use(lookup_key, holder)
    holder.lookup_key = None
    await session.flush()  # the unique index must see it released before it is taken
    return holder


async def create_price(session: AsyncSession, data: PriceCreate) -> tuple[Price, Price | None]:
    """The new price, and the price its lookupKey was transferred from (if any)."""
    validated = validated_price(data)
    product = await product_for_price(session, data.product)
    meter_id = await _meter_id(session, validated.recurring.meter if validated.recurring else None)
    previous_holder = None
    if data.lookupKey is not None:
        previous_holder = await claim_lookup_key(session, data.lookupKey, data.transferLookupKey, None)
    stored = validated.to_dict()
    terms = validated.terms
    recurring = validated.recurring
    price = Price(
        id=new_id("price"),
        organization_id=tenant_of(session),
        product_id=product.id,
        active=data.active,
        type=PriceType(str(validated.type)),
        currency=terms.currency,
        billing_scheme=BillingScheme(str(terms.billing_scheme)),
        unit_amount=terms.unit_amount,
        unit_amount_decimal=terms.unit_amount_decimal,
        tiers_mode=TiersMode(str(terms.tiers_mode)) if terms.tiers_mode is not None else None,
        tiers=_stored_tiers(stored.get("tiers")),
        transform_quantity=stored.get("transformQuantity"),
        recurring_interval=RecurringInterval(str(recurring.interval)) if recurring else None,
        recurring_interval_count=recurring.interval_count if recurring else None,
        recurring_usage_type=UsageType(str(recurring.usage_type)) if recurring else None,
        meter_id=meter_id,
        currency_options=_stored_options(stored.get("currencyOptions")),
        lookup_key=data.lookupKey,
        nickname=data.nickname,
        metadata_=data.metadata,
    )
    session.add(price)
    await session.flush()
    return price, previous_holder


def check_price_update(update: PriceUpdate) -> None:
    sent = update.model_fields_set
    if "active" in sent and update.active is None:
        raise _not_null("active")
    if update.transferLookupKey and "lookupKey" not in sent:
        raise InvalidRequest(
            "transferLookupKey needs the lookupKey to transfer.", code="parameter_missing", param="lookupKey"
        )


async def update_price(session: AsyncSession, price_id: str, changes: dict[str, Any]) -> tuple[Price, Price | None]:
    """Only active, nickname, metadata and lookupKey change; returns the price and the
    price its lookupKey was transferred from (if any)."""
    update = parse_changes(PriceUpdate, changes)
    check_price_update(update)
    price = await get_price(session, price_id, for_update=True)
    if price is None:
        raise ResourceMissing("price", price_id)
    sent = update.model_fields_set
    previous_holder = None
    if "lookupKey" in sent and update.lookupKey is not None:
        previous_holder = await claim_lookup_key(session, update.lookupKey, bool(update.transferLookupKey), price.id)
    if "lookupKey" in sent:
        price.lookup_key = update.lookupKey
    if "active" in sent:
        price.active = bool(update.active)
    if "nickname" in sent:
        price.nickname = update.nickname
    if "metadata" in sent:
        price.metadata_ = merge_metadata(price.metadata_, update.metadata)
    await session.flush()
    return price, previous_holder


# --- quotes ------------------------------------------------------------------------------------------


def quote_price(price: Price, quantity: int, currency: str | None) -> dict[str, Any]:
    """What `price` charges for `quantity` in `currency` (default: the price's own), line
    by line in integer minor units. A currency the price has no amounts in is an error:
    nothing is ever converted. No writes."""
    terms = price_terms(price)
    code = currency if currency is not None else terms.currency
    try:
        result = quote(terms, quantity, code)
    except UnsupportedCurrency as error:
        if not is_known_currency(code):
            raise InvalidRequest(
                f"Invalid currency: {code!r} is not a supported ISO 4217 currency code.",
                code="invalid_currency",
                param="currency",
            ) from None
        raise InvalidRequest(error.message, code="currency_not_supported", param="currency") from None
    except InvalidQuantity as error:
        raise InvalidRequest(error.message, code="parameter_invalid_integer", param="quantity") from None
    except AmountOutOfRange as error:
        raise InvalidRequest(
            f"Invalid quantity: the amount is beyond what can be charged ({error}).",
            code="amount_too_large",
            param="quantity",
        ) from None
    except PricingError as error:  # pragma: no cover - stored prices are valid
        raise InvalidRequest(error.message, code="parameter_invalid", param=error.param) from None
    tiers = terms.terms_in(result.currency).tiers
    lines = []
    for line in result.lines:
        entry: dict[str, Any] = {
            "tierIndex": line.tier_index,
            "quantity": line.quantity,
            "unitAmountDecimal": plain_decimal(line.unit_amount),
            "flatAmountDecimal": plain_decimal(line.flat_amount),
            "amount": line.amount,
        }
        if line.tier_index is not None:
            entry["upTo"] = tiers[line.tier_index].up_to
        lines.append(entry)
    return {
        "object": "price_quote",
        "price": price.id,
        "currency": result.currency,
        "quantity": result.quantity,
        "billedQuantity": result.billed_quantity,
        "billingScheme": str(terms.billing_scheme),
        "tiersMode": str(terms.tiers_mode) if terms.tiers_mode is not None else None,
        "lines": lines,
        "total": result.total,
    }
