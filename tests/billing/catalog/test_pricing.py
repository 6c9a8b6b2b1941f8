from dataclasses import FrozenInstanceError
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.catalog.pricing import (
    BillingScheme,
    CurrencyOption,
    InvalidPriceTerms,
    InvalidQuantity,
    PriceTerms,
    Quote,
    QuoteLine,
    Tier,
    TiersMode,
    TransformQuantity,
    TransformRound,
    UnsupportedCurrency,
    price_terms_from_dict,
    quote,
)
from billing.money.amounts import MAX_UNIT_AMOUNT, format_amount
from billing.money.currencies import get_currency

pytestmark = pytest.mark.unit


def half_up(value: Fraction) -> int:
    """Independent oracle for the money rule: round half away from zero."""
    rounded = int(abs(value) + Fraction(1, 2))
    return rounded if value >= 0 else -rounded


def tiered(mode: str, tiers: list[dict[str, Any]], currency: str = "usd", **extra: Any) -> PriceTerms:
    return price_terms_from_dict(
        {"currency": currency, "billingScheme": "tiered", "tiersMode": mode, "tiers": tiers, **extra}
    )


# Stripe's "Set up tiered pricing" example (Typographic): fonts 1-5 at 7 USD, 6-10 at 6.50 USD, 11+ at 6 USD.
TYPOGRAPHIC_TIERS = [
    {"upTo": 5, "unitAmount": 700},
    {"upTo": 10, "unitAmount": 650},
    {"upTo": "inf", "unitAmount": 600},
]

# Stripe's older "Tiered pricing" page: 1-5 $5, 6-10 $4, 11-15 $3, 16-20 $2, 21+ $1.
LEGACY_DOC_TIERS = [
    {"upTo": 5, "unitAmount": 500},
    {"upTo": 10, "unitAmount": 400},
    {"upTo": 15, "unitAmount": 300},
    {"upTo": 20, "unitAmount": 200},
    {"upTo": "inf", "unitAmount": 100},
]


# --- Stripe-documented examples ------------------------------------------------------------


@pytest.mark.parametrize(("quantity", "total"), [(1, 700), (5, 3500), (6, 3900), (20, 12000), (25, 15000)])
def test_stripe_volume_example(quantity: int, total: int) -> None:
    assert quote(tiered("volume", TYPOGRAPHIC_TIERS), quantity, "usd").total == total


@pytest.mark.parametrize(("quantity", "total"), [(1, 700), (5, 3500), (6, 4150), (20, 12750), (25, 15750)])
def test_stripe_graduated_example(quantity: int, total: int) -> None:
    assert quote(tiered("graduated", TYPOGRAPHIC_TIERS), quantity, "usd").total == total


@pytest.mark.parametrize(("quantity", "total"), [(1, 500), (5, 2500), (6, 2400), (20, 4000), (25, 2500)])
def test_stripe_legacy_volume_example(quantity: int, total: int) -> None:
    assert quote(tiered("volume", LEGACY_DOC_TIERS), quantity, "usd").total == total


def test_stripe_legacy_graduated_example_6_units_is_29_dollars() -> None:
    result = quote(tiered("graduated", LEGACY_DOC_TIERS), 6, "usd")
    assert result.total == 2900
    assert [(line.tier_index, line.quantity, line.amount) for line in result.lines] == [(0, 5, 2500), (1, 1, 400)]


def test_graduated_breakdown_lines() -> None:
    result = quote(tiered("graduated", TYPOGRAPHIC_TIERS), 12, "usd")
    assert result == Quote(
        currency="usd",
        quantity=12,
        billed_quantity=12,
        lines=(
            QuoteLine(0, 5, Decimal(700), Decimal(0), 3500),
            QuoteLine(1, 5, Decimal(650), Decimal(0), 3250),
            QuoteLine(2, 2, Decimal(600), Decimal(0), 1200),
        ),
        total=7950,
    )


def test_per_unit_price() -> None:
    terms = PriceTerms(currency="USD", unit_amount=1999)
    result = quote(terms, 3, "usd")
    assert result.total == 5997
    assert len(result.lines) == 1 and result.lines[0].tier_index is None
    assert result.lines[0].unit_amount == Decimal(1999)


