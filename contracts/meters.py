"""Meter requests: the API's request bodies and the payloads of the meter commands.

A meter says how usage events of one `eventName` become a quantity: `aggregation` over
`value` (or over the numeric property `valueKey`), counting only the events whose
properties equal every `filters` entry. The resource that comes back is
`contracts.resources.Meter`, generated from Prisma.

What can change after creation (as in Stripe, whose meters keep their event name and
aggregation): `displayName` and `active`. eventName, aggregation, valueKey and filters
define what was measured, so a different definition is a new meter.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, StringConstraints

from contracts.commands import Command
from contracts.common import RequestModel
from contracts.enums import MeterAggregation
from contracts.resources import Meter
from contracts.usage import MAX_EVENT_NAME_LENGTH, MAX_PROPERTY_KEY_LENGTH, MAX_PROPERTY_STRING_LENGTH

MAX_FILTERS = 10
EVENT_NAME_PATTERN = r"^[A-Za-z0-9_.:\-/]+$"

EventName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_EVENT_NAME_LENGTH, pattern=EVENT_NAME_PATTERN)
]
ValueKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROPERTY_KEY_LENGTH)]


def _check_filters(filters: dict[str, str]) -> dict[str, str]:
    if len(filters) > MAX_FILTERS:
        raise ValueError(f"filters can have no more than {MAX_FILTERS} entries")
    for key, value in filters.items():
        if not key or len(key) > MAX_PROPERTY_KEY_LENGTH:
            raise ValueError(f"filter keys must be 1-{MAX_PROPERTY_KEY_LENGTH} characters: {key!r}")
        if len(value) > MAX_PROPERTY_STRING_LENGTH:
            raise ValueError(f"filter values can be at most {MAX_PROPERTY_STRING_LENGTH} characters (key {key!r})")
    return filters


Filters = Annotated[dict[str, str], AfterValidator(_check_filters)]


class MeterCreate(Command[Meter]):
    command_type: ClassVar[str] = "meter.create"

    displayName: str = Field(min_length=1, max_length=250)
    eventName: EventName
    aggregation: MeterAggregation = MeterAggregation.sum
    valueKey: ValueKey | None = Field(
        default=None, description="Aggregate this numeric (or, for unique_count, any) property instead of `value`"
    )
    filters: Filters = Field(
        default_factory=dict, description="Only events whose properties equal every entry are counted"
    )


class MeterUpdate(RequestModel):
    """PATCH: a field left out is unchanged."""

    displayName: str | None = Field(default=None, min_length=1, max_length=250)
    active: bool | None = None


class MeterUpdateCommand(Command[Meter]):
    command_type: ClassVar[str] = "meter.update"

    id: str = Field(max_length=64)
    changes: dict[str, Any] = Field(description="Only the fields the client sent (MeterUpdate, exclude_unset)")
