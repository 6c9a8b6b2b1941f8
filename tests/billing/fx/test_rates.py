from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing.fx.rates import (
    ExchangeRate,
    NoExchangeRate,
    RatesCsvError,
    convert_for_reporting,
    find_conversion_path,
    parse_rates_csv,
)
from billing.money.amounts import MAX_LINE_AMOUNT, AmountOutOfRange
from billing.money.currencies import UnknownCurrency, get_currency

pytestmark = pytest.mark.unit

MAY_31 = datetime(2024, 5, 31, tzinfo=UTC)
JUNE_1 = datetime(2024, 6, 1, tzinfo=UTC)


def rate(base: str, quote: str, value: str, as_of: datetime = MAY_31, source: str = "ecb") -> ExchangeRate:
    return ExchangeRate(base, quote, Decimal(value), source, as_of)


def half_up(value: Fraction) -> int:
    rounded = int(abs(value) + Fraction(1, 2))
    return rounded if value >= 0 else -rounded


ECB = [rate("EUR", "USD", "1.0842"), rate("EUR", "JPY", "170.51"), rate("EUR", "KWD", "0.3326")]


def test_exchange_rate_is_normalized_and_checked() -> None:
    r = rate("EUR", "USD", "1.0842")
    assert (r.base, r.quote, r.rate) == ("eur", "usd", Decimal("1.0842"))
    with pytest.raises(TypeError, match="float"):
        ExchangeRate("eur", "usd", 1.0842, "ecb", MAY_31)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        rate("eur", "usd", "0")
    with pytest.raises(ValueError, match="positive"):
        rate("eur", "usd", "-1")
    with pytest.raises(ValueError, match="different"):
        rate("eur", "EUR", "1")
    with pytest.raises(ValueError, match="timezone"):
        ExchangeRate("eur", "usd", Decimal(1), "ecb", datetime(2024, 5, 31))
    with pytest.raises(ValueError, match="source"):
        rate("eur", "usd", "1", source=" ")
    with pytest.raises(UnknownCurrency):
        rate("eur", "xyz", "1")


def test_same_currency_needs_no_rate() -> None:
    assert convert_for_reporting(12345, "usd", "USD", [], JUNE_1) == 12345


def test_direct_rate() -> None:
    assert convert_for_reporting(10000, "eur", "usd", ECB, JUNE_1) == 10842  # 100 EUR = 108.42 USD


def test_inverse_rate() -> None:
    assert convert_for_reporting(10842, "usd", "eur", ECB, JUNE_1) == 10000
    assert convert_for_reporting(10000, "usd", "eur", ECB, JUNE_1) == half_up(Fraction(10000) / Fraction("1.0842"))


def test_cross_rate_through_a_common_base() -> None:
    # 100 USD -> EUR -> JPY: 100 / 1.0842 * 170.51 = 15726.8...
    assert convert_for_reporting(10000, "usd", "jpy", ECB, JUNE_1) == 15727
    assert [r.quote for r in find_conversion_path(ECB, "usd", "jpy", JUNE_1)] == ["usd", "jpy"]
    # exponents on both sides: 100.00 USD -> 30.677 KWD; 1000 JPY -> 1.951 KWD
    assert convert_for_reporting(10000, "usd", "kwd", ECB, JUNE_1) == 30677
    assert convert_for_reporting(1000, "jpy", "kwd", ECB, JUNE_1) == half_up(
        1000 / Fraction("170.51") * Fraction("0.3326") * 1000
    )


def test_direct_rate_is_preferred_to_a_cross_rate() -> None:
    rates = [*ECB, rate("USD", "JPY", "157.00", as_of=MAY_31 - timedelta(days=1))]
    assert convert_for_reporting(100, "usd", "jpy", rates, JUNE_1) == 157


def test_latest_rate_at_or_before_the_moment() -> None:
    rates = [
        rate("EUR", "USD", "1.10", as_of=datetime(2024, 1, 1, tzinfo=UTC)),
        rate("EUR", "USD", "1.20", as_of=datetime(2024, 2, 1, tzinfo=UTC)),
        rate("EUR", "USD", "1.30", as_of=datetime(2024, 3, 1, tzinfo=UTC)),
    ]
    assert convert_for_reporting(100, "eur", "usd", rates, datetime(2024, 2, 15, tzinfo=UTC)) == 120
    assert convert_for_reporting(100, "eur", "usd", rates, datetime(2024, 2, 1, tzinfo=UTC)) == 120
    assert convert_for_reporting(100, "eur", "usd", rates, datetime(2024, 1, 31, 23, 59, tzinfo=UTC)) == 110
    assert convert_for_reporting(100, "eur", "usd", rates, datetime(2030, 1, 1, tzinfo=UTC)) == 130
    with pytest.raises(NoExchangeRate):
        convert_for_reporting(100, "eur", "usd", rates, datetime(2023, 12, 31, tzinfo=UTC))


