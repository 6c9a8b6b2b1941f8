"""Exchange rates as data, for reporting in an organization's reporting currency.

Never used to decide what a customer is charged: prices carry their own amounts per
currency (currency_options), and a currency a price lacks is an error, not a conversion.

An ExchangeRate says: on `as_of`, according to `source`, 1 `base` = `rate` `quote`, in
major units (1 EUR = 1.0842 USD).

convert_for_reporting uses, for each currency pair, the latest rate at or before `at`, and
supports, in this order of preference:
1. the same currency (no rate needed);
2. a direct rate (from -> to) or an inverse one (to -> from, used as 1/rate); when both
   exist the later one wins, and the direct one on a tie;
3. a cross rate through one intermediate currency X, each leg direct or inverse
   (e.g. ECB-style rates EUR->USD and EUR->JPY convert USD to JPY). When several X work,
   the path whose older leg is the most recent wins; ties go to X in alphabetical order.
Longer chains are not searched. Rounding to the target's minor unit happens once, with the
money rule (ties away from zero).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Final

from billing.money.amounts import (
    check_line_amount,
    parse_decimal,
    reject_float,
    require_decimal,
    require_int,
    round_to_minor,
)
from billing.money.currencies import Currency, UnknownCurrency, get_currency

# Cross and inverse rates divide; 60 significant digits keeps the error far below the
# half-minor-unit that the final rounding decides on.
_DIVISION: Final = Context(prec=60, rounding=ROUND_HALF_EVEN)

CSV_COLUMNS: Final = ("base", "quote", "rate", "source", "as_of")


class NoExchangeRate(LookupError):
    def __init__(self, from_currency: str, to_currency: str, at: datetime) -> None:
        self.from_currency = from_currency
        self.to_currency = to_currency
        self.at = at
        super().__init__(
            f"No exchange rate from {from_currency} to {to_currency} at or before {at.isoformat()} "
            "(looked for direct, inverse and one-step cross rates)."
        )


class RatesCsvError(ValueError):
    """Every problem found in a rates CSV, each with its 1-based line number."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"line {line}: {message}" for line, message in errors))


def _require_aware(moment: object, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(moment).__name__}.")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {moment.isoformat()}.")
    return moment


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    base: str
    quote: str
    rate: Decimal  # 1 base = rate quote, major units
    source: str
    as_of: datetime  # timezone-aware

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", get_currency(self.base).code)
        object.__setattr__(self, "quote", get_currency(self.quote).code)
        if self.base == self.quote:
            raise ValueError(f"An exchange rate needs two different currencies, got {self.base} twice.")
        rate = require_decimal(self.rate, "rate")
        if rate <= 0:
            raise ValueError(f"An exchange rate must be positive, got {rate}.")
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError("An exchange rate needs a source (e.g. 'ecb').")
        _require_aware(self.as_of, "as_of")


@dataclass(frozen=True, slots=True)
class _Leg:
    """One step of a conversion: multiply by rate, or divide by it when inverse."""

    rate: ExchangeRate
    inverse: bool


def _latest_leg(rates: Iterable[ExchangeRate], from_code: str, to_code: str, at: datetime) -> _Leg | None:
    candidates: list[_Leg] = []
    for rate in rates:
        if rate.as_of > at:
            continue
        if (rate.base, rate.quote) == (from_code, to_code):
            candidates.append(_Leg(rate, inverse=False))
        elif (rate.base, rate.quote) == (to_code, from_code):
            candidates.append(_Leg(rate, inverse=True))
    if not candidates:
        return None
    latest = max(leg.rate.as_of for leg in candidates)
    newest = [leg for leg in candidates if leg.rate.as_of == latest]
    # Direct before inverse, then by source name and rate, so that the choice never
    # depends on the order the rates were given in.
    return min(newest, key=lambda leg: (leg.inverse, leg.rate.source, leg.rate.rate))


def find_conversion_path(
    rates: Iterable[ExchangeRate], from_currency: str, to_currency: str, at: datetime
) -> tuple[ExchangeRate, ...]:
    """The rates convert_for_reporting would use (empty for the same currency)."""
    _require_aware(at, "at")
    legs = _path(list(rates), get_currency(from_currency).code, get_currency(to_currency).code, at)
    return tuple(leg.rate for leg in legs)


def _path(rates: list[ExchangeRate], from_code: str, to_code: str, at: datetime) -> list[_Leg]:
    if from_code == to_code:
        return []
    direct = _latest_leg(rates, from_code, to_code, at)
    if direct is not None:
        return [direct]
    intermediates = sorted(({rate.base for rate in rates} | {rate.quote for rate in rates}) - {from_code, to_code})
    best: list[_Leg] | None = None
    best_freshness: datetime | None = None
    for middle in intermediates:
        first = _latest_leg(rates, from_code, middle, at)
        second = _latest_leg(rates, middle, to_code, at) if first is not None else None
        if first is None or second is None:
            continue
        freshness = min(first.rate.as_of, second.rate.as_of)
        if best_freshness is None or freshness > best_freshness:
            best, best_freshness = [first, second], freshness
    if best is None:
        raise NoExchangeRate(from_code, to_code, at)
    return best


