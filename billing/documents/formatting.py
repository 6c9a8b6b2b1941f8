"""Amounts, quantities and dates as a customer's locale writes them, with Babel (CLDR).

Amounts arrive in the currency's minor unit. The number of decimals printed is the ISO
4217 exponent from `billing.money.currencies`, never Babel's own currency-digits table
(CLDR gives HUF, IDR, COP and IQD, among others, no decimals where ISO has two or three):
an amount is exactly the integer that was charged, with more decimals only when a unit
price carries a fraction of a minor unit.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal, localcontext

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.numbers import NumberPattern, format_currency, format_decimal, get_currency_symbol

from billing.documents.fonts import can_print
from billing.money.amounts import require_decimal
from billing.money.currencies import get_currency

DEFAULT_LOCALE = "en-US"

# the dates a locale must be able to print: one per month, since month names differ
_SAMPLE_DATES = tuple(date(2024, month, 28) for month in range(1, 13))


def parse_locale(tag: str) -> Locale:
    """Babel's locale for a BCP 47 tag as Stripe spells it ("fr-FR", "pt-BR", "de");
    UnknownLocaleError or ValueError when Babel does not know it."""
    return Locale.parse(tag.replace("-", "_"))


def format_money(amount_minor: int | Decimal, currency: str, locale: str) -> str:
    """An amount in minor units, e.g. (123456, "usd", "en-US") -> "$1,234.56",
    (1235, "jpy", "en-US") -> "¥1,235", (1235, "kwd", "en-US") -> "KWD 1.235".

    Exactly the currency's exponent of decimals, more when the amount has a fraction of a
    minor unit (a unit price of 0.5 cents prints "$0.005"), never rounded."""
    value = require_decimal(amount_minor)  # a float, a bool or NaN is refused, not printed
    exponent = get_currency(currency).exponent
    code = currency.upper()
    babel_locale = parse_locale(locale)
    pattern = _currency_pattern(babel_locale, code, exponent)
    # enough precision for every digit: Babel normalizes and quantizes in the current
    # context, whose default 28 digits would round a long amount (or refuse 1E+30);
    # digits plus the distance of the point from them bounds what is printed
    digits, point = value.as_tuple().digits, value.as_tuple().exponent
    assert isinstance(point, int)  # a finite Decimal's exponent (require_decimal saw to it)
    if value.is_zero():
        value = value.copy_abs()  # Decimal("-0") would print "-$0.00"
    with localcontext() as context:
        context.prec = max(context.prec, len(digits) + abs(point) + exponent + 1)
        return format_currency(
            value.scaleb(-exponent),
            code,
            format=pattern,
            locale=babel_locale,
            currency_digits=False,
            # with the pattern's fraction set to the exponent, this keeps the extra digits
            # of a sub-minor unit price instead of rounding them away
            decimal_quantization=False,
        )


def format_quantity(quantity: int, locale: str) -> str:
    """A line's quantity with the locale's grouping ("1,000", "1.000", "1 000")."""
    return format_decimal(quantity, locale=parse_locale(locale))


def format_date(value: date | datetime, locale: str) -> str:
    """A date in the locale's long form ("March 14, 2024", "14. März 2024"); a datetime
    prints the calendar date in its own time zone."""
    return babel_format_date(value, format="long", locale=parse_locale(locale))


def document_locale(preferred: Sequence[str], *, currency: str = "usd") -> str:
    """The first of a customer's preferred locales (as given, e.g. "de-DE") that Babel knows,
    that is written left to right and whose amounts in `currency` and dates the embedded
    font can print; else "en-US".

    Right-to-left locales are left out because the renderer lays text out left to right
    without shaping (Arabic letters would print unjoined and reversed)."""
    for tag in preferred:
        try:
            babel_locale = parse_locale(tag)
        except (UnknownLocaleError, ValueError):
            continue
        if babel_locale.character_order == "left-to-right" and can_print(_sample(tag, currency)):
            return tag
    return DEFAULT_LOCALE


def _sample(locale: str, currency: str) -> str:
    """What a document in this locale prints besides its caller-given text."""
    amounts = (format_money(amount, currency, locale) for amount in (-123456789, Decimal("1234.5")))
    dates = (format_date(value, locale) for value in _SAMPLE_DATES)
    return " ".join((*amounts, format_quantity(1234567, locale), *dates))


def _currency_pattern(locale: Locale, code: str, exponent: int) -> NumberPattern:
    """The locale's standard currency pattern with the currency's ISO exponent as its
    fraction digits, and CLDR's currency spacing (which Babel does not apply): a no-break
    space between a letter-ending symbol and a digit, so "KWD 1.235", not "KWD1.235"."""
    pattern = locale.currency_formats["standard"]
    symbol = get_currency_symbol(code, locale=locale)
    prefix, suffix = pattern.prefix, pattern.suffix
    if _needs_space(symbol[-1]):
        prefix = (_space_before_number(prefix[0]), _space_before_number(prefix[1]))
    if _needs_space(symbol[0]):
        suffix = (_space_after_number(suffix[0]), _space_after_number(suffix[1]))
    return NumberPattern(
        pattern.pattern,
        prefix,
        suffix,
        pattern.grouping,
        pattern.int_prec,
        (exponent, exponent),
        pattern.exp_prec,
        pattern.exp_plus,
        pattern.number_pattern,
    )


def _needs_space(symbol_edge: str) -> bool:
    # CLDR currencySpacing: the symbol's character next to the number matches
    # [[:^S:]&[:^Z:]] (neither a symbol nor a separator)
    return unicodedata.category(symbol_edge)[0] not in "SZ"


def _space_before_number(affix: str) -> str:
    return affix + "\xa0" if affix.endswith("¤") else affix


def _space_after_number(affix: str) -> str:
    return "\xa0" + affix if affix.startswith("¤") else affix
