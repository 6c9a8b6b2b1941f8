from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.money.amounts import (
    MAX_DECIMAL_PLACES,
    MAX_LINE_AMOUNT,
    MAX_UNIT_AMOUNT,
    AmountOutOfRange,
    check_line_amount,
    decimal_places,
    exact_product,
    format_amount,
    from_minor_units,
    line_amount,
    parse_decimal,
    require_decimal,
    require_int,
    round_ratio_to_minor,
    round_to_minor,
    to_minor_units,
)
from billing.money.currencies import CURRENCIES

pytestmark = pytest.mark.unit

currency_codes = st.sampled_from(sorted(CURRENCIES))
# Decimal amounts in minor units with up to 12 decimal places, either sign.
sub_minor_amounts = st.decimals(
    min_value=Decimal(-(10**12)), max_value=Decimal(10**12), places=MAX_DECIMAL_PLACES, allow_nan=False
)


def half_up_oracle(value: Fraction) -> int:
    """Round half away from zero, written independently of the decimal module."""
    magnitude = abs(value)
    rounded = int(magnitude + Fraction(1, 2))  # int() truncates toward zero: floor for >= 0
    return rounded if value >= 0 else -rounded


def test_bounds_are_stripe_like_and_int64() -> None:
    assert MAX_UNIT_AMOUNT == 99_999_999
    assert MAX_LINE_AMOUNT == 9_223_372_036_854_775_807
    assert MAX_DECIMAL_PLACES == 12


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0.5", 1),
        ("1.5", 2),
        ("2.5", 3),
        ("-0.5", -1),
        ("-1.5", -2),
        ("-2.5", -3),
        ("0.4999999999", 0),
        ("-0.4999999999", 0),
        ("1.005", 1),
        ("12", 12),
        ("-12", -12),
        ("0", 0),
        ("0.000000000001", 0),
        ("99999999.5", 100000000),
    ],
)
def test_round_to_minor_ties_away_from_zero(amount: str, expected: int) -> None:
    result = round_to_minor(Decimal(amount))
    assert result == expected
    assert type(result) is int


@settings(max_examples=300)
@given(sub_minor_amounts)
def test_round_to_minor_matches_half_away_from_zero(amount: Decimal) -> None:
    result = round_to_minor(amount)
    assert type(result) is int
    assert result == half_up_oracle(Fraction(amount))
    assert abs(Decimal(result) - amount) <= Decimal("0.5")


@settings(max_examples=200)
@given(sub_minor_amounts)
def test_rounding_is_symmetric_for_negatives(amount: Decimal) -> None:
    assert round_to_minor(-amount) == -round_to_minor(amount)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_exact_ties_go_away_from_zero(whole: int) -> None:
    tie = Decimal(whole) + (Decimal("0.5") if whole >= 0 else Decimal("-0.5"))
    assert round_to_minor(tie) == (whole + 1 if whole >= 0 else whole - 1)


@pytest.mark.parametrize(
    ("major", "currency", "minor"),
    [
        ("12.345", "usd", 1235),
        ("-12.345", "usd", -1235),
        ("12.344", "usd", 1234),
        ("12.5", "jpy", 13),
        ("-12.5", "JPY", -13),
        ("1.2345", "kwd", 1235),
        ("1.23455", "clf", 12346),
        ("0", "eur", 0),
        ("19.99", "eur", 1999),
        ("7", "bhd", 7000),
    ],
)
def test_to_minor_units_uses_the_currency_exponent_and_the_rounding_rule(major: str, currency: str, minor: int) -> None:
    assert to_minor_units(Decimal(major), currency) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "major"),
    [(1234, "usd", "12.34"), (1234, "jpy", "1234"), (1234, "kwd", "1.234"), (1, "clf", "0.0001"), (-5, "usd", "-0.05")],
)
def test_from_minor_units_is_exact(minor: int, currency: str, major: str) -> None:
    assert from_minor_units(minor, currency) == Decimal(major)


@settings(max_examples=300)
@given(st.integers(min_value=-MAX_LINE_AMOUNT, max_value=MAX_LINE_AMOUNT), currency_codes)
def test_minor_major_round_trip(minor: int, currency: str) -> None:
    assert to_minor_units(from_minor_units(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1234, "usd", "12.34"),
        (5, "usd", "0.05"),
        (-5, "usd", "-0.05"),
        (0, "usd", "0.00"),
        (1234, "jpy", "1234"),
        (-1234, "jpy", "-1234"),
        (1234, "kwd", "1.234"),
        (1005, "KWD", "1.005"),
        (1, "clf", "0.0001"),
        (100, "eur", "1.00"),
        (MAX_LINE_AMOUNT, "usd", "92233720368547758.07"),
    ],
)
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


@settings(max_examples=200)
@given(st.integers(min_value=-MAX_LINE_AMOUNT, max_value=MAX_LINE_AMOUNT), currency_codes)
def test_format_amount_has_exactly_the_currency_digits(minor: int, currency: str) -> None:
    text = format_amount(minor, currency)
    exponent = CURRENCIES[currency].exponent
    assert Decimal(text) == from_minor_units(minor, currency)
    assert (len(text.partition(".")[2]) if "." in text else 0) == exponent