def convert_for_reporting(
    amount_minor: int,
    from_currency: str | Currency,
    to_currency: str | Currency,
    rates: Iterable[ExchangeRate],
    at: datetime,
) -> int:
    """`amount_minor` of `from_currency` in `to_currency`'s minor units, for reports only."""
    require_int(amount_minor, "amount_minor")
    _require_aware(at, "at")
    source = get_currency(from_currency)
    target = get_currency(to_currency)
    rate_list = list(rates)
    for rate in rate_list:
        if not isinstance(rate, ExchangeRate):
            raise TypeError(f"rates must hold ExchangeRate objects, not {type(rate).__name__}.")
    legs = _path(rate_list, source.code, target.code, at)
    if not legs:
        return amount_minor
    # Multiply everything into one fraction, then divide once and round once.
    numerator = Decimal(amount_minor).scaleb(target.exponent)
    denominator = Decimal(1).scaleb(source.exponent)
    for leg in legs:
        if leg.inverse:
            denominator = denominator * leg.rate.rate
        else:
            numerator = numerator * leg.rate.rate
    converted = _DIVISION.divide(numerator, denominator)
    return check_line_amount(round_to_minor(converted), "converted amount")


# --- CSV import -------------------------------------------------------------------------


def _parse_as_of(text: str) -> datetime:
    """ISO 8601 with an offset ("2024-05-31T16:00:00+02:00", "...Z"); a bare date is 00:00 UTC."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"as_of {text!r} is not an ISO 8601 date or date-time") from None
    if moment.tzinfo is None:
        raise ValueError(f"as_of {text!r} has a time but no timezone offset (add Z or +HH:MM)")
    return moment


def _parse_row(row: dict[str, str]) -> ExchangeRate:
    try:
        base = get_currency(row["base"]).code
        quote = get_currency(row["quote"]).code
    except UnknownCurrency as error:
        raise ValueError(str(error)) from None
    try:
        rate = parse_decimal(row["rate"], "rate")
    except ValueError:
        raise ValueError(f"rate {row['rate']!r} is not a decimal number like 1.0842") from None
    as_of = _parse_as_of(row["as_of"])
    return ExchangeRate(base, quote, rate, row["source"], as_of)


def parse_rates_csv(text: str) -> list[ExchangeRate]:
    """Parse `base,quote,rate,source,as_of` rows (header required, columns in any order).

    Blank lines are skipped. All problems are collected and raised together as
    RatesCsvError, each with its line number in the file.
    """
    reject_float(text, "text")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}.")
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header: list[str] | None = None
    errors: list[tuple[int, str]] = []
    rates: list[ExchangeRate] = []
    seen: dict[tuple[str, str, str, datetime], int] = {}
    try:
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                continue
            cells = [field.strip() for field in fields]
            if header is None:
                header = [cell.lower() for cell in cells]
                missing = [column for column in CSV_COLUMNS if column not in header]
                unknown = [column for column in header if column not in CSV_COLUMNS]
                duplicated = sorted({column for column in header if header.count(column) > 1})
                if missing or unknown or duplicated:
                    problems = []
                    if missing:
                        problems.append(f"missing column(s) {', '.join(missing)}")
                    if unknown:
                        problems.append(f"unknown column(s) {', '.join(unknown)}")
                    if duplicated:
                        problems.append(f"repeated column(s) {', '.join(duplicated)}")
                    raise RatesCsvError(
                        [(line, f"bad header ({'; '.join(problems)}); expected {','.join(CSV_COLUMNS)}")]
                    )
                continue
            if len(cells) != len(header):
                errors.append((line, f"expected {len(header)} fields, found {len(cells)}"))
                continue
            try:
                rate = _parse_row(dict(zip(header, cells, strict=False)))
            except ValueError as error:
                errors.append((line, str(error)))
                continue
            key = (rate.base, rate.quote, rate.source, rate.as_of)
            if key in seen:
                first = seen[key]
                pair = f"{rate.base}->{rate.quote}, {rate.source}, {rate.as_of.isoformat()}"
                errors.append((line, f"repeats the rate of line {first} ({pair})"))
                continue
            seen[key] = line
            rates.append(rate)
    except csv.Error as error:
        errors.append((reader.line_num, f"malformed CSV: {error}"))
    if header is None:
        raise RatesCsvError([(1, f"empty file; expected a header {','.join(CSV_COLUMNS)}")])
    if errors:
        raise RatesCsvError(errors)
    return rates
