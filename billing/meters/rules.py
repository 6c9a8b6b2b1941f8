"""What a meter asks of the events it measures (pure rules: no I/O).

A meter with a `valueKey` measures that property of each event instead of its `value`. An
event the meter counts (its event name, and its properties match every `filters` entry)
that lacks the property, or whose property is not a number, would add nothing to the
meter's figure without anyone noticing. So it is refused: by the API with a 400 naming
the property, by the analytics consumer (for publishers writing straight to Kafka) as a
dead letter with the reason. What each aggregation needs:

- `sum`, `max`, `last`: the property must be a number as `value` is: a JSON number or a
  plain decimal string ("12.5": digits, an optional fraction; no sign, exponent or spaces,
  which ClickHouse would read differently or not at all), at least 0, at most 12 decimal
  places, below 1e20;
- `unique_count`: the property must be present (any value: distinct values are counted);
- `count`: nothing (the value is not read).

`property_text` is how a property is stored in ClickHouse (a Map of strings) and compared
with a filter, so the consumer, the API and the queries agree on what a filter matches.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from contracts.usage import _check_decimal, format_decimal

_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")

RefusalCode = Literal["missing_value_key", "non_numeric_value"]


@dataclass(frozen=True, slots=True)
class MeterRule:
    """The part of a meter that decides what its events must carry."""

    meter_id: str
    event_name: str
    aggregation: str
    value_key: str | None = None
    filters: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, meter: Any) -> MeterRule:
        """From a contracts.resources.Meter, or its JSON (the data of `meter.created`: only
        the fields read here are required, so a resource that gained a field still reads)."""
        get = meter.get if isinstance(meter, Mapping) else functools.partial(getattr, meter)
        aggregation = get("aggregation")
        return cls(
            meter_id=str(get("id")),
            event_name=str(get("eventName")),
            aggregation=str(getattr(aggregation, "value", aggregation)),
            value_key=get("valueKey"),
            filters={str(k): str(v) for k, v in (get("filters") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class ValueRefusal:
    code: RefusalCode
    key: str
    message: str


def property_text(value: Any) -> str:
    """A property value as ClickHouse stores it: booleans as true/false, numbers plain."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format_decimal(value)
    return str(value)


def counts(rule: MeterRule, properties: Mapping[str, Any]) -> bool:
    """Whether the meter counts an event with these properties: every filter matches, a
    missing property reading as "" (as a ClickHouse Map answers for a missing key)."""
    return all(
        (property_text(properties[key]) if key in properties else "") == want for key, want in rule.filters.items()
    )


def numeric_value(value: Any) -> Decimal | None:
    """The number a property stands for when a meter sums, maxes or takes its last value;
    None when it is not one (see the module docstring)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _PLAIN_DECIMAL.fullmatch(value):
            return None
        value = Decimal(value)
    elif isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        return None
    try:
        return _check_decimal(value, "value")
    except ValueError:
        return None


def value_refusal(rule: MeterRule, event_name: str, properties: Mapping[str, Any]) -> ValueRefusal | None:
    """Why `rule`'s meter cannot measure this event, or None when it can (or does not count it)."""
    key = rule.value_key
    if key is None or rule.aggregation == "count" or event_name != rule.event_name or not counts(rule, properties):
        return None
    what = f"The meter '{rule.meter_id}' ({rule.aggregation} of the property '{key}')"
    if key not in properties:
        return ValueRefusal(
            "missing_value_key", key, f"{what} needs it in every '{event_name}' event: properties.{key} is missing."
        )
    if rule.aggregation != "unique_count" and numeric_value(properties[key]) is None:
        shown = property_text(properties[key])[:50]
        return ValueRefusal(
            "non_numeric_value",
            key,
            f"{what} needs a number: properties.{key} is {shown!r}; send a JSON number or a decimal string "
            'such as "12.5" (at least 0, below 1e20, at most 12 decimal places).',
        )
    return None
