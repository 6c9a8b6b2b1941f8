from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.catalog.pricing import BillingScheme, PriceTerms, Tier, TiersMode, TransformQuantity, TransformRound, quote
from billing.catalog.validation import (
    Interval,
    PriceType,
    PriceValidationError,
    Recurring,
    UsageType,
    ValidatedPrice,
    validate_price,
)
from billing.money.amounts import MAX_UNIT_AMOUNT
from contracts.catalog import PRICE_TERMS_FIELDS

pytestmark = pytest.mark.unit

GRADUATED = {
    "currency": "usd",
    "billingScheme": "tiered",
    "tiersMode": "graduated",
    "tiers": [{"upTo": 5, "unitAmount": 700}, {"upTo": 10, "unitAmount": 650}, {"upTo": "inf", "unitAmount": 600}],
    "recurring": {"interval": "month"},
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def tiers_with(index: int, **changes: Any) -> list[dict[str, Any]]:
    tiers = [dict(tier) for tier in GRADUATED["tiers"]]
    tiers[index].update(changes)
    return tiers


def test_valid_per_unit_one_time_price_is_normalized() -> None:
    result = validate_price({"currency": "USD", "unitAmount": 1999, "product": "prod_1", "nickname": "ignored here"})
    assert result == ValidatedPrice(PriceType.ONE_TIME, PriceTerms(currency="usd", unit_amount=1999), None)
    assert result.to_dict() == {"type": "one_time", "currency": "usd", "billingScheme": "per_unit", "unitAmount": 1999}


def test_valid_graduated_recurring_price_with_currency_options() -> None:
    definition = with_(
        GRADUATED,
        currencyOptions={
            "EUR": {"tiers": [{"upTo": 5, "unitAmountDecimal": "650.5"}, {"upTo": "inf", "flatAmount": 100}]}
        },
        recurring={"interval": "month", "intervalCount": 3, "usageType": "metered", "meter": "mtr_123"},
    )
    result = validate_price(definition)
    assert result.type is PriceType.RECURRING
    assert result.recurring == Recurring(Interval.MONTH, 3, UsageType.METERED, "mtr_123")
    assert result.terms.billing_scheme is BillingScheme.TIERED
    assert result.terms.tiers_mode is TiersMode.GRADUATED
    assert result.terms.tiers[-1] == Tier(None, unit_amount=600)
    assert result.terms.currency_options["eur"].tiers[0] == Tier(5, unit_amount_decimal=Decimal("650.5"))
    assert quote(result.terms, 6, "eur").total == 3253 + 100
    assert validate_price(result.to_dict()) == result


def test_type_is_inferred_from_recurring_and_defaults_apply() -> None:
    result = validate_price({"currency": "jpy", "unitAmount": 500, "recurring": {"interval": "year"}})
    assert result.type is PriceType.RECURRING
    assert result.recurring == Recurring(Interval.YEAR, 1, UsageType.LICENSED, None)


def test_package_price() -> None:
    result = validate_price(
        {"currency": "usd", "unitAmount": 2500, "transformQuantity": {"divideBy": 5, "round": "up"}}
    )
    assert result.terms.transform_quantity == TransformQuantity(5, TransformRound.UP)


def test_null_fields_mean_not_set() -> None:
    result = validate_price(
        {
            "currency": "usd",
            "unitAmount": 10,
            "unitAmountDecimal": None,
            "tiers": None,
            "tiersMode": None,
            "transformQuantity": None,
            "currencyOptions": None,
            "recurring": None,
        }
    )
    assert result.terms == PriceTerms(currency="usd", unit_amount=10)


@pytest.mark.parametrize(
    ("definition", "param", "code"),
    [
        # currency
        ({"unitAmount": 1}, "currency", "parameter_missing"),
        ({"currency": "xyz", "unitAmount": 1}, "currency", "invalid_currency"),
        ({"currency": 840, "unitAmount": 1}, "currency", "invalid_currency"),
        # amounts: negative, non-integer, too large, both forms, missing
        ({"currency": "usd", "unitAmount": -1}, "unitAmount", "parameter_invalid"),
        ({"currency": "usd", "unitAmount": 19.99}, "unitAmount", "parameter_invalid_integer"),
        ({"currency": "usd", "unitAmount": 20.0}, "unitAmount", "parameter_invalid_integer"),
        ({"currency": "usd", "unitAmount": "100"}, "unitAmount", "parameter_invalid_integer"),
        ({"currency": "usd", "unitAmount": True}, "unitAmount", "parameter_invalid_integer"),
        ({"currency": "usd", "unitAmount": MAX_UNIT_AMOUNT + 1}, "unitAmount", "amount_too_large"),
        ({"currency": "usd", "unitAmountDecimal": "100000000"}, "unitAmountDecimal", "amount_too_large"),
        ({"currency": "usd", "unitAmountDecimal": "-0.5"}, "unitAmountDecimal", "parameter_invalid"),
        ({"currency": "usd", "unitAmountDecimal": "0.1234567890123"}, "unitAmountDecimal", "parameter_invalid"),
        ({"currency": "usd", "unitAmountDecimal": "1e3"}, "unitAmountDecimal", "parameter_invalid"),
        ({"currency": "usd", "unitAmountDecimal": 0.5}, "unitAmountDecimal", "parameter_invalid"),
        ({"currency": "usd", "unitAmountDecimal": "abc"}, "unitAmountDecimal", "parameter_invalid"),
        ({"currency": "usd", "unitAmount": 1, "unitAmountDecimal": "1"}, "unitAmountDecimal", "parameter_invalid"),
        ({"currency": "usd"}, "unitAmount", "parameter_missing"),
        ({"currency": "usd", "customUnitAmount": {"enabled": True}}, "customUnitAmount", "parameter_unknown"),
        # billing scheme and tiers
        ({"currency": "usd", "unitAmount": 1, "billingScheme": "banana"}, "billingScheme", "parameter_invalid"),
        ({"currency": "usd", "unitAmount": 1, "tiers": GRADUATED["tiers"]}, "tiers", "parameter_invalid"),
        ({"currency": "usd", "unitAmount": 1, "tiersMode": "volume"}, "tiersMode", "parameter_invalid"),
        (with_(GRADUATED, tiers=None), "tiers", "parameter_missing"),
        (with_(GRADUATED, tiers=[]), "tiers", "parameter_missing"),
        (with_(GRADUATED, tiers={"0": {"upTo": "inf"}}), "tiers", "parameter_invalid"),
        (with_(GRADUATED, tiersMode=None), "tiersMode", "parameter_missing"),
        (with_(GRADUATED, tiersMode="stairstep"), "tiersMode", "parameter_invalid"),
        (with_(GRADUATED, unitAmount=100), "unitAmount", "parameter_invalid"),
        (with_(GRADUATED, unitAmountDecimal="1"), "unitAmountDecimal", "parameter_invalid"),
        (with_(GRADUATED, transformQuantity={"divideBy": 5, "round": "up"}), "transformQuantity", "parameter_invalid"),
        (with_(GRADUATED, tiers=tiers_with(1, upTo=5)), "tiers[1][upTo]", "parameter_invalid"),
        (with_(GRADUATED, tiers=tiers_with(1, upTo=3)), "tiers[1][upTo]", "parameter_invalid"),
        (with_(GRADUATED, tiers=tiers_with(2, upTo=20)), "tiers[2][upTo]", "parameter_invalid"),
        (with_(GRADUATED, tiers=tiers_with(0, upTo="inf")), "tiers[0][upTo]", "parameter_invalid"),
        (with_(GRADUATED, tiers=tiers_with(0, upTo=0)), "tiers[0][upTo]", "parameter_invalid"),
        (with_(GRADUATED, tiers=tiers_with(0, upTo=5.0)), "tiers[0][upTo]", "parameter_invalid_integer"),
        (with_(GRADUATED, tiers=tiers_with(0, upTo=None)), "tiers[0][upTo]", "parameter_missing"),
        (with_(GRADUATED, tiers=tiers_with(2, upTo="Infinity")), "tiers[2][upTo]", "parameter_invalid_integer"),
        (with_(GRADUATED, tiers=tiers_with(1, unitAmount=-5)), "tiers[1][unitAmount]", "parameter_invalid"),
        (with_(GRADUATED, tiers=tiers_with(1, flatAmount=1.5)), "tiers[1][flatAmount]", "parameter_invalid_integer"),
        (
            with_(GRADUATED, tiers=tiers_with(2, flatAmount=MAX_UNIT_AMOUNT + 1)),
            "tiers[2][flatAmount]",
            "amount_too_large",
        ),
        (
            with_(GRADUATED, tiers=tiers_with(1, unitAmountDecimal="6.5")),
            "tiers[1][unitAmountDecimal]",
            "parameter_invalid",
        ),
        (
            with_(GRADUATED, tiers=tiers_with(1, flatAmount=1, flatAmountDecimal="1")),
            "tiers[1][flatAmountDecimal]",
            "parameter_invalid",
        ),
        (
            with_(GRADUATED, tiers=tiers_with(2, flatAmountDecimal="0.0000000000001")),
            "tiers[2][flatAmountDecimal]",
            "parameter_invalid",
        ),
        (with_(GRADUATED, tiers=tiers_with(1, unitAmount=None)), "tiers[1]", "parameter_missing"),
        (with_(GRADUATED, tiers=tiers_with(1, unit_amount=1)), "tiers[1][unit_amount]", "parameter_unknown"),
        (with_(GRADUATED, tiers=[*GRADUATED["tiers"][:2], "inf"]), "tiers[2]", "parameter_invalid"),
        # transformQuantity
        (
            {"currency": "usd", "unitAmount": 1, "transformQuantity": {"divideBy": 0, "round": "up"}},
            "transformQuantity[divideBy]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "transformQuantity": {"divideBy": 2.0, "round": "up"}},
            "transformQuantity[divideBy]",
            "parameter_invalid_integer",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "transformQuantity": {"round": "up"}},
            "transformQuantity[divideBy]",
            "parameter_missing",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "transformQuantity": {"divideBy": 2, "round": "nearest"}},
            "transformQuantity[round]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "transformQuantity": {"divideBy": 2}},
            "transformQuantity[round]",
            "parameter_missing",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "transformQuantity": {"divideBy": 2, "round": "up", "x": 1}},
            "transformQuantity[x]",
            "parameter_unknown",
        ),
        ({"currency": "usd", "unitAmount": 1, "transformQuantity": 5}, "transformQuantity", "parameter_invalid"),
        # currencyOptions
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"eur": {"unitAmount": MAX_UNIT_AMOUNT + 1}}},
            "currencyOptions[eur][unitAmount]",
            "amount_too_large",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"eur": {"unitAmount": -1}}},
            "currencyOptions[eur][unitAmount]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"eur": {}}},
            "currencyOptions[eur][unitAmount]",
            "parameter_missing",
        ),
        (
            {
                "currency": "usd",
                "unitAmount": 1,
                "currencyOptions": {"eur": {"unitAmount": 1, "unitAmountDecimal": "1"}},
            },
            "currencyOptions[eur][unitAmountDecimal]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"usd": {"unitAmount": 1}}},
            "currencyOptions[usd]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"USD": {"unitAmount": 1}}},
            "currencyOptions[USD]",
            "parameter_invalid",
        ),
        (
            {
                "currency": "usd",
                "unitAmount": 1,
                "currencyOptions": {"eur": {"unitAmount": 1}, "EUR": {"unitAmount": 2}},
            },
            "currencyOptions[EUR]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"xyz": {"unitAmount": 1}}},
            "currencyOptions[xyz]",
            "invalid_currency",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"eur": 5}},
            "currencyOptions[eur]",
            "parameter_invalid",
        ),
        ({"currency": "usd", "unitAmount": 1, "currencyOptions": ["eur"]}, "currencyOptions", "parameter_invalid"),
        (
            {
                "currency": "usd",
                "unitAmount": 1,
                "currencyOptions": {"eur": {"unitAmount": 1, "taxBehavior": "inclusive"}},
            },
            "currencyOptions[eur][taxBehavior]",
            "parameter_unknown",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"eur": {"customUnitAmount": {}}}},
            "currencyOptions[eur][customUnitAmount]",
            "parameter_unknown",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"eur": {"tiers": GRADUATED["tiers"]}}},
            "currencyOptions[eur][tiers]",
            "parameter_invalid",
        ),
        (
            with_(GRADUATED, currencyOptions={"eur": {"unitAmount": 1}}),
            "currencyOptions[eur][unitAmount]",
            "parameter_invalid",
        ),
        (with_(GRADUATED, currencyOptions={"eur": {}}), "currencyOptions[eur][tiers]", "parameter_missing"),
        (
            with_(GRADUATED, currencyOptions={"eur": {"tiers": [{"upTo": 5, "unitAmount": 1}]}}),
            "currencyOptions[eur][tiers][0][upTo]",
            "parameter_invalid",
        ),
        (
            with_(
                GRADUATED,
                currencyOptions={"eur": {"tiers": [{"upTo": 5, "unitAmount": 1}, {"upTo": "inf", "unitAmount": -1}]}},
            ),
            "currencyOptions[eur][tiers][1][unitAmount]",
            "parameter_invalid",
        ),
        # type and recurring
        (
            {"currency": "usd", "unitAmount": 1, "type": "one_time", "recurring": {"interval": "month"}},
            "recurring",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "type": "one_time", "interval": "month"},
            "interval",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "type": "one_time", "usageType": "metered"},
            "usageType",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "month"}, "intervalCount": 2},
            "intervalCount",
            "parameter_invalid",
        ),
        ({"currency": "usd", "unitAmount": 1, "type": "recurring"}, "recurring", "parameter_missing"),
        ({"currency": "usd", "unitAmount": 1, "type": "sometimes"}, "type", "parameter_invalid"),
        ({"currency": "usd", "unitAmount": 1, "recurring": {}}, "recurring[interval]", "parameter_missing"),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "fortnight"}},
            "recurring[interval]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "month", "intervalCount": 0}},
            "recurring[intervalCount]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "month", "intervalCount": 37}},
            "recurring[intervalCount]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "year", "intervalCount": 4}},
            "recurring[intervalCount]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "week", "intervalCount": 1.0}},
            "recurring[intervalCount]",
            "parameter_invalid_integer",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "month", "usageType": "seats"}},
            "recurring[usageType]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "month", "meter": "mtr_1"}},
            "recurring[meter]",
            "parameter_invalid",
        ),
        (
            {
                "currency": "usd",
                "unitAmount": 1,
                "recurring": {"interval": "month", "usageType": "metered", "meter": ""},
            },
            "recurring[meter]",
            "parameter_invalid",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "month", "trialPeriodDays": 7}},
            "recurring[trialPeriodDays]",
            "parameter_unknown",
        ),
        ({"currency": "usd", "unitAmount": 1, "recurring": "monthly"}, "recurring", "parameter_invalid"),
    ],
)
def test_invalid_definitions_name_the_exact_param(definition: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(PriceValidationError) as error:
        validate_price(definition)
    assert (error.value.param, error.value.code) == (param, code), error.value.message
    assert param in error.value.message


@pytest.mark.parametrize(("interval", "maximum"), [("day", 1095), ("week", 156), ("month", 36), ("year", 3)])
def test_interval_count_allows_up_to_three_years(interval: str, maximum: int) -> None:
    definition = {"currency": "usd", "unitAmount": 1, "recurring": {"interval": interval, "intervalCount": maximum}}
    assert validate_price(definition).recurring.interval_count == maximum  # type: ignore[union-attr]


def test_boundaries_are_accepted() -> None:
    assert validate_price({"currency": "usd", "unitAmount": MAX_UNIT_AMOUNT}).terms.unit_amount == MAX_UNIT_AMOUNT
    assert validate_price({"currency": "usd", "unitAmount": 0}).terms.unit_amount == 0
    decimal = validate_price(
        {"currency": "usd", "unitAmountDecimal": "99999998.999999999999"}
    ).terms.unit_amount_decimal
    assert decimal == Decimal("99999998.999999999999")
    with pytest.raises(PriceValidationError, match="at most"):
        validate_price({"currency": "usd", "unitAmountDecimal": "99999999.000000000001"})
    assert validate_price(
        {"currency": "usd", "unitAmountDecimal": "0.000000000001"}
    ).terms.unit_amount_decimal == Decimal("1E-12")


def test_negative_zero_is_stored_as_zero() -> None:
    result = validate_price({"currency": "usd", "unitAmountDecimal": "-0.0"})
    assert result.to_dict()["unitAmountDecimal"] == "0.0"


def test_a_mapping_is_required() -> None:
    with pytest.raises(TypeError):
        validate_price([("currency", "usd")])  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------------------

amounts = st.integers(min_value=0, max_value=MAX_UNIT_AMOUNT)
decimal_strings = st.decimals(min_value=0, max_value=MAX_UNIT_AMOUNT, places=12, allow_nan=False).map(
    lambda d: format(d, "f")
)
codes = st.sampled_from(["usd", "EUR", "jpy", "KWD", "clf", "bhd", "gbp"])


def unit_amount_fields() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries({"unitAmount": amounts}),
        st.fixed_dictionaries({"unitAmountDecimal": decimal_strings}),
    )