# --- flat amounts ----------------------------------------------------------------------------


BASE_FEE_GRADUATED = [
    {"upTo": 5, "flatAmount": 2000},  # 20 USD covers the first 5 units
    {"upTo": 10, "unitAmount": 500, "flatAmount": 300},
    {"upTo": "inf", "unitAmount": 400},
]


@pytest.mark.parametrize(
    ("quantity", "total"),
    [(0, 2000), (1, 2000), (5, 2000), (6, 2000 + 500 + 300), (10, 2000 + 2500 + 300), (12, 2000 + 2800 + 800)],
)
def test_graduated_flat_amounts_are_added_once_per_tier_reached(quantity: int, total: int) -> None:
    assert quote(tiered("graduated", BASE_FEE_GRADUATED), quantity, "usd").total == total


@pytest.mark.parametrize(("quantity", "total"), [(0, 1000), (10, 2000), (11, 500 + 550), (100, 500 + 5000)])
def test_volume_adds_the_flat_amount_of_the_tier_containing_the_quantity(quantity: int, total: int) -> None:
    tiers = [{"upTo": 10, "unitAmount": 100, "flatAmount": 1000}, {"upTo": "inf", "unitAmount": 50, "flatAmount": 500}]
    assert quote(tiered("volume", tiers), quantity, "usd").total == total


# --- quantity 0 (decision: quantity 0 lies in the first tier) ----------------------------------


def test_quantity_zero_charges_the_first_tier_flat_amount_only() -> None:
    graduated = quote(tiered("graduated", BASE_FEE_GRADUATED), 0, "usd")
    assert graduated.total == 2000
    assert [(line.tier_index, line.quantity) for line in graduated.lines] == [(0, 0)]
    volume = quote(
        tiered("volume", [{"upTo": 5, "unitAmount": 100, "flatAmount": 700}, {"upTo": "inf", "unitAmount": 90}]),
        0,
        "usd",
    )
    assert volume.total == 700


def test_quantity_zero_without_flat_amounts_is_free() -> None:
    assert quote(tiered("graduated", TYPOGRAPHIC_TIERS), 0, "usd").total == 0
    assert quote(tiered("volume", TYPOGRAPHIC_TIERS), 0, "usd").total == 0
    assert quote(PriceTerms(currency="usd", unit_amount=500), 0, "usd").total == 0
    package = PriceTerms(currency="usd", unit_amount=500, transform_quantity=TransformQuantity(10, TransformRound.UP))
    assert quote(package, 0, "usd").total == 0


def test_free_at_zero_usage_by_putting_the_flat_fee_on_a_later_tier() -> None:
    terms = tiered("graduated", [{"upTo": 1, "unitAmount": 0}, {"upTo": "inf", "unitAmount": 100, "flatAmount": 900}])
    assert quote(terms, 0, "usd").total == 0
    assert quote(terms, 1, "usd").total == 0
    assert quote(terms, 2, "usd").total == 1000


# --- package pricing (transform_quantity) ------------------------------------------------------


@pytest.mark.parametrize(
    ("rounding", "quantity", "packages"),
    [
        ("up", 1, 1),
        ("up", 5, 1),
        ("up", 6, 2),
        ("up", 10, 2),
        ("up", 11, 3),
        ("down", 4, 0),
        ("down", 5, 1),
        ("down", 9, 1),
        ("down", 10, 2),
    ],
)
def test_package_pricing_rounds_as_configured(rounding: str, quantity: int, packages: int) -> None:
    terms = price_terms_from_dict(
        {"currency": "usd", "unitAmount": 2500, "transformQuantity": {"divideBy": 5, "round": rounding}}
    )
    result = quote(terms, quantity, "usd")
    assert result.billed_quantity == packages
    assert result.quantity == quantity
    assert result.total == packages * 2500


# --- rounding once per line --------------------------------------------------------------------


