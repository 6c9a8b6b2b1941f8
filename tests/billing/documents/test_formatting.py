import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from babel.numbers import get_currency_precision, get_decimal_symbol
from hypothesis import given
from hypothesis import strategies as st

from billing.documents.fonts import can_print
from billing.documents.formatting import (
    document_locale,
    format_date,
    format_money,
    format_quantity,
    parse_locale,
)
from billing.money.currencies import CURRENCIES, get_currency

pytestmark = pytest.mark.unit

NBSP, NNBSP = "\xa0", "\u202f"


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (123456, "usd", "en-US", "$1,234.56"),
        (-1999, "usd", "en-US", "-$19.99"),
        (5, "usd", "en-US", "$0.05"),
        (0, "usd", "en-US", "$0.00"),
        (Decimal("-0"), "usd", "en-US", "$0.00"),
        (123456, "eur", "de-DE", f"1.234,56{NBSP}€"),
        (123456, "eur", "fr-FR", f"1{NNBSP}234,56{NBSP}€"),
        (123456, "gbp", "en-GB", "£1,234.56"),
        (1235, "jpy", "en-US", "¥1,235"),
        (1235, "jpy", "de-DE", f"1.235{NBSP}¥"),
        # CLDR's currency spacing: a symbol ending in a letter is kept off the digits
        (1235, "kwd", "en-US", f"KWD{NBSP}1.235"),
        (-1235, "kwd", "en-US", f"-KWD{NBSP}1.235"),
        (1235, "kwd", "de-DE", f"1,235{NBSP}KWD"),
        (123456, "usd", "pt-BR", f"US${NBSP}1.234,56"),
        # ISO's exponent, not Babel's (CLDR gives HUF and IQD no decimals)
        (12345, "huf", "en-US", f"HUF{NBSP}123.45"),
        (12345, "iqd", "en-US", f"IQD{NBSP}12.345"),
    ],
)
def test_format_money_examples(amount: int | Decimal, currency: str, locale: str, expected: str) -> None:
    assert format_money(amount, currency, locale) == expected


def test_the_iso_exponent_overrides_babels_currency_digits() -> None:
    # the premise of the HUF and IQD examples: Babel alone would print other digits
    assert get_currency_precision("HUF") != get_currency("huf").exponent
    assert get_currency_precision("IQD") != get_currency("iqd").exponent


@pytest.mark.parametrize(
    ("unit_amount", "currency", "expected"),
    [
        (Decimal("0.5"), "usd", "$0.005"),  # half a cent
        (Decimal("123.4500"), "usd", "$1.2345"),  # trailing zeros dropped, not the exponent's digits
        (Decimal("1200.000000000000"), "usd", "$12.00"),  # a Decimal(30,12) column's value
        (Decimal("0.000000000001"), "usd", "$0.00000000000001"),
        (Decimal("0.25"), "jpy", "¥0.25"),
        (Decimal("1234.5"), "kwd", f"KWD{NBSP}1.2345"),
    ],
)
def test_a_fractional_unit_price_prints_every_digit(unit_amount: Decimal, currency: str, expected: str) -> None:
    assert format_money(unit_amount, currency, "en-US") == expected


def test_format_money_refuses_floats_and_non_numbers() -> None:
    with pytest.raises(TypeError):
        format_money(12.34, "usd", "en-US")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_money(True, "usd", "en-US")
    with pytest.raises(ValueError):
        format_money(Decimal("NaN"), "usd", "en-US")


def test_an_amount_longer_than_the_default_decimal_precision_is_exact() -> None:
    amount = 10**40 + 7
    assert format_money(amount, "usd", "en-US") == "$" + f"{10**38:,}" + ".07"
    assert format_money(Decimal("1E+30"), "usd", "en-US") == "$" + f"{10**28:,}" + ".00"
    assert format_money(Decimal("-1234567890123456789012345678.9"), "kwd", "en-US") == (
        f"-KWD{NBSP}" + f"{1234567890123456789012345:,}" + ".6789"
    )


@given(
    amount=st.integers(),
    currency=st.sampled_from(["usd", "eur", "jpy", "kwd", "gbp"]),
    locale=st.sampled_from(["en-US", "de-DE", "fr-FR", "en-GB"]),
)
def test_format_money_prints_exactly_the_amount(amount: int, currency: str, locale: str) -> None:
    text = format_money(amount, currency, locale)
    exponent = get_currency(currency).exponent

    digits = re.sub(r"[^0-9-]", "", text)
    assert digits.startswith("-") == (amount < 0)
    assert digits.lstrip("-") == str(abs(amount)).rjust(exponent + 1, "0")

    decimal_symbol = get_decimal_symbol(parse_locale(locale))
    if exponent:
        assert re.search(rf"{re.escape(decimal_symbol)}[0-9]{{{exponent}}}(?![0-9])", text), text
    else:
        assert decimal_symbol not in text


def test_format_quantity_groups_digits_by_locale() -> None:
    assert format_quantity(1000000, "en-US") == "1,000,000"
    assert format_quantity(1000000, "de-DE") == "1.000.000"
    assert format_quantity(1000000, "fr-FR") == f"1{NNBSP}000{NNBSP}000"


def test_format_date_long_form() -> None:
    assert format_date(date(2024, 3, 14), "en-US") == "March 14, 2024"
    assert format_date(date(2024, 3, 14), "de-DE") == "14. März 2024"
    assert format_date(date(2024, 3, 14), "fr-FR") == "14 mars 2024"
    # a datetime prints its own calendar date
    assert format_date(datetime(2024, 3, 14, 23, 30, tzinfo=UTC), "en-GB") == "14 March 2024"


@pytest.mark.parametrize(
    ("preferred", "expected"),
    [
        (["xx", "de-DE"], "de-DE"),
        (["xx", "de"], "de"),
        (["fr-FR", "de"], "fr-FR"),
        (["pt-BR"], "pt-BR"),
        (["ru", "de"], "ru"),  # Cyrillic: DejaVu Sans has it
        (["el"], "el"),  # Greek too
        (["zh-CN"], "en-US"),  # Han characters: DejaVu Sans has none
        (["ja", "de"], "de"),  # "2024年3月14日"
        (["ko"], "en-US"),
        (["ar-SA", "he"], "en-US"),  # printable, but right to left
        (["not a tag", "", "xx-YY"], "en-US"),
        ([], "en-US"),
    ],
)
def test_document_locale(preferred: list[str], expected: str) -> None:
    assert document_locale(preferred) == expected


def test_document_locale_checks_the_font_not_a_list() -> None:
    # why ja and zh-CN fall back: their dates (and ja's full-width yen) have no glyph here,
    # while what de and ru print has
    assert not can_print(format_date(date(2024, 3, 14), "ja"))
    assert not can_print(format_money(1235, "jpy", "ja"))  # "￥1,235", U+FFE5
    assert not can_print(format_date(date(2024, 3, 14), "zh-CN"))
    assert can_print(format_money(-123456, "eur", "fr-FR") + format_date(date(2024, 5, 1), "ru"))


def test_document_locale_considers_the_documents_currency() -> None:
    # Georgian dates print in DejaVu Sans, the lari sign "₾" (U+20BE) does not
    assert document_locale(["ka"], currency="usd") == "ka"
    assert document_locale(["ka", "de"], currency="gel") == "de"


def test_the_fallback_locale_prints_every_currency() -> None:
    # en-US is returned without a check, so it must print whatever the invoice is in
    for code in CURRENCIES:
        assert can_print(format_money(-123456789, code, "en-US")), code
        assert can_print(format_money(Decimal("1234.5"), code, "en-US")), code
