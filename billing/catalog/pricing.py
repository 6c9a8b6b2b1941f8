"""The pricing engine: what a price charges for a quantity, in integer minor units.

Pure functions over frozen dataclasses; no I/O and no ORM. The semantics are Stripe's:

- per_unit: quantity x unit amount.
- package (per_unit with transform_quantity): the quantity is divided by divide_by and
  rounded up or down to whole packages, then priced per unit.
- tiered, graduated: each slice of the quantity is charged at its own tier's unit amount,
  plus the flat amount of every tier the quantity reaches.
- tiered, volume: the whole quantity is charged at the unit amount of the tier that
  contains it, plus that tier's flat amount.

Quantity 0 lies in the first tier (Stripe shows tiers as starting at unit 0), so a flat
amount on the first tier is charged even for quantity 0, in both tiers modes. A price that
should cost nothing at zero usage puts its flat fee on a later tier (e.g. tier 1 up_to=1
with unit_amount, flat fee on tier 2) or uses a separate per_unit price for the base fee.

Rounding happens once per line, via billing.money.amounts: a graduated price has one line per tier
reached (the slice's units plus the tier's flat amount, rounded together); volume and
per_unit prices have one line. The total is the sum of the rounded lines.

A quote in a currency that is neither the price's currency nor one of its currency options
raises UnsupportedCurrency; nothing is ever converted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from typing import Any

from billing.money.amounts import (
    MAX_DECIMAL_PLACES,
    MAX_UNIT_AMOUNT,
    check_line_amount,
    decimal_places,
    line_amount,
    parse_decimal,
    reject_float,
    require_decimal,
    require_int,
)
from billing.money.currencies import UnknownCurrency, get_currency


class BillingScheme(StrEnum):
    PER_UNIT = "per_unit"
    TIERED = "tiered"


class TiersMode(StrEnum):
    GRADUATED = "graduated"
    VOLUME = "volume"


class TransformRound(StrEnum):
    UP = "up"
    DOWN = "down"


class PricingError(ValueError):
    """A price cannot be quoted as asked. `param` names the offending input, Stripe-style."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class UnsupportedCurrency(PricingError):
    def __init__(self, currency: object, supported: Iterable[str], param: str = "currency") -> None:
        self.currency = currency
        self.supported = tuple(supported)
        super().__init__(
            f"Invalid {param}: this price has no amount in {currency!r}; "
            f"it can be charged in {', '.join(self.supported)} only (currencies are never converted).",
            param,
        )


class InvalidQuantity(PricingError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "quantity")


class InvalidPriceTerms(PricingError):
    """Terms that break the price model's invariants (validation.py should have caught them)."""


# --- terms -----------------------------------------------------------------------------


def _optional_amount(value: object, what: str) -> int | None:
    if value is None:
        return None
    amount = require_int(value, what)
    if not 0 <= amount <= MAX_UNIT_AMOUNT:
        raise InvalidPriceTerms(f"{what} must be between 0 and {MAX_UNIT_AMOUNT}, got {amount}.")
    return amount


def _optional_decimal_amount(value: object, what: str) -> Decimal | None:
    if value is None:
        return None
    amount = require_decimal(value, what)
    if amount < 0 or amount > MAX_UNIT_AMOUNT:
        raise InvalidPriceTerms(f"{what} must be between 0 and {MAX_UNIT_AMOUNT}, got {amount}.")
    if decimal_places(amount) > MAX_DECIMAL_PLACES:
        raise InvalidPriceTerms(f"{what} has more than {MAX_DECIMAL_PLACES} decimal places: {amount}.")
    return amount


def _one_of(integer: int | None, decimal: Decimal | None, what: str) -> Decimal | None:
    if integer is not None and decimal is not None:
        raise InvalidPriceTerms(f"Only one of {what} and {what}_decimal can be set.")
    return decimal if decimal is not None else (Decimal(integer) if integer is not None else None)


@dataclass(frozen=True, slots=True)
class Tier:
    """One pricing tier; up_to=None is Stripe's "inf" (the last, open-ended tier)."""

    up_to: int | None
    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    flat_amount: int | None = None
    flat_amount_decimal: Decimal | None = None

    def __post_init__(self) -> None:
        if self.up_to is not None and require_int(self.up_to, "up_to") < 1:
            raise InvalidPriceTerms(f"up_to must be a positive integer or inf, got {self.up_to}.")
        _optional_amount(self.unit_amount, "unit_amount")
        _optional_decimal_amount(self.unit_amount_decimal, "unit_amount_decimal")
        _optional_amount(self.flat_amount, "flat_amount")
        _optional_decimal_amount(self.flat_amount_decimal, "flat_amount_decimal")
        unit = _one_of(self.unit_amount, self.unit_amount_decimal, "unit_amount")
        flat = _one_of(self.flat_amount, self.flat_amount_decimal, "flat_amount")
        if unit is None and flat is None:
            raise InvalidPriceTerms("A tier needs a unit amount, a flat amount, or both.")

    @property
    def unit_price(self) -> Decimal:
        """Per-unit amount in minor units (may be fractional); 0 when the tier is flat only."""
        return _one_of(self.unit_amount, self.unit_amount_decimal, "unit_amount") or Decimal(0)

    @property
    def flat_price(self) -> Decimal:
        """Flat amount for reaching the tier, in minor units; 0 when there is none."""
        return _one_of(self.flat_amount, self.flat_amount_decimal, "flat_amount") or Decimal(0)


