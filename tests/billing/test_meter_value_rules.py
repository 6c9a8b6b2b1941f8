"""What a meter asks of the events it measures (billing/meters/rules.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.meters.rules import MeterRule, counts, numeric_value, property_text, value_refusal
from contracts.usage import format_decimal

pytestmark = pytest.mark.unit

# what contracts.usage accepts as a number: at least 0, at most 12 places, below 1e20
amounts = st.builds(
    lambda units, places: Decimal(units).scaleb(-places), st.integers(0, 10**20 - 1), st.integers(0, 12)
).filter(lambda d: d < Decimal(10) ** 20)
not_numbers = st.one_of(
    st.text().filter(lambda t: not t or any(c not in "0123456789." for c in t)),
    st.booleans(),
    st.integers(max_value=-1),
    st.builds(lambda d: -d, amounts.filter(lambda d: d > 0)),
    st.just(Decimal("0.0000000000001")),
    st.just(Decimal(10) ** 20),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), None, [1], 1.5]),
)
properties = st.dictionaries(
    st.sampled_from(["tokens", "region", "model"]), st.one_of(st.text(max_size=5), amounts, st.booleans())
)
value_aggregations = st.sampled_from(["sum", "max", "last"])


def rule(aggregation: str = "sum", value_key: str | None = "tokens", **filters: str) -> MeterRule:
    return MeterRule("mtr_1", "llm", aggregation, value_key, filters)


@given(amounts)
def test_a_number_reads_as_itself_as_sent_and_as_stored(amount: Decimal) -> None:
    assert numeric_value(amount) == amount
    assert numeric_value(format_decimal(amount)) == amount  # ClickHouse keeps property text
    assert numeric_value(int(amount)) == int(amount)


@given(not_numbers)
def test_anything_else_is_not_a_number(value: Any) -> None:
    assert numeric_value(value) is None


@given(value_aggregations, properties)
def test_a_value_meter_refuses_exactly_the_events_it_cannot_sum(aggregation: str, props: dict[str, Any]) -> None:
    refusal = value_refusal(rule(aggregation), "llm", props)
    if "tokens" not in props:
        assert refusal is not None and refusal.code == "missing_value_key" and refusal.key == "tokens"
        assert "properties.tokens is missing" in refusal.message and "mtr_1" in refusal.message
    elif numeric_value(props["tokens"]) is None:
        assert refusal is not None and refusal.code == "non_numeric_value"
        assert repr(property_text(props["tokens"])[:50]) in refusal.message
    else:
        assert refusal is None


@given(properties)
def test_unique_count_needs_the_property_only_and_count_needs_nothing(props: dict[str, Any]) -> None:
    refusal = value_refusal(rule("unique_count"), "llm", props)
    assert (refusal is None) == ("tokens" in props)
    assert refusal is None or refusal.code == "missing_value_key"
    assert value_refusal(rule("count"), "llm", props) is None


@given(value_aggregations, properties, st.text(max_size=3))
def test_events_the_meter_does_not_count_are_not_its_business(
    aggregation: str, props: dict[str, Any], region: str
) -> None:
    assert value_refusal(rule(aggregation), "other_name", props) is None
    assert value_refusal(rule(aggregation, None), "llm", props) is None
    filtered = rule(aggregation, region=region)
    if not counts(filtered, props):
        assert value_refusal(filtered, "llm", props) is None
    else:
        assert value_refusal(filtered, "llm", props) == value_refusal(rule(aggregation), "llm", props)


def test_filters_compare_stored_text_and_a_missing_property_reads_empty() -> None:
    assert counts(rule(flag="true", n="2.5"), {"flag": True, "n": Decimal("2.50")})
    assert not counts(rule(flag="true"), {"flag": "True"})
    assert counts(rule(region=""), {}) and not counts(rule(region="eu"), {})


def test_a_meter_resource_or_its_json_gives_the_same_rule() -> None:
    from contracts.enums import MeterAggregation

    class Resource:
        id, eventName, aggregation, valueKey, filters = "mtr_1", "llm", MeterAggregation.sum, "tokens", {"model": "x"}

    data = {
        "id": "mtr_1",
        "eventName": "llm",
        "aggregation": "sum",
        "valueKey": "tokens",
        "filters": {"model": "x"},
        "extra": 1,
    }
    assert MeterRule.of(Resource()) == MeterRule.of(data) == rule(model="x")