def test_sub_minor_unit_prices_round_once_per_line() -> None:
    half_cent = PriceTerms(currency="usd", unit_amount_decimal=Decimal("0.5"))
    assert [quote(half_cent, q, "usd").total for q in (1, 2, 3)] == [1, 1, 2]
    # Two graduated slices of one unit at half a cent each: each line rounds 0.5 up to 1.
    sliced = tiered("graduated", [{"upTo": 1, "unitAmountDecimal": "0.5"}, {"upTo": "inf", "unitAmountDecimal": "0.5"}])
    result = quote(sliced, 2, "usd")
    assert [line.amount for line in result.lines] == [1, 1]
    assert result.total == 2


def test_flat_and_unit_amounts_of_a_line_are_rounded_together() -> None:
    terms = tiered("volume", [{"upTo": "inf", "unitAmountDecimal": "0.25", "flatAmountDecimal": "0.25"}])
    assert quote(terms, 1, "usd").total == 1  # 0.5 rounded once, not 0 + 0


def test_a_million_api_calls_at_a_thousandth_of_a_cent() -> None:
    terms = PriceTerms(currency="usd", unit_amount_decimal=Decimal("0.001"))
    assert quote(terms, 1_000_000, "usd").total == 1000
    assert quote(terms, 1_500, "usd").total == 2  # 1.5 cents -> 2
    assert quote(terms, 1_499, "usd").total == 1


# --- currencies --------------------------------------------------------------------------------

CATALOG = {
    "currency": "usd",
    "unitAmount": 1999,
    "currencyOptions": {"eur": {"unitAmount": 1799}, "jpy": {"unitAmount": 2900}, "kwd": {"unitAmount": 6150}},
}


@pytest.mark.parametrize(
    ("currency", "total", "text"),
    [("usd", 5997, "59.97"), ("EUR", 5397, "53.97"), ("jpy", 8700, "8700"), ("kwd", 18450, "18.450")],
)
def test_same_catalog_priced_in_usd_eur_jpy_and_kwd(currency: str, total: int, text: str) -> None:
    result = quote(price_terms_from_dict(CATALOG), 3, currency)
    assert result.currency == currency.lower()
    assert result.total == total
    assert format_amount(result.total, result.currency) == text


def test_tiered_currency_options_use_their_own_tiers() -> None:
    terms = tiered(
        "graduated",
        TYPOGRAPHIC_TIERS,
        currencyOptions={"jpy": {"tiers": [{"upTo": 5, "unitAmount": 1000}, {"upTo": "inf", "unitAmount": 900}]}},
    )
    assert quote(terms, 6, "jpy").total == 5900
    assert quote(terms, 6, "usd").total == 4150


@pytest.mark.parametrize("currency", ["gbp", "GBP", "xyz", "", "chf"])
def test_unsupported_currency_is_an_error_never_a_conversion(currency: str) -> None:
    with pytest.raises(UnsupportedCurrency) as error:
        quote(price_terms_from_dict(CATALOG), 1, currency)
    assert error.value.param == "currency"
    assert "currency" in str(error.value)
    assert error.value.supported == ("usd", "eur", "jpy", "kwd")


# --- bad input -------------------------------------------------------------------------------


def test_negative_quantity_is_refused() -> None:
    with pytest.raises(InvalidQuantity) as error:
        quote(PriceTerms(currency="usd", unit_amount=1), -1, "usd")
    assert error.value.param == "quantity"


