"""Product attributes against an organization's definitions: pure rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from billing.catalog.attributes import (
    AttributeDefinition,
    attributes_after_update,
    attributes_for_new_product,
    check_definition,
    check_value,
    filter_json,
)
from billing.errors import InvalidRequest
from contracts.enums import AttributeType as T

pytestmark = pytest.mark.unit

COLOR = AttributeDefinition("color", T.enum, required=True, enum_values=("red", "blue"))
SIZE = AttributeDefinition("size", T.number)
ORGANIC = AttributeDefinition("organic", T.boolean, default=False)
RELEASED = AttributeDefinition("released", T.date)
MATERIAL = AttributeDefinition("material", T.string)
LEGACY = AttributeDefinition("legacy_sku", T.string, required=True, deprecated=True)
DEFINITIONS = [COLOR, SIZE, ORGANIC, RELEASED, MATERIAL, LEGACY]


def error_of(call: Any, *args: Any, **kwargs: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        call(*args, **kwargs)
    return caught.value


def test_a_valid_product_gets_defaults_and_keeps_its_values() -> None:
    attributes = attributes_for_new_product(
        {"color": "red", "size": 42, "released": "2025-02-28", "material": "cotton"}, DEFINITIONS
    )
    assert attributes == {"color": "red", "size": 42, "released": "2025-02-28", "material": "cotton", "organic": False}


def test_a_null_value_on_create_counts_as_left_out() -> None:
    assert attributes_for_new_product({"color": "blue", "size": None}, DEFINITIONS) == {
        "color": "blue",
        "organic": False,
    }


@pytest.mark.parametrize(
    ("given", "param", "code"),
    [
        ({"color": "green"}, "attributes[color]", "parameter_invalid"),
        ({"color": 1}, "attributes[color]", "parameter_invalid"),
        ({"color": "red", "size": "42"}, "attributes[size]", "parameter_invalid"),
        ({"color": "red", "size": True}, "attributes[size]", "parameter_invalid"),
        ({"color": "red", "organic": "yes"}, "attributes[organic]", "parameter_invalid"),
        ({"color": "red", "organic": 1}, "attributes[organic]", "parameter_invalid"),
        ({"color": "red", "released": "2025-02-30"}, "attributes[released]", "parameter_invalid"),
        ({"color": "red", "released": "28/02/2025"}, "attributes[released]", "parameter_invalid"),
        ({"color": "red", "material": ["cotton"]}, "attributes[material]", "parameter_invalid"),
        ({"color": "red", "material": "x" * 501}, "attributes[material]", "parameter_invalid_string_too_long"),
        ({"color": "red", "weight": 3}, "attributes[weight]", "parameter_unknown"),
        ({"color": "red", "legacy_sku": "A-1"}, "attributes[legacy_sku]", "attribute_deprecated"),
        ({}, "attributes[color]", "parameter_missing"),
        ({"size": 3}, "attributes[color]", "parameter_missing"),
    ],
)
def test_bad_attributes_name_the_exact_param(given: dict[str, Any], param: str, code: str) -> None:
    error = error_of(attributes_for_new_product, given, DEFINITIONS)
    assert (error.param, error.code, error.status) == (param, code, 400)
    assert param in error.message


def test_a_deprecated_required_attribute_is_no_longer_required() -> None:
    # LEGACY is required but deprecated: a product without it is fine
    assert "legacy_sku" not in attributes_for_new_product({"color": "red"}, DEFINITIONS)


def test_infinite_numbers_are_refused() -> None:
    assert error_of(check_value, SIZE, float("inf"), "attributes[size]").param == "attributes[size]"
    assert check_value(SIZE, 1.5, "p") == 1.5


def test_update_merges_removes_and_keeps_values_of_removed_or_deprecated_definitions() -> None:
    stored = {"color": "red", "legacy_sku": "A-1", "gone": "kept", "size": 1}
    after = attributes_after_update(stored, {"size": None, "material": "wool"}, DEFINITIONS)
    assert after == {"color": "red", "legacy_sku": "A-1", "gone": "kept", "material": "wool", "organic": False}
    # a deprecated attribute can be removed, never given a new value
    assert "legacy_sku" not in attributes_after_update(stored, {"legacy_sku": None}, DEFINITIONS)
    assert error_of(attributes_after_update, stored, {"legacy_sku": "B-2"}, DEFINITIONS).code == "attribute_deprecated"


def test_update_cannot_drop_a_required_attribute() -> None:
    error = error_of(attributes_after_update, {"color": "red"}, {"color": None}, DEFINITIONS)
    assert (error.param, error.code) == ("attributes[color]", "parameter_missing")
    error = error_of(attributes_after_update, {"color": "red"}, None, DEFINITIONS)  # attributes: null clears all
    assert error.param == "attributes[color]"


def test_a_required_attribute_added_later_is_asked_for_on_the_next_attributes_write() -> None:
    stored = {"color": "red"}  # written before `fit` existed
    fit = AttributeDefinition("fit", T.string, required=True)
    error = error_of(attributes_after_update, stored, {"size": 2}, [*DEFINITIONS, fit])
    assert error.param == "attributes[fit]"
    assert attributes_after_update(stored, {"fit": "slim"}, [*DEFINITIONS, fit])["fit"] == "slim"


@pytest.mark.parametrize(
    ("type_", "enum_values", "default", "param", "code"),
    [
        (T.enum, None, None, "enumValues", "parameter_missing"),
        (T.enum, [], None, "enumValues", "parameter_missing"),
        (T.enum, ["a", "a"], None, "enumValues", "parameter_invalid"),
        (T.string, ["a"], None, "enumValues", "parameter_invalid"),
        (T.enum, ["a", "b"], "c", "defaultValue", "parameter_invalid"),
        (T.number, None, "1", "defaultValue", "parameter_invalid"),
        (T.boolean, None, 0, "defaultValue", "parameter_invalid"),
        (T.date, None, "2025-13-01", "defaultValue", "parameter_invalid"),
    ],
)
def test_bad_definitions(type_: T, enum_values: Any, default: Any, param: str, code: str) -> None:
    error = error_of(check_definition, type_, enum_values, default)
    assert (error.param, error.code) == (param, code)


def test_good_definitions() -> None:
    check_definition(T.enum, ["a", "b"], "b")
    check_definition(T.number, None, 2.5)
    check_definition(T.date, None, "2024-02-29")
    check_definition(T.boolean, None, None)


def test_filters_are_typed_by_the_definition_and_never_go_through_a_float() -> None:
    assert json.loads(filter_json("color", "red", COLOR)) == {"color": "red"}
    assert json.loads(filter_json("organic", "true", ORGANIC)) == {"organic": True}
    assert filter_json("size", "42", SIZE) == '{"size": 42}'
    assert filter_json("size", "0.1000000000000000055", SIZE) == '{"size": 0.1000000000000000055}'
    assert json.loads(filter_json("gone", "7", None)) == {"gone": "7"}  # removed: matched as stored strings
    for key, raw, definition in (
        ("size", "ten", SIZE),
        ("size", "1e3", SIZE),
        ("organic", "1", ORGANIC),
        ("released", "x", RELEASED),
    ):
        assert error_of(filter_json, key, raw, definition).param == f"attributes[{key}]"
