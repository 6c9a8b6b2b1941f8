"""Usage-event and dead-letter contracts (pydantic v2, camelCase JSON like the rest of the API).

A usage event says "customer C of organization O did `eventName` worth `value` at
`timestamp`". It reaches Kafka's `usage.events` topic either through the API
(`POST /v1/usage-events`, which sets `organizationId` from the API key) or from a trusted
publisher writing straight to Kafka (which sets `organizationId` itself, and keys the
message by it). The analytics consumer validates every message against `UsageEvent`; a
message that fails becomes a `UsageDeadLetter` with the reason. Nothing is dropped.

Numbers are exact, never float:
- `value` is a decimal string ("12.5") or a JSON number (12, 12.5). JSON numbers must be
  parsed losslessly: use `parse_json()` / `UsageEvent.model_validate_json()` (both parse
  JSON numbers straight into `Decimal`), never a JSON decoder that makes floats first. A
  Python `float` handed to these models is refused (TypeError-like validation error).
- at most 12 decimal places and |value| < 10**20 (ClickHouse stores Decimal(38, 12) and
  must be able to sum many of them without overflow); value >= 0.
- property values are strings, booleans or numbers; numbers are kept as `Decimal`.

Time: `timestamp` is ISO-8601 with an offset ("2025-01-31T12:00:00Z") or epoch seconds
(int or decimal, e.g. 1738324800 or "1738324800.250"). A naive ISO string is refused
(ambiguous). It must not be more than `MAX_FUTURE_SKEW` after "now", nor more than
`MAX_EVENT_AGE` before it. "Now" comes from the validation context (`{"now": datetime}`):
the consumer passes the Kafka message's timestamp, so a redelivered or replayed message is
judged exactly as it was the first time; without a context it is the wall clock.

Identity: `identifier` (<= 255 chars) is the idempotency key of the event; within an
organization, a second event with the same identifier is a duplicate and is not counted
again (the first one wins). Strings are kept verbatim (never trimmed: "a" and "a " are two
identifiers); names and ids must not be blank.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
)
from pydantic.alias_generators import to_camel

# --- limits (documented; the consumer, the API and the tests use these names) -----------

#: An event may be stamped at most this far in the future of "now" (clock skew allowance).
MAX_FUTURE_SKEW: Final = timedelta(minutes=5)
#: An event may be at most this old: late usage is accepted for a bit more than a monthly
#: billing period, so the previous month's invoice can still be corrected.
MAX_EVENT_AGE: Final = timedelta(days=35)
#: Events per `POST /v1/usage-events` batch.
MAX_BATCH_EVENTS: Final = 1_000
MAX_IDENTIFIER_LENGTH: Final = 255
MAX_EVENT_NAME_LENGTH: Final = 100
MAX_CUSTOMER_ID_LENGTH: Final = 255
MAX_ORGANIZATION_ID_LENGTH: Final = 255
MAX_PROPERTIES: Final = 50
MAX_PROPERTY_KEY_LENGTH: Final = 100
MAX_PROPERTY_STRING_LENGTH: Final = 1_000
#: Decimal places of `value` (ClickHouse column Decimal(38, 12)).
VALUE_SCALE: Final = 12
#: |value| must be below this (leaves 6 digits of headroom in Decimal(38, 12) for sums).
MAX_VALUE_EXCLUSIVE: Final = Decimal(10) ** 20

PropertyValue = bool | Decimal | str


try:  # msgspec (a litestar dependency) parses ~7x faster; same result
    import msgspec as _msgspec

    _DECODER: Any = _msgspec.json.Decoder(float_hook=Decimal)
except ImportError:  # pragma: no cover
    _DECODER = None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def parse_json(raw: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON with every non-integer number as `Decimal` (lossless), integers as `int`.

    Raises ValueError on malformed input (NaN / Infinity literals included). Duplicate keys:
    the last one wins (as with the standard library).
    """
    if isinstance(raw, memoryview):
        raw = raw.tobytes()
    if _DECODER is not None:
        try:
            return _DECODER.decode(raw)
        except _msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from None
    return json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)