@pytest.mark.parametrize("quantity", [1.0, 2.5, float("nan"), True, Decimal(1), "1"])
def test_quantity_must_be_an_int(quantity: object) -> None:
    with pytest.raises(TypeError):
        quote(PriceTerms(currency="usd", unit_amount=1), quantity, "usd")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: PriceTerms(currency="usd", unit_amount=19.99),
        lambda: PriceTerms(currency="usd", unit_amount_decimal=0.5),
        lambda: Tier(up_to=None, unit_amount=1.0),
        lambda: Tier(up_to=None, flat_amount_decimal=1.5),
        lambda: Tier(up_to=5.0, unit_amount=1),
        lambda: CurrencyOption(unit_amount=1.0),
        lambda: TransformQuantity(divide_by=2.0, round=TransformRound.UP),
        lambda: price_terms_from_dict({"currency": "usd", "unitAmount": 10.0}),
        lambda: price_terms_from_dict({"currency": "usd", "unitAmountDecimal": 0.1}),
        lambda: price_terms_from_dict(
            {
                "currency": "usd",
                "billingScheme": "tiered",
                "tiersMode": "volume",
                "tiers": [{"upTo": "inf", "flatAmountDecimal": 1.5}],
            }
        ),
    ],
)
def test_floats_are_rejected_with_type_error(make: Any) -> None:
    with pytest.raises(TypeError, match="float"):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: PriceTerms(currency="usd"),  # per_unit without an amount
        lambda: PriceTerms(currency="usd", unit_amount=1, unit_amount_decimal=Decimal(1)),
        lambda: PriceTerms(currency="usd", unit_amount=-1),
        lambda: PriceTerms(currency="usd", unit_amount=MAX_UNIT_AMOUNT + 1),
        lambda: PriceTerms(currency="usd", unit_amount_decimal=Decimal("0.0000000000001")),
        lambda: PriceTerms(currency="usd", billing_scheme=BillingScheme.TIERED, tiers_mode=TiersMode.VOLUME),
        lambda: PriceTerms(currency="usd", billing_scheme=BillingScheme.TIERED, tiers=(Tier(None, 1),)),
        lambda: PriceTerms(currency="usd", unit_amount=1, tiers_mode=TiersMode.VOLUME),
        lambda: PriceTerms(currency="usd", unit_amount=1, tiers=(Tier(None, 1),)),
        lambda: tiered("volume", [{"upTo": 5, "unitAmount": 1}]),
        lambda: tiered(
            "volume", [{"upTo": 5, "unitAmount": 1}, {"upTo": 5, "unitAmount": 1}, {"upTo": "inf", "unitAmount": 1}]
        ),
        lambda: tiered("volume", [{"upTo": "inf", "unitAmount": 1}, {"upTo": "inf", "unitAmount": 1}]),
        lambda: tiered("volume", [{"upTo": 0, "unitAmount": 1}, {"upTo": "inf", "unitAmount": 1}]),
        lambda: tiered("volume", [{"upTo": "inf"}]),
        lambda: tiered("volume", TYPOGRAPHIC_TIERS, transformQuantity={"divideBy": 2, "round": "up"}),
        lambda: PriceTerms(currency="usd", unit_amount=1, transform_quantity=TransformQuantity(0, TransformRound.UP)),
        lambda: PriceTerms(currency="usd", unit_amount=1, currency_options={"USD": CurrencyOption(unit_amount=1)}),
        lambda: PriceTerms(currency="usd", unit_amount=1, currency_options={"eur": CurrencyOption()}),
        lambda: PriceTerms(
            currency="usd", unit_amount=1, currency_options={"eur": CurrencyOption(1), "EUR": CurrencyOption(2)}
        ),
        lambda: price_terms_from_dict({"unitAmount": 1}),
        lambda: tiered("volume", [{"unitAmount": 1}]),
    ],
)
def test_terms_that_break_the_model_are_refused(make: Any) -> None:
    with pytest.raises(InvalidPriceTerms):
        make()


def test_stored_null_up_to_means_inf_as_in_stripe_responses() -> None:
    terms = tiered("volume", [{"upTo": 5, "unitAmount": 2}, {"upTo": None, "unitAmount": 1}])
    assert terms.tiers[-1].up_to is None
    assert quote(terms, 6, "usd").total == 6


def test_terms_are_frozen_and_normalized() -> None:
    terms = PriceTerms(
        currency="USD",
        unit_amount=100,
        currency_options={"EUR": CurrencyOption(unit_amount=90)},
    )
    assert terms.currency == "usd"
    assert dict(terms.currency_options) == {"eur": CurrencyOption(unit_amount=90)}
    assert terms.currencies == ("usd", "eur")
    with pytest.raises(FrozenInstanceError):
        terms.unit_amount = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        terms.currency_options["gbp"] = CurrencyOption(unit_amount=1)  # type: ignore[index]