def test_a_newer_inverse_rate_beats_an_older_direct_one() -> None:
    rates = [rate("EUR", "USD", "1.25", as_of=MAY_31 - timedelta(days=2)), rate("USD", "EUR", "0.5", as_of=MAY_31)]
    assert convert_for_reporting(100, "eur", "usd", rates, JUNE_1) == 200


def test_moments_in_other_timezones_compare_as_instants() -> None:
    tokyo = timezone(timedelta(hours=9))
    rates = [rate("EUR", "USD", "2", as_of=datetime(2024, 6, 1, 9, 0, tzinfo=tokyo))]  # = 00:00 UTC
    assert convert_for_reporting(100, "eur", "usd", rates, JUNE_1) == 200
    with pytest.raises(NoExchangeRate):
        convert_for_reporting(100, "eur", "usd", rates, JUNE_1 - timedelta(microseconds=1))


def test_no_rate_is_a_clear_error() -> None:
    with pytest.raises(NoExchangeRate, match="usd to gbp") as error:
        convert_for_reporting(100, "usd", "gbp", ECB, JUNE_1)
    assert (error.value.from_currency, error.value.to_currency) == ("usd", "gbp")


@pytest.mark.parametrize(
    ("amount", "value", "expected"),
    [(1, "0.5", 1), (-1, "0.5", -1), (3, "0.5", 2), (-3, "0.5", -2), (1, "0.49", 0)],
)
def test_rounding_follows_the_money_rule(amount: int, value: str, expected: int) -> None:
    assert convert_for_reporting(amount, "usd", "eur", [rate("USD", "EUR", value)], JUNE_1) == expected


def test_ties_away_from_zero_into_a_zero_decimal_currency() -> None:
    rates = [rate("USD", "JPY", "150.5")]
    assert convert_for_reporting(100, "usd", "jpy", rates, JUNE_1) == 151  # 150.5 yen
    assert convert_for_reporting(-100, "usd", "jpy", rates, JUNE_1) == -151


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="float"):
        convert_for_reporting(1.5, "eur", "usd", ECB, JUNE_1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        convert_for_reporting(1, "eur", "usd", ECB, datetime(2024, 6, 1))
    with pytest.raises(TypeError):
        convert_for_reporting(1, "eur", "usd", [("eur", "usd", Decimal(1))], JUNE_1)  # type: ignore[list-item]
    with pytest.raises(UnknownCurrency):
        convert_for_reporting(1, "eur", "abc", ECB, JUNE_1)


@settings(max_examples=200)
@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(100000), places=6, allow_nan=False),
    st.sampled_from(["usd", "jpy", "kwd", "clf"]),
    st.sampled_from(["eur", "jpy", "bhd"]),
)
def test_direct_and_inverse_match_an_exact_oracle(amount: int, value: Decimal, source: str, target: str) -> None:
    assume(source != target)
    scale = Fraction(10) ** (get_currency(target).exponent - get_currency(source).exponent)
    direct = [ExchangeRate(source, target, value, "test", MAY_31)]
    inverse = [ExchangeRate(target, source, value, "test", MAY_31)]
    for rates, expected in (
        (direct, half_up(amount * Fraction(value) * scale)),
        (inverse, half_up(amount / Fraction(value) * scale)),
    ):
        if abs(expected) > MAX_LINE_AMOUNT:
            with pytest.raises(AmountOutOfRange):
                convert_for_reporting(amount, source, target, rates, JUNE_1)
        else:
            assert convert_for_reporting(amount, source, target, rates, JUNE_1) == expected


@settings(max_examples=50)
@given(
    st.permutations(
        [*ECB, rate("EUR", "USD", "1.2", source="other"), rate("USD", "JPY", "150", as_of=MAY_31 - timedelta(days=3))]
    )
)
def test_the_result_does_not_depend_on_the_order_of_the_rates(rates: list[ExchangeRate]) -> None:
    assert convert_for_reporting(10000, "usd", "kwd", rates, JUNE_1) == 30677
    assert convert_for_reporting(10000, "eur", "usd", rates, JUNE_1) == 10842  # "ecb" sorts before "other"