def _check_decimal(value: Decimal, what: str) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number")
    if abs(value) >= MAX_VALUE_EXCLUSIVE:
        raise ValueError(f"{what} must be below 1e20 in absolute value")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -VALUE_SCALE:
        with localcontext() as ctx:  # exact: 20 integer digits + the fraction fit
            ctx.prec = 80
            if value != value.quantize(Decimal(1).scaleb(-VALUE_SCALE), rounding=ROUND_DOWN):
                raise ValueError(f"{what} has more than {VALUE_SCALE} decimal places")
    return value


def _to_decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number or a decimal string, not a boolean")
    if isinstance(value, float):
        raise ValueError(f"{what} must not be a float: send a JSON number or a decimal string")
    if isinstance(value, int):
        return _check_decimal(Decimal(value), what)
    if isinstance(value, Decimal):
        return _check_decimal(value, what)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{what} must be a number or a decimal string, got {value[:50]!r}") from None
        if not text or "_" in text or any(ch.isalpha() and ch not in "eE" for ch in text):
            raise ValueError(f"{what} must be a number or a decimal string, got {value[:50]!r}")
        return _check_decimal(parsed, what)
    raise ValueError(f"{what} must be a number or a decimal string")


def _epoch_to_datetime(seconds: Decimal) -> datetime:
    if not seconds.is_finite():
        raise ValueError("timestamp must be a finite number of epoch seconds")
    micros = int((seconds * 1_000_000).to_integral_value(rounding="ROUND_FLOOR"))
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    except OverflowError:
        raise ValueError("timestamp is out of range") from None


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError("timestamp must be ISO-8601 or epoch seconds, not a boolean")
    if isinstance(value, float):
        raise ValueError("timestamp must not be a float: send epoch seconds as a JSON number or ISO-8601")
    result: datetime | None
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, int):
        result = _epoch_to_datetime(Decimal(value))
    elif isinstance(value, Decimal):
        result = _epoch_to_datetime(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = (
                _epoch_to_datetime(Decimal(text)) if text and text.lstrip("+-").replace(".", "", 1).isdigit() else None
            )
        except InvalidOperation:
            result = None
        if result is None:
            try:
                result = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueError(f"timestamp must be ISO-8601 or epoch seconds, got {value[:50]!r}") from None
    else:
        raise ValueError("timestamp must be ISO-8601 or epoch seconds")
    if result is None or result.tzinfo is None or result.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset (e.g. 2025-01-31T12:00:00Z) or be epoch seconds")
    return result.astimezone(UTC)


def _now_from(info: ValidationInfo) -> datetime:
    ctx = info.context if isinstance(info.context, dict) else None
    now = ctx.get("now") if ctx else None
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=UTC)
    return datetime.now(UTC)


def check_timestamp_window(ts: datetime, now: datetime) -> None:
    """Raise ValueError when `ts` is outside [now - MAX_EVENT_AGE, now + MAX_FUTURE_SKEW]."""
    if ts > now + MAX_FUTURE_SKEW:
        raise ValueError(
            f"timestamp {ts.isoformat()} is more than {int(MAX_FUTURE_SKEW.total_seconds())} s in the future"
        )
    if ts < now - MAX_EVENT_AGE:
        raise ValueError(f"timestamp {ts.isoformat()} is older than {MAX_EVENT_AGE.days} days")


class _ExactModel(BaseModel):
    """camelCase JSON, snake_case Python; JSON numbers parsed as Decimal, never float."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    @classmethod
    def model_validate_json(
        cls,
        json_data: str | bytes | bytearray,
        *,
        strict: bool | None = None,
        context: Any | None = None,
        **kwargs: Any,
    ) -> Self:
        """Like pydantic's, but numbers go through `parse_json` (lossless Decimal)."""
        return cls.model_validate(parse_json(json_data), strict=strict, context=context, **kwargs)


