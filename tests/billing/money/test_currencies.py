from dataclasses import FrozenInstanceError

import pytest

from billing.errors import InvalidRequest
from billing.money.currencies import (
    CURRENCIES,
    Currency,
    UnknownCurrency,
    currency_param,
    get_currency,
    is_known_currency,
    normalize_currency_code,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3), ("CLF", 4), ("UYW", 4), ("KRW", 0), ("GBP", 2)],
)
def test_iso_4217_exponents(code: str, exponent: int) -> None:
    assert get_currency(code).exponent == exponent


def test_zero_three_and_four_decimal_currencies_are_exactly_iso_s() -> None:
    by_exponent: dict[int, set[str]] = {}
    for currency in CURRENCIES.values():
        by_exponent.setdefault(currency.exponent, set()).add(currency.code)
    assert by_exponent[0] == {
        "bif",
        "clp",
        "djf",
        "gnf",
        "isk",
        "jpy",
        "kmf",
        "krw",
        "pyg",
        "rwf",
        "ugx",
        "uyi",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
    assert by_exponent[3] == {"bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"}
    assert by_exponent[4] == {"clf", "uyw"}
    assert set(by_exponent) == {0, 2, 3, 4}


def test_table_shape() -> None:
    assert len(CURRENCIES) >= 160
    for code, currency in CURRENCIES.items():
        assert code == currency.code
        assert len(code) == 3 and code.isascii() and code.isalpha() and code.islower()
        assert currency.name


def test_lookup_is_case_insensitive_and_normalizes_to_lowercase() -> None:
    assert get_currency("USD") is get_currency("usd") is get_currency("Usd")
    assert get_currency("USD").code == "usd"
    assert normalize_currency_code("EUR") == "eur"
    assert get_currency(get_currency("kwd")) == get_currency("KWD")


@pytest.mark.parametrize("code", ["xyz", "", "usdx", "us", "XAU", "XXX", " usd", "hrk"])
def test_unknown_codes_raise_unknown_currency(code: str) -> None:
    with pytest.raises(UnknownCurrency, match="Unknown currency") as error:
        get_currency(code)
    assert error.value.code == code
    assert not is_known_currency(code)


@pytest.mark.parametrize("code", [840, 1.0, None, b"usd"])
def test_non_string_codes_raise_type_error(code: object) -> None:
    with pytest.raises(TypeError):
        get_currency(code)  # type: ignore[arg-type]


def test_currency_is_frozen() -> None:
    usd = get_currency("usd")
    with pytest.raises(FrozenInstanceError):
        usd.exponent = 3  # type: ignore[misc]
    assert usd == Currency("usd", 2, "US Dollar")
    assert usd.minor_units_per_unit == 100
    assert get_currency("kwd").minor_units_per_unit == 1000


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CURRENCIES["abc"] = Currency("abc", 2, "Nope")  # type: ignore[index]


def test_currency_param_normalizes_or_names_the_parameter() -> None:
    assert currency_param("jPy", "currency") == get_currency("JPY").code
    for bad in ("xxx1", "", None, 840):
        with pytest.raises(InvalidRequest) as refused:
            currency_param(bad, "quote")
        assert (refused.value.code, refused.value.param) == ("invalid_currency", "quote")