@dataclass(frozen=True, slots=True)
class TransformQuantity:
    """Package pricing: bill ceil or floor of quantity / divide_by."""

    divide_by: int
    round: TransformRound

    def __post_init__(self) -> None:
        if require_int(self.divide_by, "divide_by") < 1:
            raise InvalidPriceTerms(f"divide_by must be at least 1, got {self.divide_by}.")
        object.__setattr__(self, "round", TransformRound(self.round))

    def apply(self, quantity: int) -> int:
        whole, remainder = divmod(quantity, self.divide_by)
        return whole + 1 if remainder and self.round is TransformRound.UP else whole


def _check_tiers(tiers: tuple[Tier, ...]) -> None:
    if not tiers:
        raise InvalidPriceTerms("A tiered price needs at least one tier.")
    for index, tier in enumerate(tiers):
        if not isinstance(tier, Tier):
            raise TypeError(f"tiers[{index}] must be a Tier, not {type(tier).__name__}.")
    bounds = [tier.up_to for tier in tiers]
    if bounds[-1] is not None:
        raise InvalidPriceTerms("The last tier must have up_to=inf.")
    finite = [bound for bound in bounds[:-1] if bound is not None]
    if len(finite) < len(bounds) - 1:
        raise InvalidPriceTerms("Only the last tier may have up_to=inf.")
    if any(lower >= upper for lower, upper in pairwise(finite)):
        raise InvalidPriceTerms("Tier up_to values must be strictly increasing.")


