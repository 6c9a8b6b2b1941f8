"""contracts/usage.py: exact numbers, limits, and the fast path equal to the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.usage import (
    MAX_BATCH_EVENTS,
    MAX_EVENT_AGE,
    MAX_FUTURE_SKEW,
    UsageEvent,
    UsageEventBatch,
    UsageEventCreate,
    fast_usage_event,
    format_decimal,
    parse_json,
)

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
CTX = {"now": NOW}


def body(**over):
    b = {
        "eventName": "api_call",
        "customerId": "cus_1",
        "value": "1.5",
        "timestamp": int(NOW.timestamp()) - 60,
        "identifier": "id-1",
        "organizationId": "org_1",
    }
    b.update(over)
    return {k: v for k, v in b.items() if v is not ...}


def test_json_numbers_are_exact_decimals():
    raw = b'{"eventName":"a","customerId":"c","value":0.1,"timestamp":1742040000,"identifier":"i","organizationId":"o","properties":{"n":12345678901234567.000000000001}}'
    e = UsageEvent.model_validate_json(raw, context=CTX)
    assert e.value == Decimal("0.1") and type(e.value) is Decimal
    assert e.properties["n"] == Decimal("12345678901234567.000000000001")
    assert parse_json(b"[1, 1.10, 2e3]") == [1, Decimal("1.10"), Decimal("2E+3")]
    with pytest.raises(ValueError):
        parse_json(b"[NaN]")


def test_floats_are_refused():
    with pytest.raises(ValidationError, match="must not be a float"):
        UsageEvent.model_validate(body(value=0.1), context=CTX)
    with pytest.raises(ValidationError, match="must not be a float"):
        UsageEvent.model_validate(body(timestamp=1742040000.5), context=CTX)


@pytest.mark.parametrize(
    ("ts", "ok"),
    [
        (NOW + MAX_FUTURE_SKEW, True),
        (NOW + MAX_FUTURE_SKEW + timedelta(microseconds=1), False),
        (NOW - MAX_EVENT_AGE, True),
        (NOW - MAX_EVENT_AGE - timedelta(microseconds=1), False),
    ],
)
def test_timestamp_window_edges(ts, ok):
    data = body(timestamp=ts.isoformat())
    if ok:
        assert UsageEvent.model_validate(data, context=CTX).timestamp == ts
    else:
        with pytest.raises(ValidationError):
            UsageEvent.model_validate(data, context=CTX)


def test_timestamp_forms():
    for form in ["2025-03-15T11:00:00Z", "2025-03-15T12:00:00+01:00", 1742036400, "1742036400", "1742036400.000"]:
        assert UsageEvent.model_validate(body(timestamp=form), context=CTX).timestamp == datetime(
            2025, 3, 15, 11, tzinfo=UTC
        )
    assert (
        UsageEvent.model_validate(body(timestamp=Decimal("1742036400.25")), context=CTX).timestamp.microsecond == 250000
    )


def test_batch_limit_and_api_model():
    one = {"eventName": "a", "customerId": "c", "value": 1, "identifier": "i"}
    assert len(UsageEventBatch.model_validate({"events": [one] * MAX_BATCH_EVENTS}).events) == MAX_BATCH_EVENTS
    with pytest.raises(ValidationError):
        UsageEventBatch.model_validate({"events": [one] * (MAX_BATCH_EVENTS + 1)})
    with pytest.raises(ValidationError):
        UsageEventBatch.model_validate({"events": []})
    created = UsageEventCreate.model_validate(one)
    event = created.to_event("org_9", received_at=NOW)
    assert (event.organization_id, event.timestamp, event.value) == ("org_9", NOW, Decimal(1))
    key, value = event.to_kafka()
    assert key == b"org_9"
    assert UsageEvent.model_validate_json(value, context=CTX) == event
    assert b'"value":"1"' in value and b'"organizationId":"org_9"' in value


def test_format_decimal():
    assert [format_decimal(Decimal(x)) for x in ["12.500", "1E+3", "0E-12", "-0.0", "0.000000000001"]] == [
        "12.5",
        "1000",
        "0",
        "0",
        "0.000000000001",
    ]


# --- the fast path must never accept something the model would not, nor differ from it ---

texts = st.one_of(
    st.text(min_size=0, max_size=5),
    st.sampled_from(["a", " a", "a ", "x" * 100, "x" * 101, "x" * 255, "x" * 256, "\u00a0a", "a\x1f", "é"]),
)
values = st.one_of(
    st.integers(min_value=-5, max_value=10**21),
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.decimals(min_value=0, max_value=10**20, places=12),
    st.sampled_from(
        [
            "1.5",
            "0",
            "00",
            "1e3",
            "1_000",
            " 1",
            "-1",
            "1.0000000000001",
            "1." + "0" * 13,
            "abc",
            "",
            "99999999999999999999",
            "100000000000000000000",
        ]
    ),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
timestamps = st.one_of(
    st.integers(
        min_value=int((NOW - timedelta(days=40)).timestamp()), max_value=int((NOW + timedelta(hours=1)).timestamp())
    ),
    st.integers(),
    st.datetimes(
        min_value=datetime(2025, 2, 1), max_value=datetime(2025, 3, 16), timezones=st.sampled_from([UTC, None])
    ).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "2025-03-15T11:00:00Z",
            "2025-03-15T11:00:00z",
            "2025-03-15",
            "2025",
            " 2025-03-15T11:00:00Z",
            "nope",
            "1742036400",
        ]
    ),
    st.decimals(min_value=1742000000, max_value=1742040000, places=3),
    st.booleans(),
)
prop_values = st.one_of(
    texts,
    st.booleans(),
    st.integers(min_value=-(10**21), max_value=10**21),
    values,
    st.none(),
    st.lists(st.integers(), max_size=2),
)
properties = st.one_of(st.none(), st.dictionaries(texts, prop_values, max_size=4), st.just([]), st.just("x"))


@st.composite
def payloads(draw):
    b = {
        "eventName": draw(texts),
        "customerId": draw(texts),
        "value": draw(values),
        "timestamp": draw(timestamps),
        "identifier": draw(texts),
        "organizationId": draw(texts),
    }
    if draw(st.booleans()):
        b["properties"] = draw(properties)
    for key in list(b):
        if draw(st.integers(0, 15)) == 0:
            del b[key]
    if draw(st.integers(0, 15)) == 0:
        b["extra"] = 1
    return b


@settings(max_examples=1500, deadline=None)
@given(payloads())
def test_fast_path_agrees_with_the_model(payload):
    fast = fast_usage_event(payload, NOW)
    try:
        model = UsageEvent.model_validate(payload, context=CTX)
    except ValidationError:
        model = None
    if fast is not None:
        assert model is not None, payload
        assert fast == model
        assert fast.model_dump() == model.model_dump()
        assert fast.model_dump_json() == model.model_dump_json()


def test_fast_path_takes_the_common_case():
    assert fast_usage_event(body(), NOW) is not None
    assert (
        fast_usage_event(
            body(timestamp="2025-03-15T11:00:00Z", value=12, properties={"a": "b", "n": 5, "t": True}), NOW
        )
        is not None
    )
    assert fast_usage_event(body(value=Decimal("2.25")), NOW) is not None


# --- whatever arrives on the topics, parsing yields an event or a dead letter, never raises ---

from analytics.ingest import Message, RejectedMessage, parse_billing_event, parse_usage_message  # noqa: E402

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.decimals(allow_nan=False).map(str)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=60),
        payloads().map(lambda p: __import__("json").dumps(p, default=str).encode()),
        json_values.map(lambda v: __import__("json").dumps(v).encode()),
    ),
    st.one_of(st.none(), st.binary(max_size=8)),
)
def test_parsing_never_raises(raw, key):
    msg = Message("usage.events", 0, 1, key, raw, int(NOW.timestamp() * 1000))
    assert isinstance(parse_usage_message(msg), (UsageEvent, RejectedMessage))
    assert parse_billing_event(msg).__class__.__name__ in ("Interaction", "RejectedMessage")


def test_parse_usage_request():
    from contracts.usage import parse_usage_request

    single = b'{"eventName":"a","customerId":"c","value":2.50,"identifier":"i1"}'
    [event] = parse_usage_request(single, "org_1", NOW)
    assert (event.organization_id, event.value, event.timestamp) == ("org_1", Decimal("2.50"), NOW)
    many = (
        b'{"events":[{"eventName":"a","customerId":"c","value":"1","identifier":"i1","timestamp":1742036400},'
        b'{"eventName":"a","customerId":"c","value":3,"identifier":"i2"}]}'
    )
    events = parse_usage_request(many, "org_1", NOW)
    assert [e.identifier for e in events] == ["i1", "i2"]
    with pytest.raises(ValidationError):
        parse_usage_request(b'{"events":[{"eventName":"a"}]}', "org_1", NOW)
    with pytest.raises(ValueError):
        parse_usage_request(b"{", "org_1", NOW)


def test_summary_out_serializes_decimals_as_strings():
    from contracts.usage import UsageRowOut, UsageSummaryOut

    out = UsageSummaryOut(
        organization_id="org_1",
        start=NOW,
        end=NOW,
        event_count=1,
        value_sum=Decimal("1.500000000000"),
        customers=1,
        meters=[{"event_name": "a", "event_count": 1, "value_sum": Decimal("1.5"), "customers": 1}],
        interactions={"customer.created": 2},
        interaction_count=2,
        dead_letters=0,
    )
    dumped = out.model_dump(mode="json", by_alias=True)
    assert dumped["valueSum"] == "1.5" and dumped["meters"][0]["valueSum"] == "1.5"
    row = UsageRowOut(bucket=NOW, customer_id=None, value=Decimal("10.100000000000"), event_count=2)
    assert row.model_dump(mode="json", by_alias=True) == {
        "bucket": "2025-03-15T12:00:00Z",
        "customerId": None,
        "value": "10.1",
        "eventCount": 2,
    }


@settings(max_examples=1500, deadline=None)
@given(payloads(), st.booleans())
def test_fast_json_path_agrees_with_the_model(payload, duplicate_key):
    from contracts.usage import fast_usage_event_json

    raw = __import__("json").dumps(payload, default=str).encode()
    if duplicate_key and payload:
        first = next(iter(payload))
        raw = raw[:-1] + b', "' + first.encode() + b'": "dup"}'  # duplicate key: the last one wins
    fast = fast_usage_event_json(raw, NOW)
    try:
        model = UsageEvent.model_validate(parse_json(raw), context=CTX)
    except (ValidationError, ValueError):
        model = None
    if fast is not None:
        assert model is not None, raw
        assert fast == model and fast.model_dump_json() == model.model_dump_json()


def test_fast_json_path_takes_the_common_case():
    from contracts.usage import fast_usage_event_json

    raw = b'{"eventName":"a","customerId":"c","value":12.50,"timestamp":1742036400,"identifier":"i","organizationId":"o","properties":{"n":1.5,"s":"x","b":true}}'
    event = fast_usage_event_json(raw, NOW)
    assert (
        event is not None
        and event.value == Decimal("12.50")
        and event.properties == {"n": Decimal("1.5"), "s": "x", "b": True}
    )
