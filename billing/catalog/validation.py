"""Validation of a price definition, with Stripe-style errors that name the exact param.

Input is the camelCase shape the API receives and stores:

    {"currency": "usd", "type": "recurring", "billingScheme": "tiered", "tiersMode": "graduated",
     "tiers": [{"upTo": 5, "unitAmount": 700}, {"upTo": "inf", "unitAmount": 600}],
     "recurring": {"interval": "month", "intervalCount": 1, "usageType": "licensed"},
     "currencyOptions": {"eur": {"tiers": [...]}}}

Params are reported as paths in that shape: `tiers[2][upTo]`,
`currencyOptions[eur][unitAmount]`, `recurring[interval]`. Currency option keys are echoed
as the caller wrote them. The first problem found is reported, as Stripe does.

Only the fields that decide what a price charges are checked here (plus type and
recurring); other fields of a price (product, nickname, metadata, active, lookupKey, ...)
are ignored and belong to the API's request model. Inside the objects validated here
(recurring, transformQuantity, tiers, currencyOptions entries) unknown keys are errors.

Floats are rejected everywhere: an amount is an int, a decimal amount is a decimal string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, TypeVar

from billing.catalog.pricing import (
    BillingScheme,
    CurrencyOption,
    InvalidPriceTerms,
    PriceTerms,
    Tier,
    TiersMode,
    TransformQuantity,
    TransformRound,
)
from billing.money.amounts import MAX_DECIMAL_PLACES, MAX_UNIT_AMOUNT, decimal_places, parse_decimal
from billing.money.currencies import get_currency, is_known_currency

E = TypeVar("E", bound=StrEnum)


class PriceValidationError(ValueError):
    """An invalid price definition. `param` is the Stripe-style path of the offending field;
    `code` is a Stripe error code (parameter_missing, parameter_invalid_integer, ...)."""

    def __init__(self, message: str, param: str, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def __repr__(self) -> str:
        return f"PriceValidationError({self.message!r}, param={self.param!r}, code={self.code!r})"


class PriceType(StrEnum):
    ONE_TIME = "one_time"
    RECURRING = "recurring"


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class UsageType(StrEnum):
    LICENSED = "licensed"
    METERED = "metered"


# Stripe allows billing intervals of up to three years.
MAX_INTERVAL_COUNT: Final[Mapping[Interval, int]] = {
    Interval.DAY: 1095,
    Interval.WEEK: 156,
    Interval.MONTH: 36,
    Interval.YEAR: 3,
}


@dataclass(frozen=True, slots=True)
class Recurring:
    interval: Interval
    interval_count: int = 1
    usage_type: UsageType = UsageType.LICENSED
    meter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "interval": str(self.interval),
            "intervalCount": self.interval_count,
            "usageType": str(self.usage_type),
        }
        if self.meter is not None:
            out["meter"] = self.meter
        return out


@dataclass(frozen=True, slots=True)
class ValidatedPrice:
    type: PriceType
    terms: PriceTerms
    recurring: Recurring | None

    def to_dict(self) -> dict[str, Any]:
        """The normalized camelCase shape to store (lowercase currencies, Decimals as strings)."""
        out: dict[str, Any] = {"type": str(self.type), **self.terms.to_dict()}
        if self.recurring is not None:
            out["recurring"] = self.recurring.to_dict()
        return out


_TIER_KEYS: Final = frozenset({"upTo", "unitAmount", "unitAmountDecimal", "flatAmount", "flatAmountDecimal"})
_OPTION_KEYS: Final = frozenset({"unitAmount", "unitAmountDecimal", "tiers"})
_TRANSFORM_KEYS: Final = frozenset({"divideBy", "round"})
_RECURRING_KEYS: Final = frozenset({"interval", "intervalCount", "usageType", "meter"})
# Stripe's legacy Plan fields: on a Price they live under `recurring`, never at the top.
_RECURRING_ONLY_TOP_LEVEL: Final = ("interval", "intervalCount", "usageType", "aggregateUsage", "meter")


def _path(prefix: str, name: str | int) -> str:
    return str(name) if not prefix else f"{prefix}[{name}]"


def _present(data: Mapping[str, Any], key: str) -> bool:
    return data.get(key) is not None  # JSON null means "not set"


def _mapping(value: object, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PriceValidationError(f"Invalid {param}: must be an object.", param)
    for key in value:
        if not isinstance(key, str):
            raise PriceValidationError(f"Invalid {param}: keys must be strings.", param)
    return value


def _reject_unknown_keys(data: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
    for key in data:
        if key not in allowed:
            param = _path(prefix, key)
            raise PriceValidationError(f"Received unknown parameter: {param}.", param, "parameter_unknown")


def _choice(value: object, choices: type[E], param: str) -> E:
    if isinstance(value, str):
        try:
            return choices(value)
        except ValueError:
            pass
    allowed = ", ".join(member.value for member in choices)
    raise PriceValidationError(f"Invalid {param}: must be one of {allowed}, got {value!r}.", param)


def _integer(value: object, param: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "a float" if isinstance(value, float) else repr(value)
        raise PriceValidationError(
            f"Invalid {param}: must be an integer, got {kind}.", param, "parameter_invalid_integer"
        )
    if value < minimum:
        raise PriceValidationError(f"Invalid {param}: must be at least {minimum}, got {value}.", param)
    if maximum is not None and value > maximum:
        code = "amount_too_large" if maximum == MAX_UNIT_AMOUNT else "parameter_invalid"
        raise PriceValidationError(f"Invalid {param}: must be at most {maximum}, got {value}.", param, code)
    return value


def _amount(data: Mapping[str, Any], key: str, prefix: str) -> int | None:
    if not _present(data, key):
        return None
    return _integer(data[key], _path(prefix, key), 0, MAX_UNIT_AMOUNT)


def _decimal_amount(data: Mapping[str, Any], key: str, prefix: str) -> Decimal | None:
    if not _present(data, key):
        return None
    param = _path(prefix, key)
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        kind = "a float" if isinstance(value, float) else repr(value)
        raise PriceValidationError(f"Invalid {param}: must be a decimal string like '12.5', got {kind}.", param)
    if isinstance(value, str):
        try:
            amount = parse_decimal(value, param)
        except ValueError:
            raise PriceValidationError(
                f"Invalid {param}: must be a decimal string like '12.5', got {value!r}.", param
            ) from None
    else:
        amount = Decimal(value)
    if not amount.is_finite():
        raise PriceValidationError(f"Invalid {param}: must be a finite decimal, got {value!r}.", param)
    if amount < 0:
        raise PriceValidationError(f"Invalid {param}: must be zero or more, got {value}.", param)
    if amount.is_zero():
        amount = amount.copy_abs()  # "-0" is zero; store it without the sign
    if decimal_places(amount) > MAX_DECIMAL_PLACES:
        raise PriceValidationError(
            f"Invalid {param}: at most {MAX_DECIMAL_PLACES} decimal places are allowed, got {value}.", param
        )
    if amount > MAX_UNIT_AMOUNT:
        raise PriceValidationError(
            f"Invalid {param}: must be at most {MAX_UNIT_AMOUNT}, got {value}.", param, "amount_too_large"
        )
    return amount


def _only_one(data: Mapping[str, Any], integer_key: str, decimal_key: str, prefix: str) -> None:
    if _present(data, integer_key) and _present(data, decimal_key):
        param = _path(prefix, decimal_key)
        raise PriceValidationError(f"You may only specify one of {_path(prefix, integer_key)} and {param}.", param)


def _tier(value: object, prefix: str) -> Tier:
    data = _mapping(value, prefix)
    _reject_unknown_keys(data, _TIER_KEYS, prefix)
    up_to_param = _path(prefix, "upTo")
    if not _present(data, "upTo"):
        raise PriceValidationError(f"Missing required param: {up_to_param}.", up_to_param, "parameter_missing")
    raw_up_to = data["upTo"]
    up_to = None if raw_up_to == "inf" else _integer(raw_up_to, up_to_param, 1)
    unit_amount = _amount(data, "unitAmount", prefix)
    unit_amount_decimal = _decimal_amount(data, "unitAmountDecimal", prefix)
    flat_amount = _amount(data, "flatAmount", prefix)
    flat_amount_decimal = _decimal_amount(data, "flatAmountDecimal", prefix)
    _only_one(data, "unitAmount", "unitAmountDecimal", prefix)
    _only_one(data, "flatAmount", "flatAmountDecimal", prefix)
    if all(amount is None for amount in (unit_amount, unit_amount_decimal, flat_amount, flat_amount_decimal)):
        raise PriceValidationError(
            f"{prefix} is missing an amount: set unitAmount, unitAmountDecimal, flatAmount or flatAmountDecimal.",
            prefix,
            "parameter_missing",
        )
    return Tier(up_to, unit_amount, unit_amount_decimal, flat_amount, flat_amount_decimal)


def _tiers(value: object, param: str) -> tuple[Tier, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise PriceValidationError(f"Invalid {param}: must be an array of tiers.", param)
    if not value:
        raise PriceValidationError(f"Invalid {param}: at least one tier is required.", param, "parameter_missing")
    tiers = tuple(_tier(entry, _path(param, index)) for index, entry in enumerate(value))
    last = len(tiers) - 1
    previous: int | None = None
    for index, tier in enumerate(tiers):
        up_to_param = _path(_path(param, index), "upTo")
        if tier.up_to is None and index != last:
            raise PriceValidationError(f"Invalid {up_to_param}: only the last tier can have upTo=inf.", up_to_param)
        if tier.up_to is not None and index == last:
            raise PriceValidationError(f"Invalid {up_to_param}: the last tier must have upTo=inf.", up_to_param)
        if tier.up_to is not None and previous is not None and tier.up_to <= previous:
            raise PriceValidationError(
                f"Invalid {up_to_param}: tiers must be in strictly increasing order of upTo "
                f"({tier.up_to} is not greater than {previous}).",
                up_to_param,
            )
        previous = tier.up_to
    return tiers


def _currency_terms(data: Mapping[str, Any], scheme: BillingScheme, prefix: str) -> CurrencyOption:
    """The amounts of one currency (the price's own when prefix is "", else an option)."""
    unit_amount = _amount(data, "unitAmount", prefix)
    unit_amount_decimal = _decimal_amount(data, "unitAmountDecimal", prefix)
    _only_one(data, "unitAmount", "unitAmountDecimal", prefix)
    tiers_param = _path(prefix, "tiers")
    if scheme is BillingScheme.PER_UNIT:
        if _present(data, "tiers"):
            raise PriceValidationError(
                f"Invalid {tiers_param}: tiers can only be used with billingScheme=tiered.", tiers_param
            )
        if unit_amount is None and unit_amount_decimal is None:
            param = _path(prefix, "unitAmount")
            raise PriceValidationError(
                f"Missing required param: {param} (or {_path(prefix, 'unitAmountDecimal')}) for a per_unit price.",
                param,
                "parameter_missing",
            )
        return CurrencyOption(unit_amount, unit_amount_decimal)
    for key in ("unitAmount", "unitAmountDecimal"):
        if _present(data, key):
            param = _path(prefix, key)
            raise PriceValidationError(f"Invalid {param}: a tiered price takes its amounts from its tiers.", param)
    if not _present(data, "tiers"):
        raise PriceValidationError(
            f"Missing required param: {tiers_param} for billingScheme=tiered.", tiers_param, "parameter_missing"
        )
    return CurrencyOption(tiers=_tiers(data["tiers"], tiers_param))


def _currency(value: object, param: str) -> str:
    if not isinstance(value, str) or not is_known_currency(value):
        raise PriceValidationError(
            f"Invalid {param}: {value!r} is not a supported ISO 4217 currency code.", param, "invalid_currency"
        )
    return get_currency(value).code


def _currency_options(value: object, base_currency: str, scheme: BillingScheme) -> dict[str, CurrencyOption]:
    options_data = _mapping(value, "currencyOptions")
    options: dict[str, CurrencyOption] = {}
    for key, option_value in options_data.items():
        prefix = _path("currencyOptions", key)
        code = _currency(key, prefix)
        if code == base_currency:
            raise PriceValidationError(
                f"Invalid {prefix}: currencyOptions cannot repeat the price's own currency ({base_currency}).",
                prefix,
            )
        if code in options:
            raise PriceValidationError(f"Invalid {prefix}: {code} is listed more than once.", prefix)
        option_data = _mapping(option_value, prefix)
        if _present(option_data, "customUnitAmount"):
            param = _path(prefix, "customUnitAmount")
            raise PriceValidationError(f"{param} is not supported.", param, "parameter_unknown")
        _reject_unknown_keys(option_data, _OPTION_KEYS, prefix)
        options[code] = _currency_terms(option_data, scheme, prefix)
    return options


def _transform_quantity(value: object) -> TransformQuantity:
    data = _mapping(value, "transformQuantity")
    _reject_unknown_keys(data, _TRANSFORM_KEYS, "transformQuantity")
    for key in ("divideBy", "round"):
        if not _present(data, key):
            param = _path("transformQuantity", key)
            raise PriceValidationError(f"Missing required param: {param}.", param, "parameter_missing")
    divide_by = _integer(data["divideBy"], "transformQuantity[divideBy]", 1)
    rounding = _choice(data["round"], TransformRound, "transformQuantity[round]")
    return TransformQuantity(divide_by, rounding)


def _recurring(value: object) -> Recurring:
    data = _mapping(value, "recurring")
    _reject_unknown_keys(data, _RECURRING_KEYS, "recurring")
    if not _present(data, "interval"):
        raise PriceValidationError(
            "Missing required param: recurring[interval].", "recurring[interval]", "parameter_missing"
        )
    interval = _choice(data["interval"], Interval, "recurring[interval]")
    interval_count = 1
    if _present(data, "intervalCount"):
        interval_count = _integer(data["intervalCount"], "recurring[intervalCount]", 1, MAX_INTERVAL_COUNT[interval])
    usage_type = UsageType.LICENSED
    if _present(data, "usageType"):
        usage_type = _choice(data["usageType"], UsageType, "recurring[usageType]")
    meter = None
    if _present(data, "meter"):
        meter = data["meter"]
        if not isinstance(meter, str) or not meter:
            raise PriceValidationError("Invalid recurring[meter]: must be a meter id.", "recurring[meter]")
        if usage_type is not UsageType.METERED:
            raise PriceValidationError(
                "Invalid recurring[meter]: a meter requires recurring[usageType]=metered.", "recurring[meter]"
            )
    return Recurring(interval, interval_count, usage_type, meter)


def _price_type(definition: Mapping[str, Any]) -> tuple[PriceType, Recurring | None]:
    has_recurring = _present(definition, "recurring")
    if _present(definition, "type"):
        price_type = _choice(definition["type"], PriceType, "type")
    else:  # Stripe infers the type from the presence of `recurring`
        price_type = PriceType.RECURRING if has_recurring else PriceType.ONE_TIME
    for key in _RECURRING_ONLY_TOP_LEVEL:
        if _present(definition, key):
            where = "recurring prices only" if price_type is PriceType.ONE_TIME else f"recurring[{key}]"
            raise PriceValidationError(f"Invalid {key}: this field belongs to {where}.", key)
    if price_type is PriceType.ONE_TIME:
        if has_recurring:
            raise PriceValidationError("Invalid recurring: a one_time price cannot have recurring fields.", "recurring")
        return price_type, None
    if not has_recurring:
        raise PriceValidationError(
            "Missing required param: recurring for a recurring price.", "recurring", "parameter_missing"
        )
    return price_type, _recurring(definition["recurring"])


def validate_price(definition: Mapping[str, Any]) -> ValidatedPrice:
    """Check a price definition; return its normalized form or raise PriceValidationError."""
    if not isinstance(definition, Mapping):
        raise TypeError(f"A price definition must be a mapping, not {type(definition).__name__}.")
    if not _present(definition, "currency"):
        raise PriceValidationError("Missing required param: currency.", "currency", "parameter_missing")
    currency = _currency(definition["currency"], "currency")
    price_type, recurring = _price_type(definition)

    scheme = BillingScheme.PER_UNIT
    if _present(definition, "billingScheme"):
        scheme = _choice(definition["billingScheme"], BillingScheme, "billingScheme")
    if _present(definition, "customUnitAmount"):
        raise PriceValidationError("customUnitAmount is not supported.", "customUnitAmount", "parameter_unknown")

    tiers_mode = None
    transform = None
    if scheme is BillingScheme.TIERED:
        if not _present(definition, "tiersMode"):
            raise PriceValidationError(
                "Missing required param: tiersMode for billingScheme=tiered.", "tiersMode", "parameter_missing"
            )
        tiers_mode = _choice(definition["tiersMode"], TiersMode, "tiersMode")
        if _present(definition, "transformQuantity"):
            raise PriceValidationError(
                "Invalid transformQuantity: it cannot be combined with billingScheme=tiered.", "transformQuantity"
            )
    else:
        if _present(definition, "tiersMode"):
            raise PriceValidationError("Invalid tiersMode: it can only be used with billingScheme=tiered.", "tiersMode")
        if _present(definition, "transformQuantity"):
            transform = _transform_quantity(definition["transformQuantity"])

    own = _currency_terms(definition, scheme, "")
    options = {}
    if _present(definition, "currencyOptions"):
        options = _currency_options(definition["currencyOptions"], currency, scheme)

    try:
        terms = PriceTerms(
            currency=currency,
            billing_scheme=scheme,
            unit_amount=own.unit_amount,
            unit_amount_decimal=own.unit_amount_decimal,
            tiers_mode=tiers_mode,
            tiers=own.tiers,
            transform_quantity=transform,
            currency_options=options,
        )
    except InvalidPriceTerms as error:  # a rule the checks above missed: still a 400, not a 500
        raise PriceValidationError(error.message, error.param or "", "parameter_invalid") from error
    return ValidatedPrice(price_type, terms, recurring)