@dataclass(frozen=True, slots=True)
class CurrencyOption:
    """The amounts of a price in one currency (the price's own, or one of its currency_options)."""

    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    tiers: tuple[Tier, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", tuple(self.tiers))
        _optional_amount(self.unit_amount, "unit_amount")
        _optional_decimal_amount(self.unit_amount_decimal, "unit_amount_decimal")
        _one_of(self.unit_amount, self.unit_amount_decimal, "unit_amount")

    @property
    def unit_price(self) -> Decimal | None:
        return _one_of(self.unit_amount, self.unit_amount_decimal, "unit_amount")

    def _check_for(self, scheme: BillingScheme, where: str) -> None:
        if scheme is BillingScheme.PER_UNIT:
            if self.tiers:
                raise InvalidPriceTerms(f"{where}: tiers require billing_scheme=tiered.")
            if self.unit_price is None:
                raise InvalidPriceTerms(f"{where}: a per_unit price needs unit_amount or unit_amount_decimal.")
        else:
            if self.unit_price is not None:
                raise InvalidPriceTerms(f"{where}: a tiered price takes its amounts from its tiers, not unit_amount.")
            _check_tiers(self.tiers)


@dataclass(frozen=True)
class PriceTerms:
    """Everything that decides what a price charges, independent of any ORM."""

    currency: str
    billing_scheme: BillingScheme = BillingScheme.PER_UNIT
    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    tiers_mode: TiersMode | None = None
    tiers: tuple[Tier, ...] = ()
    transform_quantity: TransformQuantity | None = None
    # Read-only mapping: lowercase currency code -> the price's amounts in that currency.
    currency_options: Mapping[str, CurrencyOption] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "currency", get_currency(self.currency).code)
        set_field(self, "billing_scheme", BillingScheme(self.billing_scheme))
        if self.tiers_mode is not None:
            set_field(self, "tiers_mode", TiersMode(self.tiers_mode))
        set_field(self, "tiers", tuple(self.tiers))
        options: dict[str, CurrencyOption] = {}
        for code, option in self.currency_options.items():
            normalized = get_currency(code).code
            if normalized == self.currency:
                raise InvalidPriceTerms(f"currency_options repeats the price's own currency {normalized!r}.")
            if normalized in options:
                raise InvalidPriceTerms(f"currency_options lists {normalized!r} twice.")
            if not isinstance(option, CurrencyOption):
                raise TypeError(f"currency_options[{code}] must be a CurrencyOption, not {type(option).__name__}.")
            options[normalized] = option
        set_field(self, "currency_options", MappingProxyType(options))

        if self.billing_scheme is BillingScheme.TIERED:
            if self.tiers_mode is None:
                raise InvalidPriceTerms("A tiered price needs tiers_mode (graduated or volume).")
            if self.transform_quantity is not None:
                raise InvalidPriceTerms("transform_quantity cannot be combined with tiers.")
        elif self.tiers_mode is not None:
            raise InvalidPriceTerms("tiers_mode requires billing_scheme=tiered.")
        for code, option in self.all_currency_terms().items():
            option._check_for(self.billing_scheme, f"currency {code}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTerms:
        return price_terms_from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return price_terms_to_dict(self)

    @property
    def currencies(self) -> tuple[str, ...]:
        """The price's own currency first, then its currency options, alphabetically."""
        return (self.currency, *sorted(self.currency_options))

    def all_currency_terms(self) -> dict[str, CurrencyOption]:
        own = CurrencyOption(self.unit_amount, self.unit_amount_decimal, self.tiers)
        return {self.currency: own, **self.currency_options}

    def terms_in(self, currency: str, param: str = "currency") -> CurrencyOption:
        """The amounts to charge in `currency`; UnsupportedCurrency if the price has none."""
        try:
            code = get_currency(currency).code
        except UnknownCurrency:
            raise UnsupportedCurrency(currency, self.currencies, param) from None
        if code == self.currency:
            return CurrencyOption(self.unit_amount, self.unit_amount_decimal, self.tiers)
        try:
            return self.currency_options[code]
        except KeyError:
            raise UnsupportedCurrency(code, self.currencies, param) from None


# --- the stored JSON shape (Stripe's fields, camelCase) ---------------------------------


def _decimal_field(value: object, what: str) -> Decimal | None:
    if value is None:
        return None
    reject_float(value, what)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return parse_decimal(value, what)
    raise TypeError(f"{what} must be a decimal string, not {type(value).__name__}.")


def _up_to_from_json(tier: Mapping[str, Any]) -> int | None:
    if "upTo" not in tier:
        raise InvalidPriceTerms('Every tier needs upTo (an integer, or "inf" for the last tier).', "upTo")
    value = tier["upTo"]
    if value is None or value == "inf":  # null is how Stripe's responses spell inf
        return None
    return require_int(value, "upTo")


def _tier_from_dict(data: Mapping[str, Any]) -> Tier:
    return Tier(
        up_to=_up_to_from_json(data),
        unit_amount=data.get("unitAmount"),
        unit_amount_decimal=_decimal_field(data.get("unitAmountDecimal"), "unitAmountDecimal"),
        flat_amount=data.get("flatAmount"),
        flat_amount_decimal=_decimal_field(data.get("flatAmountDecimal"), "flatAmountDecimal"),
    )


def _option_from_dict(data: Mapping[str, Any]) -> CurrencyOption:
    return CurrencyOption(
        unit_amount=data.get("unitAmount"),
        unit_amount_decimal=_decimal_field(data.get("unitAmountDecimal"), "unitAmountDecimal"),
        tiers=tuple(_tier_from_dict(tier) for tier in data.get("tiers") or ()),
    )


def price_terms_from_dict(data: Mapping[str, Any]) -> PriceTerms:
    """PriceTerms from the stored camelCase shape; other keys of a price (type, recurring,
    product, ...) are ignored. Use billing.catalog.validation for untrusted input."""
    transform = data.get("transformQuantity")
    options = data.get("currencyOptions") or {}
    if data.get("currency") is None:
        raise InvalidPriceTerms("A price needs a currency.", "currency")
    own = _option_from_dict(data)
    return PriceTerms(
        currency=data["currency"],
        billing_scheme=BillingScheme(data.get("billingScheme") or BillingScheme.PER_UNIT),
        unit_amount=own.unit_amount,
        unit_amount_decimal=own.unit_amount_decimal,
        tiers_mode=TiersMode(data["tiersMode"]) if data.get("tiersMode") is not None else None,
        tiers=own.tiers,
        transform_quantity=(
            TransformQuantity(divide_by=transform["divideBy"], round=TransformRound(transform["round"]))
            if transform is not None
            else None
        ),
        currency_options={code: _option_from_dict(option) for code, option in options.items()},
    )


def _decimal_to_json(value: Decimal) -> str:
    return format(value, "f")  # never exponent notation ("1E+2")


def _tier_to_dict(tier: Tier) -> dict[str, Any]:
    out: dict[str, Any] = {"upTo": "inf" if tier.up_to is None else tier.up_to}
    if tier.unit_amount is not None:
        out["unitAmount"] = tier.unit_amount
    if tier.unit_amount_decimal is not None:
        out["unitAmountDecimal"] = _decimal_to_json(tier.unit_amount_decimal)
    if tier.flat_amount is not None:
        out["flatAmount"] = tier.flat_amount
    if tier.flat_amount_decimal is not None:
        out["flatAmountDecimal"] = _decimal_to_json(tier.flat_amount_decimal)
    return out


def _option_to_dict(option: CurrencyOption) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if option.unit_amount is not None:
        out["unitAmount"] = option.unit_amount
    if option.unit_amount_decimal is not None:
        out["unitAmountDecimal"] = _decimal_to_json(option.unit_amount_decimal)
    if option.tiers:
        out["tiers"] = [_tier_to_dict(tier) for tier in option.tiers]
    return out


def price_terms_to_dict(terms: PriceTerms) -> dict[str, Any]:
    """The camelCase JSON shape (Decimals as strings, up_to=None as "inf"); unset fields are left out."""
    out: dict[str, Any] = {"currency": terms.currency, "billingScheme": str(terms.billing_scheme)}
    out.update(_option_to_dict(terms.all_currency_terms()[terms.currency]))
    if terms.tiers_mode is not None:
        out["tiersMode"] = str(terms.tiers_mode)
    if terms.transform_quantity is not None:
        out["transformQuantity"] = {
            "divideBy": terms.transform_quantity.divide_by,
            "round": str(terms.transform_quantity.round),
        }
    if terms.currency_options:
        out["currencyOptions"] = {code: _option_to_dict(option) for code, option in terms.currency_options.items()}
    return out


# --- quoting ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """One rounded line: `quantity` units at `unit_amount` plus `flat_amount` (both Decimal
    minor units), rounded once to `amount` (int minor units). tier_index is None for per_unit."""

    tier_index: int | None
    quantity: int
    unit_amount: Decimal
    flat_amount: Decimal
    amount: int


@dataclass(frozen=True, slots=True)
class Quote:
    currency: str
    quantity: int  # as asked
    billed_quantity: int  # after transform_quantity (package pricing); equal to quantity otherwise
    lines: tuple[QuoteLine, ...]
    total: int  # int minor units: the sum of the lines' amounts


def _priced_line(tier_index: int | None, quantity: int, unit: Decimal, flat: Decimal) -> QuoteLine:
    return QuoteLine(tier_index, quantity, unit, flat, line_amount(quantity, unit, flat))


def _graduated_lines(tiers: tuple[Tier, ...], quantity: int) -> list[QuoteLine]:
    lines: list[QuoteLine] = []
    covered = 0  # units already charged by earlier tiers
    for index, tier in enumerate(tiers):
        ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
        lines.append(_priced_line(index, ceiling - covered, tier.unit_price, tier.flat_price))
        if tier.up_to is None or quantity <= tier.up_to:
            break
        covered = tier.up_to
    return lines


def tier_index_for(tiers: tuple[Tier, ...], quantity: int) -> int:
    """Index of the tier containing `quantity` (tiers are inclusive: up_to=5 contains 5)."""
    for index, tier in enumerate(tiers):
        if tier.up_to is None or quantity <= tier.up_to:
            return index
    raise InvalidPriceTerms("The last tier must have up_to=inf.")


def _volume_lines(tiers: tuple[Tier, ...], quantity: int) -> list[QuoteLine]:
    index = tier_index_for(tiers, quantity)
    tier = tiers[index]
    return [_priced_line(index, quantity, tier.unit_price, tier.flat_price)]


def quote(terms: PriceTerms, quantity: int, currency: str) -> Quote:
    """What `terms` charge for `quantity` in `currency`, in integer minor units, line by line."""
    if not isinstance(terms, PriceTerms):
        raise TypeError(f"terms must be PriceTerms, not {type(terms).__name__}.")
    require_int(quantity, "quantity")
    if quantity < 0:
        raise InvalidQuantity(f"quantity must be zero or more, got {quantity}.")
    option = terms.terms_in(currency)
    code = get_currency(currency).code

    if terms.billing_scheme is BillingScheme.PER_UNIT:
        billed = terms.transform_quantity.apply(quantity) if terms.transform_quantity else quantity
        unit = option.unit_price
        assert unit is not None  # PriceTerms checks this for per_unit prices
        lines = [_priced_line(None, billed, unit, Decimal(0))]
    elif terms.tiers_mode is TiersMode.GRADUATED:
        billed = quantity
        lines = _graduated_lines(option.tiers, quantity)
    else:
        billed = quantity
        lines = _volume_lines(option.tiers, quantity)

    total = check_line_amount(sum(line.amount for line in lines), "total")
    return Quote(code, quantity, billed, tuple(lines), total)