def _check_properties(value: Any) -> dict[str, PropertyValue]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("properties must be an object of string, number or boolean values")
    if len(value) > MAX_PROPERTIES:
        raise ValueError(f"properties has more than {MAX_PROPERTIES} keys")
    out: dict[str, PropertyValue] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > MAX_PROPERTY_KEY_LENGTH:
            raise ValueError(f"property keys must be 1..{MAX_PROPERTY_KEY_LENGTH} characters")
        if isinstance(item, bool):
            out[key] = item
        elif isinstance(item, str):
            if len(item) > MAX_PROPERTY_STRING_LENGTH:
                raise ValueError(f"property {key!r} is longer than {MAX_PROPERTY_STRING_LENGTH} characters")
            out[key] = item
        elif isinstance(item, (int, Decimal, float)):
            out[key] = _to_decimal(item, f"property {key!r}")
        else:
            raise ValueError(f"property {key!r} must be a string, a number or a boolean")
    return out


class UsageEventCreate(_ExactModel):
    """One event as a client sends it to `POST /v1/usage-events` (no organizationId: the
    API key decides it; `timestamp` defaults to the time the API received the event)."""

    event_name: str = Field(min_length=1, max_length=MAX_EVENT_NAME_LENGTH)
    customer_id: str = Field(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH)
    value: Decimal
    timestamp: datetime | None = None
    identifier: str = Field(min_length=1, max_length=MAX_IDENTIFIER_LENGTH)
    properties: dict[str, PropertyValue] = Field(default_factory=dict)

    @field_validator("event_name", "customer_id", "identifier")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, v: Any) -> Decimal:
        decimal = _to_decimal(v, "value")
        if decimal < 0:
            raise ValueError("value must not be negative")
        return decimal

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, v: Any) -> datetime | None:
        return None if v is None else _to_datetime(v)

    @field_validator("timestamp", mode="after")
    @classmethod
    def _timestamp_window(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        if v is not None:
            check_timestamp_window(v, _now_from(info))
        return v

    @field_validator("properties", mode="before")
    @classmethod
    def _properties(cls, v: Any) -> dict[str, PropertyValue]:
        return _check_properties(v)

    @field_serializer("value")
    def _ser_value(self, v: Decimal) -> str:
        return format_decimal(v)

    @field_serializer("properties")
    def _ser_properties(self, v: dict[str, PropertyValue]) -> dict[str, Any]:
        return {k: (format_decimal(x) if isinstance(x, Decimal) else x) for k, x in v.items()}

    def to_event(self, organization_id: str, received_at: datetime | None = None) -> UsageEvent:
        """The Kafka message for this event: organizationId from the API key, timestamp
        filled with `received_at` (default: now) when the client sent none."""
        data = self.model_dump()
        data["organization_id"] = organization_id
        data["timestamp"] = self.timestamp or (received_at or datetime.now(UTC))
        return UsageEvent.model_validate(data, context={"now": received_at} if received_at else None)


class UsageEvent(UsageEventCreate):
    """The message on Kafka `usage.events` (JSON, camelCase), keyed by organizationId."""

    organization_id: str = Field(min_length=1, max_length=MAX_ORGANIZATION_ID_LENGTH)
    timestamp: datetime  # required on the wire

    @field_validator("organization_id")
    @classmethod
    def _org_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_serializer("timestamp")
    def _ser_timestamp(self, v: datetime) -> str:
        return v.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def to_kafka(self) -> tuple[bytes, bytes]:
        """(key, value) for publishing to `usage.events`."""
        return self.organization_id.encode(), self.model_dump_json(by_alias=True).encode()


class UsageEventBatch(_ExactModel):
    """Body of `POST /v1/usage-events`: 1..1000 events (or send a single event object)."""

    events: list[UsageEventCreate] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


def parse_usage_request(
    raw: bytes | str, organization_id: str, received_at: datetime | None = None
) -> list[UsageEvent]:
    """Body of `POST /v1/usage-events` -> the Kafka messages to publish (key: organization_id).

    The body is one event object or {"events": [...]} (1..1000). Read the raw request bytes
    (numbers must not go through a float-making JSON decoder first). `received_at` (default
    now) fills missing timestamps and anchors the timestamp window. Raises
    pydantic.ValidationError (answer 400 with its errors) or ValueError (malformed JSON).
    """
    received_at = received_at or datetime.now(UTC)
    data = parse_json(raw)
    context = {"now": received_at}
    if isinstance(data, dict) and "events" in data:
        items = UsageEventBatch.model_validate(data, context=context).events
    else:
        items = [UsageEventCreate.model_validate(data, context=context)]
    return [item.to_event(organization_id, received_at) for item in items]


class MeterSummaryOut(_ExactModel):
    event_name: str
    event_count: int
    value_sum: Decimal
    customers: int

    @field_serializer("value_sum")
    def _ser(self, v: Decimal) -> str:
        return format_decimal(v)


class UsageSummaryOut(_ExactModel):
    """Body of `GET /v1/analytics/summary`:
    `UsageSummaryOut.model_validate(dataclasses.asdict(analytics.queries.summary(...)))`."""

    organization_id: str
    start: datetime
    end: datetime
    event_count: int
    value_sum: Decimal
    customers: int
    meters: list[MeterSummaryOut]
    interactions: dict[str, int]
    interaction_count: int
    dead_letters: int

    @field_serializer("value_sum")
    def _ser(self, v: Decimal) -> str:
        return format_decimal(v)


def format_decimal(value: Decimal) -> str:
    """Plain (no exponent) decimal string without trailing fractional zeros: 12.500 -> "12.5",
    1E+3 -> "1000", 0E-12 -> "0"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


DeadLetterKind = Literal["malformed_json", "invalid", "organization_mismatch", "unsupported", "refused"]


class UsageDeadLetter(_ExactModel):
    """A message the analytics consumer could not store, kept with the reason
    (ClickHouse table `usage_dead_letters`). `payload` is the raw message value as text
    (undecodable bytes replaced); `organizationId` is empty when it could not be read."""

    organization_id: str = ""
    topic: str
    partition: int
    offset: int
    key: str | None = None
    payload: str
    kind: DeadLetterKind
    reason: str
    message_timestamp: datetime | None = None
    received_at: datetime


class UsageRowOut(_ExactModel):
    """One row of `GET /v1/analytics/usage`: the bucket (day/hour start) and/or customer,
    the aggregated value as a decimal string, and how many events went into it."""

    bucket: datetime | None = None
    customer_id: str | None = None
    value: Decimal | None
    event_count: int

    @field_serializer("value")
    def _ser_value(self, v: Decimal | None) -> str | None:
        return None if v is None else format_decimal(v)


Aggregation = Annotated[
    Literal["sum", "count", "max", "last", "unique_count"],
    Field(description="Same values as contracts.enums.MeterAggregation"),
]
GroupBy = Literal["day", "hour", "customer"]


# --- fast path --------------------------------------------------------------------------------

_WIRE_FIELDS = frozenset(
    {"eventName", "customerId", "value", "timestamp", "identifier", "properties", "organizationId"}
)
_PLAIN_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,12})?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_VALUE_INT = 10**20


def _plain(text: Any, limit: int) -> bool:
    # a leading space may mean a blank string: leave that to the model
    return type(text) is str and 0 < len(text) <= limit and not text[0].isspace()


def _fast_decimal(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return (
        value.is_finite()
        and isinstance(exponent, int)
        and exponent >= -VALUE_SCALE
        and abs(value) < MAX_VALUE_EXCLUSIVE
    )


def fast_usage_event(payload: dict[str, Any], now: datetime) -> UsageEvent | None:
    """`UsageEvent.model_validate(payload, context={"now": now})` for the common, clean case,
    ~5x faster (the analytics consumer's hot path). Returns None whenever it is not sure (any
    unusual form, any error): the caller then validates with the model, which accepts or
    explains. A test checks with generated payloads that every event returned here equals
    the model's result."""
    if len(payload) > 7 or not _WIRE_FIELDS.issuperset(payload):
        return None
    try:
        return _fast_build(
            payload["eventName"],
            payload["customerId"],
            payload["identifier"],
            payload["organizationId"],
            payload["value"],
            payload["timestamp"],
            payload.get("properties"),
            now,
        )
    except KeyError:
        return None


if _DECODER is not None:

    class _WireEvent(_msgspec.Struct, forbid_unknown_fields=True):
        eventName: str
        customerId: str
        value: Any
        timestamp: Any
        identifier: str
        organizationId: str
        properties: Any = None

    _WIRE_DECODER: Any = _msgspec.json.Decoder(_WireEvent, float_hook=Decimal)
else:  # pragma: no cover
    _WIRE_DECODER = None


def fast_usage_event_json(raw: bytes, now: datetime) -> UsageEvent | None:
    """`fast_usage_event(parse_json(raw), now)` in one step (msgspec decodes straight into a
    struct: ~3 us for a typical event). None when not sure, as there."""
    if _WIRE_DECODER is None:
        return None
    try:
        w = _WIRE_DECODER.decode(raw)
    except (_msgspec.DecodeError, _msgspec.ValidationError):
        return None
    return _fast_build(
        w.eventName, w.customerId, w.identifier, w.organizationId, w.value, w.timestamp, w.properties, now
    )


def _fast_build(
    name: Any,
    customer: Any,
    identifier: Any,
    org: Any,
    value: Any,
    ts: Any,
    raw_props: Any,
    now: datetime,
) -> UsageEvent | None:
    if not (
        _plain(name, MAX_EVENT_NAME_LENGTH)
        and _plain(customer, MAX_CUSTOMER_ID_LENGTH)
        and _plain(identifier, MAX_IDENTIFIER_LENGTH)
        and _plain(org, MAX_ORGANIZATION_ID_LENGTH)
    ):
        return None
    vt = type(value)
    if vt is str:
        if not _PLAIN_DECIMAL.fullmatch(value):
            return None
        dec = Decimal(value)
    elif vt is int:
        if not 0 <= value < _MAX_VALUE_INT:
            return None
        dec = Decimal(value)
    elif vt is Decimal:
        if not (_fast_decimal(value) and value >= 0):
            return None
        dec = value
    else:
        return None
    tt = type(ts)
    if tt is int:
        if not -(10**10) < ts < 10**11:
            return None
        when = _EPOCH + timedelta(seconds=ts)
    elif tt is str:
        if not ts or ts[0].isspace() or ts[-1].isspace() or ts.lstrip("+-").replace(".", "", 1).isdigit():
            return None
        try:
            when = datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None or when.utcoffset() is None:
            return None
        when = when.astimezone(UTC)
    else:
        return None
    if not (now - MAX_EVENT_AGE <= when <= now + MAX_FUTURE_SKEW):
        return None
    props: dict[str, PropertyValue] = {}
    if raw_props is not None:
        if type(raw_props) is not dict or len(raw_props) > MAX_PROPERTIES:
            return None
        for key, item in raw_props.items():
            if not _plain(key, MAX_PROPERTY_KEY_LENGTH):
                return None
            it = type(item)
            if it is str:
                if len(item) > MAX_PROPERTY_STRING_LENGTH:
                    return None
                props[key] = item
            elif it is bool:
                props[key] = item
            elif it is int:
                if not -_MAX_VALUE_INT < item < _MAX_VALUE_INT:
                    return None
                props[key] = Decimal(item)
            elif it is Decimal:
                if not _fast_decimal(item):
                    return None
                props[key] = item
            else:
                return None
    return _construct(
        {
            "event_name": name,
            "customer_id": customer,
            "value": dec,
            "timestamp": when,
            "identifier": identifier,
            "properties": props,
            "organization_id": org,
        }
    )


_ALL_FIELDS = frozenset(UsageEvent.model_fields)
_set = object.__setattr__


def _construct(values: dict[str, Any]) -> UsageEvent:
    """What `UsageEvent.model_construct` does for a complete set of fields (it takes ~5 us,
    this ~0.5 us): the instance state pydantic v2 keeps (__dict__, fields set, extra,
    private). The fast-path test compares these instances with validated ones."""
    event = UsageEvent.__new__(UsageEvent)
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", _ALL_FIELDS)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event
