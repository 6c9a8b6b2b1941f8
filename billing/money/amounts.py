"""Money rules: integer minor units, Decimal sub-minor prices, and the one rounding rule.

Amounts that are charged are ints in the currency's minor unit (cents for USD, yen for
JPY, fils for KWD). Unit prices may be Decimals in minor units with up to 12 decimal
places (Stripe's unit_amount_decimal). A float is never money: every function here
raises TypeError when handed one, and so does everything built on top.

The rounding rule lives here and nowhere else: round to whole minor units once per line,
ties away from zero (decimal.ROUND_HALF_UP: 0.5 -> 1, -0.5 -> -1, 2.5 -> 3).
"""

from __future__ import annotations

import re
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import Final

from billing.money.currencies import Currency, get_currency

# Stripe's bound for a single amount (unit_amount, flat_amount, a charge): eight digits,
# i.e. 99999999 minor units ($999,999.99, ¥99,999,999). Applies to unit prices and flat
# fees, including their *_decimal forms.
MAX_UNIT_AMOUNT: Final = 99_999_999

# Line totals and invoice totals are stored as Postgres bigint, so the bound is int64.
MAX_LINE_AMOUNT: Final = 2**63 - 1

# Stripe's unit_amount_decimal and flat_amount_decimal carry at most 12 decimal places.
MAX_DECIMAL_PLACES: Final = 12

# Multiplications of money must be exact before the one rounding: the default decimal
# context keeps only 28 digits and would round silently. Inexact is trapped so that a
# product that does not fit raises instead of losing digits.
_EXACT: Final = Context(
    prec=120,
    rounding=ROUND_HALF_UP,
    Emax=10_000,
    Emin=-10_000,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)

_DECIMAL_STRING: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class AmountOutOfRange(ValueError):
    """An amount or product of amounts beyond what can be stored or charged."""


def reject_float(value: object, what: str = "amount") -> None:
    if isinstance(value, float):
        raise TypeError(f"{what} must not be a float (got {value!r}); use int minor units or Decimal.")


def require_int(value: object, what: str = "amount") -> int:
    """An int that is really an int: not a float, not a bool, not a Decimal."""
    reject_float(value, what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}.")
    return value


def require_decimal(value: object, what: str = "amount") -> Decimal:
    """A finite Decimal; ints are accepted and converted exactly; floats and strings are not."""
    reject_float(value, what)
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a Decimal, not bool.")
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}.")
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value}.")
    return value


def parse_decimal(text: str, what: str = "amount") -> Decimal:
    """Parse a plain decimal string ("12", "-0.5", "1.000000000001"); no exponents, no spaces."""
    reject_float(text, what)
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a decimal string, not {type(text).__name__}.")
    if not _DECIMAL_STRING.fullmatch(text):
        raise ValueError(f"{what} must be a decimal string like '12.34', got {text!r}.")
    return Decimal(text)


def decimal_places(value: Decimal) -> int:
    """Digits after the decimal point as written: Decimal('1.50') has 2."""
    exponent = require_decimal(value).as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    return max(0, -exponent)


def check_line_amount(amount: int, what: str = "amount") -> int:
    require_int(amount, what)
    if abs(amount) > MAX_LINE_AMOUNT:
        raise AmountOutOfRange(f"{what} {amount} is beyond the supported maximum of {MAX_LINE_AMOUNT} minor units.")
    return amount


def round_to_minor(amount_in_minor_units: Decimal) -> int:
    """THE rounding rule: a Decimal amount of minor units to whole minor units, ties away from zero."""
    amount = require_decimal(amount_in_minor_units)
    return int(amount.to_integral_value(rounding=ROUND_HALF_UP))


def round_ratio_to_minor(amount: int, numerator: int, denominator: int) -> int:
    """THE rounding rule applied to amount * numerator / denominator, computed exactly in
    integers (proration: a full period's amount times the share of the period left)."""
    for value, what in ((amount, "amount"), (numerator, "numerator"), (denominator, "denominator")):
        require_int(value, what)
    if denominator <= 0:
        raise ValueError(f"denominator must be positive, got {denominator}.")
    product = amount * numerator
    magnitude = (2 * abs(product) + denominator) // (2 * denominator)  # floor(|x| + 1/2)
    return magnitude if product >= 0 else -magnitude


def exact_product(quantity: int, unit_amount: Decimal) -> Decimal:
    """quantity * unit_amount with every digit kept (the default context would keep 28)."""
    require_int(quantity, "quantity")
    unit = require_decimal(unit_amount, "unit_amount")
    try:
        return _EXACT.multiply(Decimal(quantity), unit)
    except (Inexact, Overflow) as error:
        raise AmountOutOfRange(f"{quantity} x {unit} is too large to price.") from error


def line_amount(quantity: int, unit_amount: Decimal, flat_amount: Decimal = Decimal(0)) -> int:
    """One line's charge: quantity * unit_amount + flat_amount, rounded once, bounded by int64."""
    flat = require_decimal(flat_amount, "flat_amount")
    try:
        exact = _EXACT.add(exact_product(quantity, unit_amount), flat)
    except (Inexact, Overflow) as error:
        raise AmountOutOfRange(f"{quantity} x {unit_amount} + {flat} is too large to price.") from error
    return check_line_amount(round_to_minor(exact), "line amount")


def to_minor_units(amount_in_major_units: Decimal, currency: str | Currency) -> int:
    """Decimal('12.345') USD -> 1235 (the rounding rule applies); Decimal('12') JPY -> 12."""
    amount = require_decimal(amount_in_major_units)
    exponent = get_currency(currency).exponent
    try:
        scaled = amount.scaleb(exponent, context=_EXACT)
    except (Inexact, Overflow) as error:
        raise AmountOutOfRange(f"{amount} is too large to convert to minor units.") from error
    return round_to_minor(scaled)


def from_minor_units(amount: int, currency: str | Currency) -> Decimal:
    """1234 USD -> Decimal('12.34'); 1234 JPY -> Decimal('1234'); 1234 KWD -> Decimal('1.234'). Exact."""
    require_int(amount)
    exponent = get_currency(currency).exponent
    return Decimal(amount).scaleb(-exponent, context=_EXACT)


def format_amount(amount: int, currency: str | Currency) -> str:
    """Plain decimal text with exactly the currency's digits: "12.34", "1234", "-1.005", "0.05"."""
    ccy = get_currency(currency)
    value = from_minor_units(amount, ccy)
    return f"{value:.{ccy.exponent}f}"
