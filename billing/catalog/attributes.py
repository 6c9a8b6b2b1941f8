"""Product attributes against an organization's definitions ("dynamic attributes").

Pure rules, no I/O: the service loads the definitions and calls these; the API calls
them too, before publishing, so a bad value is answered at once.

Lifecycle of a definition, each step without downtime:
- added: from then on, new writes of a product's attributes must satisfy it (a required
  attribute without a default is asked for on the next create, or on the next update
  that sends `attributes`); existing products are not rewritten.
- deprecated: no longer required and no longer accepted in new values; products that
  have the attribute keep it, read it and can remove it (null). Filters still work.
- removed: the definition is gone; products keep the stored value as it was, and an
  update that leaves the key alone keeps it.

Errors name the exact param, `attributes[color]`, with Stripe's codes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.errors import InvalidRequest
from contracts.enums import AttributeType

MAX_STRING_LENGTH = 500
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTEGER = re.compile(r"^-?\d{1,30}$")
_NUMBER = re.compile(r"^-?\d{1,30}(\.\d{1,30})?$")


@dataclass(frozen=True, slots=True)
class AttributeDefinition:
    key: str
    type: AttributeType
    required: bool = False
    enum_values: tuple[str, ...] | None = None
    default: Any = None
    deprecated: bool = False

    @classmethod
    def of(cls, row: Any) -> AttributeDefinition:
        """From a ProductAttributeDefinition row (or anything with its attributes)."""
        return cls(
            key=row.key,
            type=AttributeType(row.type),
            required=bool(row.required),
            enum_values=tuple(row.enum_values) if row.enum_values is not None else None,
            default=row.default_value,
            deprecated=bool(row.deprecated),
        )

    @property
    def enforced(self) -> bool:
        """Required for new writes: required and not deprecated."""
        return self.required and not self.deprecated


def _param(key: str) -> str:
    return f"attributes[{key}]"


def _invalid(param: str, message: str, code: str = "parameter_invalid") -> InvalidRequest:
    return InvalidRequest(message, code=code, param=param)


def check_value(definition: AttributeDefinition, value: Any, param: str) -> Any:
    """`value` if it is a valid value of `definition`'s type; else InvalidRequest(param)."""
    kind = definition.type
    if kind is AttributeType.string:
        if not isinstance(value, str):
            raise _invalid(param, f"Invalid {param}: expected a string, got {_describe(value)}.")
        if len(value) > MAX_STRING_LENGTH:
            raise _invalid(
                param, f"Invalid {param}: at most {MAX_STRING_LENGTH} characters.", "parameter_invalid_string_too_long"
            )
        return value
    if kind is AttributeType.number:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(param, f"Invalid {param}: expected a number, got {_describe(value)}.")
        if isinstance(value, float) and not math.isfinite(value):
            raise _invalid(param, f"Invalid {param}: expected a finite number.")
        return value
    if kind is AttributeType.boolean:
        if not isinstance(value, bool):
            raise _invalid(param, f"Invalid {param}: expected true or false, got {_describe(value)}.")
        return value
    if kind is AttributeType.enum:
        allowed = definition.enum_values or ()
        if not isinstance(value, str) or value not in allowed:
            raise _invalid(param, f"Invalid {param}: must be one of {', '.join(allowed)}; got {_describe(value)}.")
        return value
    if kind is AttributeType.date:
        if not isinstance(value, str) or not _DATE.match(value):
            raise _invalid(param, f"Invalid {param}: expected a date as YYYY-MM-DD, got {_describe(value)}.")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise _invalid(param, f"Invalid {param}: {value!r} is not a calendar date.") from None
        return value
    raise AssertionError(f"unhandled attribute type {kind}")  # pragma: no cover


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- definitions ------------------------------------------------------------------------------