# --- CSV ---------------------------------------------------------------------------------------


def test_parse_rates_csv() -> None:
    text = (
        "base,quote,rate,source,as_of\n"
        "EUR,USD,1.0842,ecb,2024-05-31\n"
        "\n"
        "eur,jpy,170.51,ecb,2024-05-31T16:00:00+02:00\n"
        "EUR,KWD,0.3326,ecb,2024-05-31T14:00:00Z\n"
    )
    rates = parse_rates_csv(text)
    assert rates == [
        rate("EUR", "USD", "1.0842", MAY_31),
        rate("EUR", "JPY", "170.51", datetime(2024, 5, 31, 14, tzinfo=UTC)),
        rate("EUR", "KWD", "0.3326", datetime(2024, 5, 31, 14, tzinfo=UTC)),
    ]
    assert rates[0].as_of.tzinfo is not None


def test_columns_in_any_order_with_bom_crlf_quotes_and_spaces() -> None:
    text = '\ufeffsource, AS_OF ,rate,quote,base\r\n"ecb", 2024-05-31 ,"1.0842",usd,eur\r\n'
    assert parse_rates_csv(text) == [rate("EUR", "USD", "1.0842", MAY_31)]


def test_header_only_gives_no_rates() -> None:
    assert parse_rates_csv("base,quote,rate,source,as_of\n") == []


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "empty file"),
        ("\n\n", 1, "empty file"),
        ("base,quote,rate,source\nEUR,USD,1,ecb\n", 1, "missing column(s) as_of"),
        ("base,quote,rate,source,as_of,extra\n", 1, "unknown column(s) extra"),
        ("base,quote,rate,source,as_of,base\n", 1, "repeated column(s) base"),
        ("base,quote,rate,source,as_of\nEUR,USD,abc,ecb,2024-01-01\n", 2, "rate 'abc'"),
        ("base,quote,rate,source,as_of\nEUR,USD,1.5e3,ecb,2024-01-01\n", 2, "rate '1.5e3'"),
        ("base,quote,rate,source,as_of\nEUR,USD,0,ecb,2024-01-01\n", 2, "positive"),
        ("base,quote,rate,source,as_of\n\nEUR,XXX,1,ecb,2024-01-01\n", 3, "Unknown currency"),
        ("base,quote,rate,source,as_of\nEUR,EUR,1,ecb,2024-01-01\n", 2, "two different currencies"),
        ("base,quote,rate,source,as_of\nEUR,USD,1,,2024-01-01\n", 2, "source"),
        ("base,quote,rate,source,as_of\nEUR,USD,1,ecb,2024-01-01T10:00\n", 2, "no timezone"),
        ("base,quote,rate,source,as_of\nEUR,USD,1,ecb,yesterday\n", 2, "ISO 8601"),
        ("base,quote,rate,source,as_of\nEUR,USD,1,ecb\n", 2, "expected 5 fields, found 4"),
        (
            "base,quote,rate,source,as_of\nEUR,USD,1,ecb,2024-01-01\nEUR,USD,2,ecb,2024-01-01\n",
            3,
            "repeats the rate of line 2",
        ),
    ],
)
def test_csv_errors_carry_line_numbers(text: str, line: int, fragment: str) -> None:
    with pytest.raises(RatesCsvError) as error:
        parse_rates_csv(text)
    assert error.value.errors[0][0] == line
    assert fragment in error.value.errors[0][1]
    assert str(error.value).startswith(f"line {line}: ")


def test_all_csv_errors_are_reported_together() -> None:
    text = (
        "base,quote,rate,source,as_of\n"
        "EUR,USD,1.1,ecb,2024-01-01\n"
        "EUR,USD,abc,ecb,2024-01-02\n"
        "EUR,ZZZ,1,ecb,2024-01-02\n"
        "EUR,USD,1.2,ecb,2024-01-03\n"
        "EUR,USD,1\n"
    )
    with pytest.raises(RatesCsvError) as error:
        parse_rates_csv(text)
    assert [line for line, _ in error.value.errors] == [3, 4, 6]


def test_same_pair_and_time_from_two_sources_is_fine() -> None:
    text = "base,quote,rate,source,as_of\nEUR,USD,1.1,ecb,2024-01-01\nEUR,USD,1.2,other,2024-01-01\n"
    assert [r.source for r in parse_rates_csv(text)] == ["ecb", "other"]


def test_csv_text_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        parse_rates_csv(b"base,quote,rate,source,as_of\n")  # type: ignore[arg-type]