@st.composite
def tier_dicts(draw: st.DrawFn) -> list[dict[str, Any]]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**6), max_size=4)))
    tiers = []
    for bound in [*bounds, "inf"]:
        tier: dict[str, Any] = {"upTo": bound}
        tier.update(draw(st.one_of(st.just({}), unit_amount_fields())))
        flat = draw(
            st.one_of(
                st.just({}),
                st.fixed_dictionaries({"flatAmount": amounts}),
                st.fixed_dictionaries({"flatAmountDecimal": decimal_strings}),
            )
        )
        tier.update(flat)
        if len(tier) == 1:
            tier["flatAmount"] = draw(amounts)
        tiers.append(tier)
    return tiers


@st.composite
def valid_definitions(draw: st.DrawFn) -> dict[str, Any]:
    currency = draw(codes)
    option_codes = [c for c in draw(st.lists(codes, unique_by=str.lower, max_size=3)) if c.lower() != currency.lower()]
    definition: dict[str, Any] = {"currency": currency}
    if draw(st.booleans()):
        definition["recurring"] = {
            "interval": draw(st.sampled_from(["day", "week", "month", "year"])),
            "intervalCount": draw(st.integers(min_value=1, max_value=3)),
        }
    if draw(st.booleans()):
        definition.update(draw(unit_amount_fields()))
        if draw(st.booleans()):
            definition["transformQuantity"] = {
                "divideBy": draw(st.integers(1, 1000)),
                "round": draw(st.sampled_from(["up", "down"])),
            }
        options = {code: draw(unit_amount_fields()) for code in option_codes}
    else:
        definition.update(
            billingScheme="tiered", tiersMode=draw(st.sampled_from(["graduated", "volume"])), tiers=draw(tier_dicts())
        )
        options = {code: {"tiers": draw(tier_dicts())} for code in option_codes}
    if options:
        definition["currencyOptions"] = options
    return definition


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(valid_definitions(), st.integers(min_value=0, max_value=10**4))
def test_valid_definitions_validate_normalize_idempotently_and_quote(definition: dict[str, Any], quantity: int) -> None:
    result = validate_price(definition)
    stored = result.to_dict()
    assert validate_price(stored) == result
    assert PriceTerms.from_dict(stored) == result.terms
    assert stored["currency"] == definition["currency"].lower()
    for currency in result.terms.currencies:
        assert type(quote(result.terms, quantity, currency).total) is int


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["inf", "usd", "tiered", "graduated", "volume", "per_unit", "up", "month", "1.5", "-1"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["upTo", "unitAmount", "unitAmountDecimal", "flatAmount", "divideBy", "round", "interval", "eur", "x"]
            ),
            children,
            max_size=3,
        ),
    ),
    max_leaves=6,
)
FIELDS = sorted(PRICE_TERMS_FIELDS)  # every field that decides what a price charges


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_definitions(), st.sampled_from(FIELDS), json_values)
def test_any_input_gives_a_validated_price_or_a_price_validation_error(
    definition: dict[str, Any], field: str, junk: Any
) -> None:
    definition[field] = junk
    try:
        result = validate_price(definition)
    except PriceValidationError as error:
        assert isinstance(error.param, str)
        assert error.message
    else:
        assert isinstance(result, ValidatedPrice)


@settings(max_examples=100)
@given(valid_definitions(), st.sampled_from(["unitAmount", "unitAmountDecimal"]), st.floats(allow_nan=False))
def test_floats_never_pass_validation(definition: dict[str, Any], field: str, value: float) -> None:
    definition.pop("unitAmount", None)
    definition.pop("unitAmountDecimal", None)
    definition.update(billingScheme="per_unit", tiersMode=None, tiers=None, currencyOptions=None)
    definition[field] = value
    with pytest.raises(PriceValidationError) as error:
        validate_price(definition)
    assert error.value.param == field