def check_definition(
    type_: AttributeType, enum_values: list[str] | tuple[str, ...] | None, default: Any, *, prefix: str = ""
) -> None:
    """The rules of a definition itself: enumValues exactly for enums (distinct, not
    empty) and a default of the attribute's type. `prefix` is left empty for the API's
    params (`enumValues`, `defaultValue`)."""
    enum_param, default_param = f"{prefix}enumValues", f"{prefix}defaultValue"
    if type_ is AttributeType.enum:
        if not enum_values:
            raise InvalidRequest(
                f"Missing required param: {enum_param} for an attribute of type enum.",
                code="parameter_missing",
                param=enum_param,
            )
        if len(set(enum_values)) != len(enum_values):
            raise _invalid(enum_param, f"Invalid {enum_param}: the values must be distinct.")
    elif enum_values is not None:
        raise _invalid(enum_param, f"Invalid {enum_param}: only an attribute of type enum has enumValues.")
    if default is not None:
        definition = AttributeDefinition("default", type_, enum_values=tuple(enum_values) if enum_values else None)
        check_value(definition, default, default_param)


# --- product attributes -------------------------------------------------------------------------


def _by_key(definitions: Iterable[AttributeDefinition]) -> dict[str, AttributeDefinition]:
    return {definition.key: definition for definition in definitions}


def _accepted(definitions: Mapping[str, AttributeDefinition], key: str, value: Any) -> Any:
    param = _param(key)
    definition = definitions.get(key)
    if definition is None:
        raise InvalidRequest(
            f"Received unknown parameter: {param} (no attribute '{key}' is defined; define it with "
            "POST /v1/product-attributes).",
            code="parameter_unknown",
            param=param,
        )
    if definition.deprecated:
        raise InvalidRequest(
            f"Invalid {param}: the attribute '{key}' is deprecated and takes no new values (it can only be removed).",
            code="attribute_deprecated",
            param=param,
        )
    return check_value(definition, value, param)


def _complete(attributes: dict[str, Any], definitions: Mapping[str, AttributeDefinition]) -> dict[str, Any]:
    """Fill in defaults of the live definitions; a required one still missing is an error."""
    for key in sorted(definitions):
        definition = definitions[key]
        if definition.deprecated or key in attributes:
            continue
        if definition.default is not None:
            attributes[key] = definition.default
        elif definition.required:
            param = _param(key)
            raise InvalidRequest(f"Missing required param: {param}.", code="parameter_missing", param=param)
    return attributes


def attributes_for_new_product(given: Mapping[str, Any], definitions: Iterable[AttributeDefinition]) -> dict[str, Any]:
    """A new product's attributes: each value checked, defaults filled in, required ones
    present. A key sent as null counts as left out."""
    by_key = _by_key(definitions)
    attributes = {key: _accepted(by_key, key, value) for key, value in given.items() if value is not None}
    return _complete(attributes, by_key)


def attributes_after_update(
    current: Mapping[str, Any], changes: Mapping[str, Any] | None, definitions: Iterable[AttributeDefinition]
) -> dict[str, Any]:
    """A product's attributes after a PATCH that sent `attributes`: merged key by key (null
    removes a key; `changes` None removes all). Keys the update leaves alone are kept as
    stored, even when their definition is deprecated or removed."""
    by_key = _by_key(definitions)
    attributes = dict(current) if changes is not None else {}
    for key, value in (changes or {}).items():
        if value is None:
            attributes.pop(key, None)
        else:
            attributes[key] = _accepted(by_key, key, value)
    return _complete(attributes, by_key)


# --- filters -----------------------------------------------------------------------------------


def filter_json(key: str, raw: str, definition: AttributeDefinition | None) -> str:
    """The JSON text of `{key: value}` for a `attributes[key]=raw` query filter, typed by
    the attribute's definition (a removed attribute's values are matched as strings).
    Used with JSONB containment (`@>`) so that the GIN index serves it. Numbers are written
    as given, never through a float."""
    param = _param(key)
    if definition is None or definition.type in (AttributeType.string, AttributeType.enum):
        return json.dumps({key: raw})
    if definition.type is AttributeType.date:
        check_value(definition, raw, param)
        return json.dumps({key: raw})
    if definition.type is AttributeType.boolean:
        if raw not in ("true", "false"):
            raise _invalid(param, f"Invalid {param}: expected true or false, got {raw[:40]!r}.")
        return json.dumps({key: raw == "true"})
    if not _NUMBER.match(raw):
        raise _invalid(param, f"Invalid {param}: expected a number, got {raw[:40]!r}.")
    try:
        number = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise _invalid(param, f"Invalid {param}: expected a number.") from None
    text = str(int(number)) if _INTEGER.match(raw) else format(number, "f")
    return "{" + json.dumps(key) + ": " + text + "}"