def test_to_dict_uses_the_stored_camel_case_shape() -> None:
    terms = tiered(
        "graduated",
        [{"upTo": 5, "unitAmountDecimal": "0.125", "flatAmount": 100}, {"upTo": "inf", "unitAmount": 1}],
        currency="EUR",
    )
    assert terms.to_dict() == {
        "currency": "eur",
        "billingScheme": "tiered",
        "tiersMode": "graduated",
        "tiers": [{"upTo": 5, "unitAmountDecimal": "0.125", "flatAmount": 100}, {"upTo": "inf", "unitAmount": 1}],
    }
    assert PriceTerms.from_dict(terms.to_dict()) == terms


# --- properties ----------------------------------------------------------------------------------

unit_decimals = st.decimals(min_value=0, max_value=100_000, places=4, allow_nan=False)
currencies = st.sampled_from(["usd", "eur", "jpy", "kwd", "clf"])


@st.composite
def tier_lists(draw: st.DrawFn, *, unit_only: bool = False, flat_only: bool = False) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=500), max_size=5)))
    tiers = []
    for up_to in [*bounds, None]:
        unit = None if flat_only else draw(st.one_of(st.none(), unit_decimals) if not unit_only else unit_decimals)
        flat = None if unit_only else draw(st.one_of(st.none(), st.integers(min_value=0, max_value=MAX_UNIT_AMOUNT)))
        if unit is None and flat is None:
            flat = draw(st.integers(min_value=0, max_value=10_000))
        tiers.append(Tier(up_to, unit_amount_decimal=unit, flat_amount=flat))
    return tuple(tiers)


def tiered_terms(mode: TiersMode, tiers: tuple[Tier, ...], currency: str = "usd") -> PriceTerms:
    return PriceTerms(currency=currency, billing_scheme=BillingScheme.TIERED, tiers_mode=mode, tiers=tiers)


def graduated_oracle(tiers: tuple[Tier, ...], quantity: int) -> int:
    total, lower = 0, 0
    for index, tier in enumerate(tiers):
        upper = quantity if tier.up_to is None else tier.up_to
        reached = index == 0 or quantity > lower
        if not reached:
            break
        in_tier = max(0, min(quantity, upper) - lower)
        total += half_up(in_tier * Fraction(tier.unit_price) + Fraction(tier.flat_price))
        lower = upper
    return total


quantities = st.integers(min_value=0, max_value=1000)


@settings(max_examples=200)
@given(tier_lists(), quantities)
def test_graduated_total_is_the_sum_of_its_tier_slices(tiers: tuple[Tier, ...], quantity: int) -> None:
    result = quote(tiered_terms(TiersMode.GRADUATED, tiers), quantity, "usd")
    assert result.total == graduated_oracle(tiers, quantity)
    assert result.total == sum(line.amount for line in result.lines)
    assert sum(line.quantity for line in result.lines) == quantity
    assert [line.tier_index for line in result.lines] == list(range(len(result.lines)))
    for line in result.lines:
        tier = tiers[line.tier_index]  # type: ignore[index]
        assert (line.unit_amount, line.flat_amount) == (tier.unit_price, tier.flat_price)
        assert line.amount == half_up(line.quantity * Fraction(line.unit_amount) + Fraction(line.flat_amount))


@settings(max_examples=200)
@given(tier_lists(), quantities)
def test_volume_charges_the_whole_quantity_at_the_tier_containing_it(tiers: tuple[Tier, ...], quantity: int) -> None:
    result = quote(tiered_terms(TiersMode.VOLUME, tiers), quantity, "usd")
    containing = next(i for i, tier in enumerate(tiers) if tier.up_to is None or quantity <= tier.up_to)
    assert len(result.lines) == 1
    (line,) = result.lines
    assert (line.tier_index, line.quantity) == (containing, quantity)
    tier = tiers[containing]
    assert result.total == half_up(quantity * Fraction(tier.unit_price) + Fraction(tier.flat_price))


@settings(max_examples=150)
@given(tier_lists(flat_only=True), quantities)
def test_flat_amounts_are_added_once_per_tier_reached(tiers: tuple[Tier, ...], quantity: int) -> None:
    reached = 1 + sum(1 for tier in tiers if tier.up_to is not None and tier.up_to < quantity)
    graduated = quote(tiered_terms(TiersMode.GRADUATED, tiers), quantity, "usd")
    assert len(graduated.lines) == reached
    assert graduated.total == sum(int(tier.flat_price) for tier in tiers[:reached])
    volume = quote(tiered_terms(TiersMode.VOLUME, tiers), quantity, "usd")
    assert volume.total == int(tiers[reached - 1].flat_price)


