"""Catalog requests: product attribute definitions, products, prices, quotes and exchange
rates. The API's request bodies and the payloads of the catalog commands.

The resources that come back are generated from Prisma (`contracts.resources`).

Amount fields of a price are typed loosely here on purpose (`JsonValue`): a float, a
numeric string or a bool must reach `billing.catalog.validation.validate_price` as the
client sent it, so that `12.5` is refused as a non-integer amount with its exact param
instead of being coerced. Every rule of a price definition lives in that one function.

PATCH bodies distinguish a field left out (unchanged) from a field sent as null
(cleared), like contracts/customers.py: handlers use `model_fields_set`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, Field, JsonValue, StrictInt, StringConstraints

from contracts.commands import Command
from contracts.common import Metadata, MetadataUpdate, RequestModel
from contracts.enums import AttributeType
from contracts.resources import ExchangeRate, Price, Product, ProductAttributeDefinition

ATTRIBUTE_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MAX_ATTRIBUTE_DEFINITIONS = 100
MAX_ENUM_VALUES = 100

AttributeKey = Annotated[str, StringConstraints(pattern=ATTRIBUTE_KEY_PATTERN)]
# Product attribute values by key; checked against the organization's definitions by
# billing.catalog.attributes (the keys are not constrained here, so that an unknown key
# is reported as `attributes[key]` by that check).
AttributeValues = dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], JsonValue]
EnumValue = Annotated[str, StringConstraints(min_length=1, max_length=200)]


# --- attribute definitions ----------------------------------------------------------------


class AttributeDefinitionCreate(Command[ProductAttributeDefinition]):
    command_type: ClassVar[str] = "product_attribute.create"

    key: AttributeKey = Field(description="Lowercase letters, digits and _; unique in the organization")
    label: str = Field(min_length=1, max_length=200)
    type: AttributeType
    required: bool = False
    enumValues: list[EnumValue] | None = Field(default=None, description="The allowed values; type=enum only")
    defaultValue: JsonValue = Field(default=None, description="Filled in when a product leaves the attribute out")


class AttributeDefinitionUpdate(RequestModel):
    """`key` and `type` never change: define a new attribute instead. `deprecated: true`
    stops the attribute from being required or accepted in new values; products that
    have it keep it."""

    label: str | None = Field(default=None, min_length=1, max_length=200)
    required: bool | None = None
    enumValues: list[EnumValue] | None = None
    defaultValue: JsonValue = None
    deprecated: bool | None = None


class AttributeDefinitionUpdateCommand(Command[ProductAttributeDefinition]):
    command_type: ClassVar[str] = "product_attribute.update"

    id: str = Field(max_length=64)
    changes: dict[str, Any] = Field(
        description="Only the fields the client sent (AttributeDefinitionUpdate, exclude_unset)"
    )


class AttributeDefinitionDeleteCommand(Command[dict[str, Any]]):
    command_type: ClassVar[str] = "product_attribute.delete"

    id: str = Field(max_length=64)


# --- products -------------------------------------------------------------------------------


class ProductCreate(Command[Product]):
    command_type: ClassVar[str] = "product.create"

    name: str = Field(min_length=1, max_length=250)
    description: str | None = Field(default=None, max_length=5000)
    active: bool = True
    attributes: AttributeValues = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)
    unitLabel: str | None = Field(default=None, max_length=12)


class ProductUpdate(RequestModel):
    """PATCH: absent fields are unchanged, null clears. `attributes` and `metadata` are
    merged key by key; a key sent as null is removed; `attributes: null` removes all
    (required attributes are then missing, which is an error)."""

    name: str | None = Field(default=None, min_length=1, max_length=250)
    description: str | None = Field(default=None, max_length=5000)
    active: bool | None = None
    attributes: AttributeValues | None = None
    metadata: MetadataUpdate | None = None
    unitLabel: str | None = Field(default=None, max_length=12)


class ProductUpdateCommand(Command[Product]):
    command_type: ClassVar[str] = "product.update"

    id: str = Field(max_length=64)
    changes: dict[str, Any] = Field(description="Only the fields the client sent (ProductUpdate, exclude_unset)")


class ProductDeleteCommand(Command[dict[str, Any]]):
    command_type: ClassVar[str] = "product.delete"

    id: str = Field(max_length=64)


# --- prices ---------------------------------------------------------------------------------

# The fields that decide what a price charges: validated by billing.catalog.validation.
PRICE_TERMS_FIELDS = frozenset(
    {
        "currency",
        "type",
        "billingScheme",
        "unitAmount",
        "unitAmountDecimal",
        "tiersMode",
        "tiers",
        "transformQuantity",
        "recurring",
        "currencyOptions",
    }
)


class PriceCreate(Command[Price]):
    command_type: ClassVar[str] = "price.create"

    product: str = Field(min_length=1, max_length=64, description="The product's id")
    currency: JsonValue = Field(description="ISO 4217, e.g. usd")
    type: JsonValue = Field(default=None, description="one_time | recurring (inferred from `recurring`)")
    billingScheme: JsonValue = Field(default=None, description="per_unit (default) | tiered")
    unitAmount: JsonValue = Field(default=None, description="Integer minor units")
    unitAmountDecimal: JsonValue = Field(default=None, description="Decimal string, minor units, up to 12 places")
    tiersMode: JsonValue = Field(default=None, description="graduated | volume")
    tiers: JsonValue = Field(
        default=None, description='[{upTo: int | "inf", unitAmount, unitAmountDecimal, flatAmount, flatAmountDecimal}]'
    )
    transformQuantity: JsonValue = Field(default=None, description="{divideBy, round: up | down}: package pricing")
    recurring: JsonValue = Field(default=None, description="{interval, intervalCount, usageType, meter}")
    currencyOptions: JsonValue = Field(default=None, description="{eur: {unitAmount | unitAmountDecimal | tiers}}")
    lookupKey: str | None = Field(default=None, min_length=1, max_length=200)
    transferLookupKey: bool = Field(default=False, description="Move lookupKey from the price that has it")
    nickname: str | None = Field(default=None, max_length=250)
    metadata: Metadata = Field(default_factory=dict)
    active: bool = True

    def terms(self) -> dict[str, JsonValue]:
        """The price definition as validate_price takes it (only what the client sent)."""
        return {key: value for key, value in self.model_dump(exclude_unset=True).items() if key in PRICE_TERMS_FIELDS}


class PriceUpdate(RequestModel):
    """What a price allows to change; its amounts are immutable (create a new price)."""

    active: bool | None = None
    nickname: str | None = Field(default=None, max_length=250)
    metadata: MetadataUpdate | None = None
    lookupKey: str | None = Field(default=None, min_length=1, max_length=200)
    transferLookupKey: bool | None = None


class PriceUpdateCommand(Command[Price]):
    command_type: ClassVar[str] = "price.update"

    id: str = Field(max_length=64)
    changes: dict[str, Any] = Field(description="Only the fields the client sent (PriceUpdate, exclude_unset)")


MAX_QUOTE_QUANTITY = 10**15


class QuoteRequest(RequestModel):
    quantity: StrictInt = Field(ge=0, le=MAX_QUOTE_QUANTITY)
    currency: str | None = Field(
        default=None,
        max_length=16,
        description="The price's currency or one of its currencyOptions (default: the price's)",
    )


# --- exchange rates -------------------------------------------------------------------------


class ExchangeRateCreate(Command[ExchangeRate]):
    """1 `base` = `rate` `quote`, in major units, according to `source`, at `asOf`."""

    command_type: ClassVar[str] = "exchange_rate.create"
    row_security: ClassVar[bool] = False  # shared reference data: the operator writes it as the connecting role

    base: str = Field(min_length=1, max_length=16)
    quote: str = Field(min_length=1, max_length=16)
    rate: str = Field(min_length=1, max_length=64, description="A decimal string such as '1.0842' (never a float)")
    source: str = Field(min_length=1, max_length=100)
    asOf: AwareDatetime