def test_line_amount_keeps_every_digit_before_rounding_once() -> None:
    # 28 digits (the default decimal precision) would lose the tail of this product.
    quantity, unit = 123_456_789_012, Decimal("99.999999999999")
    exact = Fraction(quantity) * Fraction(unit)
    assert exact_product(quantity, unit) == Decimal(quantity) * unit  # sanity: both exact here
    assert line_amount(quantity, unit) == half_up_oracle(exact)
    assert line_amount(10**12, Decimal("0.000000000001")) == 1
    assert line_amount(3, Decimal("0.5")) == 2  # 1.5 -> 2
    assert line_amount(1, Decimal("0.5"), Decimal("0.5")) == 1  # 0.5 + 0.5, rounded once
    assert line_amount(0, Decimal("123.4"), Decimal(250)) == 250


@settings(max_examples=200)
@given(
    st.integers(min_value=0, max_value=10**9),
    st.decimals(min_value=0, max_value=MAX_UNIT_AMOUNT, places=12, allow_nan=False),
    st.decimals(min_value=0, max_value=MAX_UNIT_AMOUNT, places=12, allow_nan=False),
)
def test_line_amount_rounds_the_exact_line_once(quantity: int, unit: Decimal, flat: Decimal) -> None:
    result = line_amount(quantity, unit, flat)
    assert type(result) is int
    assert result == half_up_oracle(quantity * Fraction(unit) + Fraction(flat))


def test_line_amount_beyond_int64_is_refused() -> None:
    with pytest.raises(AmountOutOfRange):
        line_amount(10**12, Decimal(MAX_UNIT_AMOUNT))
    assert check_line_amount(MAX_LINE_AMOUNT) == MAX_LINE_AMOUNT
    assert check_line_amount(-MAX_LINE_AMOUNT) == -MAX_LINE_AMOUNT
    with pytest.raises(AmountOutOfRange):
        check_line_amount(MAX_LINE_AMOUNT + 1)


def test_decimal_helpers() -> None:
    assert decimal_places(Decimal("1.50")) == 2
    assert decimal_places(Decimal(100)) == 0
    assert decimal_places(Decimal("1E+2")) == 0
    assert parse_decimal("-0.125") == Decimal("-0.125")
    for bad in ("1e3", " 1", "1.", ".5", "", "NaN", "inf", "1,5", "+1"):
        with pytest.raises(ValueError):
            parse_decimal(bad)
    with pytest.raises(ValueError):
        require_decimal(Decimal("NaN"))
    with pytest.raises(ValueError):
        require_decimal(Decimal("Infinity"))
    assert require_decimal(7) == Decimal(7)
    assert require_int(7) == 7


FLOAT_CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("round_to_minor", lambda f: round_to_minor(f)),
    ("to_minor_units", lambda f: to_minor_units(f, "usd")),
    ("from_minor_units", lambda f: from_minor_units(f, "usd")),
    ("format_amount", lambda f: format_amount(f, "usd")),
    ("line_amount quantity", lambda f: line_amount(f, Decimal(1))),
    ("line_amount unit", lambda f: line_amount(1, f)),
    ("line_amount flat", lambda f: line_amount(1, Decimal(1), f)),
    ("exact_product", lambda f: exact_product(2, f)),
    ("check_line_amount", lambda f: check_line_amount(f)),
    ("require_int", lambda f: require_int(f)),
    ("require_decimal", lambda f: require_decimal(f)),
    ("parse_decimal", lambda f: parse_decimal(f)),
    ("decimal_places", lambda f: decimal_places(f)),
]


@pytest.mark.parametrize(("name", "call"), FLOAT_CALLS, ids=[name for name, _ in FLOAT_CALLS])
@given(st.floats(allow_nan=True, allow_infinity=True))
@settings(max_examples=20)
def test_floats_are_rejected_loudly(name: str, call: Callable[[Any], Any], value: float) -> None:
    with pytest.raises(TypeError, match="float"):
        call(value)


@pytest.mark.parametrize("value", [True, False])
def test_bools_are_not_amounts(value: bool) -> None:
    with pytest.raises(TypeError):
        require_int(value)
    with pytest.raises(TypeError):
        require_decimal(value)
    with pytest.raises(TypeError):
        format_amount(value, "usd")


def test_strings_are_not_decimals_without_parsing() -> None:
    with pytest.raises(TypeError):
        round_to_minor("1.5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_amount(Decimal(1), "usd")  # type: ignore[arg-type]


@given(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=1, max_value=10**12),
)
def test_a_ratio_rounds_once_by_the_same_rule(amount: int, numerator: int, denominator: int) -> None:
    assert round_ratio_to_minor(amount, numerator, denominator) == half_up_oracle(
        Fraction(amount * numerator, denominator)
    )
    assert round_ratio_to_minor(-amount, numerator, denominator) == -round_ratio_to_minor(
        amount, numerator, denominator
    )


def test_a_ratio_refuses_floats_and_a_zero_denominator() -> None:
    assert round_ratio_to_minor(1000, 1, 3) == 333
    assert round_ratio_to_minor(1, 1, 2) == 1 and round_ratio_to_minor(-1, 1, 2) == -1
    with pytest.raises(TypeError):
        round_ratio_to_minor(10.0, 1, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        round_ratio_to_minor(10, 1, 0)