@settings(max_examples=150)
@given(tier_lists(unit_only=True), quantities, quantities)
def test_graduated_totals_never_decrease_with_quantity(tiers: tuple[Tier, ...], a: int, b: int) -> None:
    terms = tiered_terms(TiersMode.GRADUATED, tiers)
    low, high = sorted((a, b))
    assert quote(terms, low, "usd").total <= quote(terms, high, "usd").total


@settings(max_examples=200)
@given(
    st.integers(min_value=1, max_value=1000),
    st.sampled_from(list(TransformRound)),
    st.integers(min_value=0, max_value=MAX_UNIT_AMOUNT),
    st.integers(min_value=0, max_value=10**6),
)
def test_package_pricing_property(divide_by: int, rounding: TransformRound, unit: int, quantity: int) -> None:
    terms = PriceTerms(currency="usd", unit_amount=unit, transform_quantity=TransformQuantity(divide_by, rounding))
    result = quote(terms, quantity, "usd")
    exact = Fraction(quantity, divide_by)
    packages = int(exact) if rounding is TransformRound.DOWN or exact.denominator == 1 else int(exact) + 1
    assert result.billed_quantity == packages
    assert result.total == packages * unit
    assert packages * divide_by >= quantity if rounding is TransformRound.UP else packages * divide_by <= quantity


@st.composite
def any_terms(draw: st.DrawFn) -> PriceTerms:
    currency = draw(currencies)
    other = draw(st.lists(st.sampled_from(["usd", "eur", "jpy", "kwd", "clf", "bhd"]), unique=True, max_size=3))
    other = [code for code in other if code != currency]
    kind = draw(st.sampled_from(["per_unit", "package", "graduated", "volume"]))
    if kind in ("per_unit", "package"):

        def option() -> CurrencyOption:
            if draw(st.booleans()):
                return CurrencyOption(unit_amount=draw(st.integers(min_value=0, max_value=MAX_UNIT_AMOUNT)))
            return CurrencyOption(unit_amount_decimal=draw(unit_decimals))

        own = option()
        transform = (
            TransformQuantity(
                draw(st.integers(min_value=1, max_value=100)), draw(st.sampled_from(list(TransformRound)))
            )
            if kind == "package"
            else None
        )
        return PriceTerms(
            currency=currency,
            unit_amount=own.unit_amount,
            unit_amount_decimal=own.unit_amount_decimal,
            transform_quantity=transform,
            currency_options={code: option() for code in other},
        )
    return PriceTerms(
        currency=currency,
        billing_scheme=BillingScheme.TIERED,
        tiers_mode=TiersMode(kind),
        tiers=draw(tier_lists()),
        currency_options={code: CurrencyOption(tiers=draw(tier_lists())) for code in other},
    )


@settings(max_examples=200)
@given(any_terms(), quantities, st.data())
def test_totals_are_ints_in_every_supported_currency(terms: PriceTerms, quantity: int, data: st.DataObject) -> None:
    currency = data.draw(st.sampled_from(terms.currencies))
    result = quote(terms, quantity, currency.upper())
    assert type(result.total) is int
    assert all(type(line.amount) is int for line in result.lines)
    assert result.total >= 0
    text = format_amount(result.total, result.currency)
    exponent = get_currency(currency).exponent
    assert (len(text.split(".")[1]) if "." in text else 0) == exponent


@settings(max_examples=150)
@given(any_terms())
def test_terms_round_trip_through_the_stored_shape(terms: PriceTerms) -> None:
    assert PriceTerms.from_dict(terms.to_dict()) == terms


@settings(max_examples=100)
@given(any_terms(), st.sampled_from(["gbp", "chf", "xyz", "sek"]))
def test_a_currency_outside_the_price_always_raises(terms: PriceTerms, currency: str) -> None:
    with pytest.raises(UnsupportedCurrency):
        quote(terms, 1, currency)
