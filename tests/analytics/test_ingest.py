"""Ingestion without Kafka: dedupe within and across batches, dead letters with reasons."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.ingest import (
    BatchProcessor,
    KeyIndex,
    UsageWriter,
    get_usage_writer,
    key_hash,
    lookup_existing,
    rebuild_aggregates,
)
from analytics.queries import usage
from contracts.usage import MAX_EVENT_AGE, MAX_FUTURE_SKEW
from tests.analytics.helpers import EVENTS_TOPIC, USAGE_TOPIC, event_payload, message

NOW = datetime.now(UTC)
START, END = NOW - timedelta(days=40), NOW + timedelta(days=1)


@pytest.fixture
def processor(store):
    return BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC])


def total(store, org, agg="sum", **kw):
    return usage(store, org, "api_call", agg, start=START, end=END, **kw)[0]


def raw_count(store, org):
    return store.query("SELECT count() FROM usage_events WHERE organization_id = {o:String}", {"o": org})[0][0]


def dead_letters(store, org):
    return store.query(
        "SELECT kind, reason, payload FROM usage_dead_letters FINAL WHERE organization_id = {o:String} ORDER BY kafka_offset",
        {"o": org},
    )


def test_key_hash_matches_clickhouse(store):
    got = store.query(
        "SELECT reinterpretAsUInt64(substring(MD5(concat({o:String}, '\\0', {i:String})), 1, 8))",
        {"o": "org_é", "i": "id/1"},
    )[0][0]
    assert got == key_hash("org_é", "id/1")


def test_duplicates_within_a_batch_collapse(store, org, processor):
    msgs = [message(event_payload(org, "same", value=5)) for _ in range(3)]
    msgs.append(message(event_payload(org, "other", value=2)))
    r = processor.process(msgs)
    assert (r.usage_inserted, r.usage_duplicates) == (2, 2)
    assert total(store, org).value == Decimal(7)
    assert raw_count(store, org) == 2


def test_duplicates_across_batches_and_redelivery(store, org, processor):
    first = [message(event_payload(org, f"id-{i}", value="1.1")) for i in range(10)]
    processor.process(first)
    # redelivery of the very same records, plus a client resend with another value and time
    again = [*list(first), message(event_payload(org, "id-3", value=99, ts=NOW - timedelta(days=2)))]
    r = processor.process(again)
    assert (r.usage_inserted, r.usage_duplicates) == (0, 11)
    assert total(store, org).value == Decimal("11")
    assert total(store, org, "count").value == 10
    assert raw_count(store, org) == 10


def test_dedupe_survives_a_restart(store, org, processor):
    processor.process([message(event_payload(org, f"r-{i}", value=2)) for i in range(5)])
    # a new process: a fresh writer loads its key index from ClickHouse
    fresh = UsageWriter(store)
    fresh.prepare()
    proc = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC])
    proc.writer = fresh
    r = proc.process([message(event_payload(org, f"r-{i}", value=2)) for i in range(7)])
    assert (r.usage_inserted, r.usage_duplicates) == (2, 5)
    assert total(store, org).value == Decimal(14)


def test_same_identifier_in_two_organizations_is_two_events(store, processor):
    a, b = "org_dup_a", "org_dup_b"
    processor.process([message(event_payload(a, "x", value=1)), message(event_payload(b, "x", value=2))])
    assert total(store, a).value == 1 and total(store, b).value == 2


def test_hash_collision_never_drops_an_event(store, org):
    """A key-index hit is only a candidate: the exact lookup decides."""
    writer = get_usage_writer(store)
    writer.prepare()
    h = key_hash(org, "fresh")
    writer.index.add([h])  # pretend another key had the same hash
    proc = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC])
    r = proc.process([message(event_payload(org, "fresh", value=3))])
    assert r.usage_inserted == 1
    assert total(store, org).value == 3


@pytest.mark.unit
def test_key_index_candidates():
    idx = KeyIndex()
    assert idx.candidates([1, 2]) == [False, False]
    idx.add([5, 7])
    assert idx.candidates([5, 6, 7]) == [True, False, True]


@pytest.mark.unit
@settings(max_examples=200)
@given(
    st.lists(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=60), max_size=40),
    st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=60),
)
def test_key_index_finds_exactly_what_was_added(batches, probes):
    idx = KeyIndex()
    added: set[int] = set()
    for batch in batches:
        idx.add(batch)
        added.update(batch)
    queries = probes + sorted(added)[:60]
    assert idx.candidates(queries) == [q in added for q in queries]
    # each run sorted without repeats (a key in two runs is merged into one sooner or later)
    assert all(bool((run[1:] > run[:-1]).all()) for run in idx._runs)


@pytest.mark.unit
def test_key_index_stays_a_few_runs_and_adds_in_near_linear_time():
    idx = KeyIndex()
    rng = np.random.default_rng(7)
    for _ in range(300):  # 3 million keys in batches of 10,000, as the consumer adds them
        idx.add(rng.integers(0, 2**63, 10_000, dtype=np.uint64).tolist())
    assert sum(idx.run_sizes) == 3_000_000
    # a binary counter of runs: each at most half the one before, so about log2(300) of them
    sizes = idx.run_sizes
    assert len(sizes) <= 9, sizes
    assert all(later * 2 < earlier for earlier, later in itertools.pairwise(sizes)), sizes


def test_failed_insert_that_landed_is_repaired(store, org, processor, monkeypatch):
    """The insert raises after the raw rows landed: the retry must not double count and
    the aggregates must match the raw rows."""
    writer = processor.writer
    real_insert = store.insert_raw
    calls = {"n": 0}

    def flaky_insert(table, column_names, body, **kw):
        n = real_insert(table, column_names, body, **kw)
        if table == "usage_events" and calls["n"] == 0:
            calls["n"] += 1
            # simulate a view that missed the block: remove the rollup rows again
            store.command(
                "DELETE FROM usage_hourly WHERE organization_id = {o:String}",
                {"o": org},
                settings={"mutations_sync": 2},
            )
            store.command(
                "DELETE FROM usage_daily WHERE organization_id = {o:String}", {"o": org}, settings={"mutations_sync": 2}
            )
            store.command(
                "DELETE FROM usage_events_by_time WHERE organization_id = {o:String}",
                {"o": org},
                settings={"mutations_sync": 2},
            )
            raise ConnectionError("connection reset after the insert")
        return n

    monkeypatch.setattr(store, "insert_raw", flaky_insert)
    msgs = [message(event_payload(org, f"f-{i}", value="0.5", ts=NOW - timedelta(days=1))) for i in range(3)]
    edge = NOW - timedelta(hours=3)
    msgs.append(message(event_payload(org, "f-edge", value="0.5", ts=edge)))
    with pytest.raises(ConnectionError):
        processor.process(msgs)
    r = processor.process(msgs)  # the consumer retries the same batch
    assert r.usage_inserted == 0 and r.usage_duplicates == 4
    assert total(store, org).value == Decimal(2)
    by_day = usage(store, org, "api_call", start=START, end=END, group_by="day")
    assert sum(r.value for r in by_day) == Decimal(2)
    # a period inside one hour is answered from the time-sorted raw copy, repaired too
    second = timedelta(seconds=1)
    assert usage(store, org, "api_call", start=edge - second, end=edge + second)[0].value == Decimal("0.5")
    assert writer is get_usage_writer(store)


def test_rebuild_aggregates_is_idempotent(store, org, processor):
    processor.process(
        [message(event_payload(org, f"b-{i}", value=i, ts=NOW - timedelta(hours=i))) for i in range(1, 6)]
    )
    before = usage(store, org, "api_call", start=START, end=END, group_by="hour")
    rebuild_aggregates(store, org, NOW - timedelta(days=2), NOW + timedelta(hours=1))
    rebuild_aggregates(store, org, NOW - timedelta(days=2), NOW + timedelta(hours=1))
    assert usage(store, org, "api_call", start=START, end=END, group_by="hour") == before
    assert total(store, org).value == 15


def test_lookup_existing(store, org, processor):
    processor.process([message(event_payload(org, "l-1"))])
    assert lookup_existing(store, [(org, "l-1"), (org, "l-2"), ("other", "l-1")]) == {(org, "l-1")}


BAD = [
    (b"{not json", "malformed_json", "malformed JSON"),
    (b"[1, 2]", "invalid", "expected a JSON object"),
    ("value-abc", "invalid", "value: value must be a number or a decimal string"),
    ("value-bool", "invalid", "value: value must be a number or a decimal string, not a boolean"),
    ("value-negative", "invalid", "value: value must not be negative"),
    ("value-precision", "invalid", "more than 12 decimal places"),
    ("future", "invalid", "in the future"),
    ("too-old", "invalid", "older than 35 days"),
    ("naive-time", "invalid", "timestamp must carry a UTC offset"),
    ("missing", "invalid", "customerId: Field required"),
    ("long-identifier", "invalid", "identifier: String should have at most 255 characters"),
    ("bad-property", "invalid", "property 'p' must be a string, a number or a boolean"),
    ("extra-field", "invalid", "colour: Extra inputs are not permitted"),
    ("org-mismatch", "organization_mismatch", "does not match the message key"),
]


def _bad_message(org: str, case: str | bytes):
    now = datetime.now(UTC)  # the message is stamped now: the window is relative to it
    if isinstance(case, bytes):
        return message(case, key=org)
    body = event_payload(org, f"bad-{case}")
    if case == "value-abc":
        body["value"] = "abc"
    elif case == "value-bool":
        body["value"] = True
    elif case == "value-negative":
        body["value"] = -1
    elif case == "value-precision":
        body["value"] = "1.0000000000001"
    elif case == "future":
        body["timestamp"] = int((now + MAX_FUTURE_SKEW + timedelta(minutes=1)).timestamp())
    elif case == "too-old":
        body["timestamp"] = (now - MAX_EVENT_AGE - timedelta(hours=1)).isoformat()
    elif case == "naive-time":
        body["timestamp"] = now.replace(tzinfo=None).isoformat()
    elif case == "missing":
        del body["customerId"]
    elif case == "long-identifier":
        body["identifier"] = "x" * 256
    elif case == "bad-property":
        body["properties"] = {"p": {"nested": 1}}
    elif case == "extra-field":
        body["colour"] = "red"
    elif case == "org-mismatch":
        return message(body, key="org_someone_else")
    return message(body)


def test_dead_letters_keep_payload_and_reason(store, org, processor):
    msgs = [_bad_message(org, case) for case, _, _ in BAD]
    good = message(event_payload(org, "good", value="1.5"))
    r = processor.process([*msgs, good])
    assert r.usage_inserted == 1
    assert r.dead_letters == len(BAD)
    rows = store.query(
        "SELECT kind, reason, payload, organization_id FROM usage_dead_letters FINAL "
        "WHERE organization_id IN ({o:String}, 'org_someone_else') ORDER BY kafka_offset",
        {"o": org},
    )
    assert len(rows) == len(BAD)
    for (kind, reason, payload, _org), (case, want_kind, want_reason), msg in zip(rows, BAD, msgs, strict=True):
        assert kind == want_kind, case
        assert want_reason in reason, (case, reason)
        assert payload.encode() == msg.value, case
    assert total(store, org).value == Decimal("1.5")


def test_redelivered_dead_letter_is_stored_once(store, org, processor):
    m = message(b"{oops", key=org)
    processor.process([m])
    processor.process([m])
    assert store.query(
        "SELECT uniqExact(kafka_topic, kafka_partition, kafka_offset), count() FROM usage_dead_letters FINAL WHERE organization_id = {o:String}",
        {"o": org},
    )[0] == (1, 1)


def test_missing_organization_uses_the_key_and_no_key_is_a_dead_letter(store, org, processor):
    body = event_payload(org, "keyed")
    del body["organizationId"]
    keyed = message(json.dumps(body).encode(), key=org)
    unkeyed = message(json.dumps(body).encode())
    r = processor.process([keyed, unkeyed])
    assert (r.usage_inserted, r.dead_letters) == (1, 1)
    assert "organizationId: Field required" in r.dead_letter_reasons[0]


def test_exact_decimal_values_from_json_numbers(store, org, processor):
    raw = (
        '{"eventName":"api_call","customerId":"c","value":12345678901234567.123456789012,'
        f'"timestamp":{int(NOW.timestamp())},"identifier":"big","organizationId":"{org}"}}'
    ).encode()
    processor.process([message(raw, key=org)])
    assert total(store, org).value == Decimal("12345678901234567.123456789012")


def test_interactions_are_tolerant_and_deduplicated(store, org, processor):
    t = NOW - timedelta(hours=1)
    msgs = [
        message(
            {
                "eventId": "e1",
                "type": "customer.created",
                "organizationId": org,
                "occurredAt": t.isoformat(),
                "data": {"id": "cus_9", "email": "a@b.c"},
            },
            topic=EVENTS_TOPIC,
        ),
        message(
            {
                "eventId": "e2",
                "type": "subscription.updated",
                "organizationId": org,
                "occurredAt": t.isoformat(),
                "data": {"id": "sub_1", "customerId": "cus_9", "productId": "prod_1", "amount": 12.5},
            },
            topic=EVENTS_TOPIC,
        ),
        message(
            {"eventId": "e3", "type": "brand.new.type", "organizationId": org, "data": {"x": [1, 2]}},
            topic=EVENTS_TOPIC,
        ),
        message({"type": "no.id", "organizationId": org}, topic=EVENTS_TOPIC),
        message({"eventId": "e4", "organizationId": org}, topic=EVENTS_TOPIC),
        message(b"nope", topic=EVENTS_TOPIC, key=org),
    ]
    r = processor.process(msgs)
    assert (r.interactions, r.dead_letters) == (4, 2)
    processor.process(msgs[:2])  # redelivery
    rows = store.query(
        "SELECT type, object_type, object_id, customer_id, product_id, subscription_id, data "
        "FROM interactions FINAL WHERE organization_id = {o:String} ORDER BY type",
        {"o": org},
    )
    assert [r[0] for r in rows] == ["brand.new.type", "customer.created", "no.id", "subscription.updated"]
    assert rows[1][1:6] == ("customer", "cus_9", "cus_9", "", "")
    assert rows[3][1:6] == ("subscription", "sub_1", "cus_9", "prod_1", "sub_1")
    assert json.loads(rows[3][6])["amount"] == "12.5"


def test_awkward_strings_and_exponent_values_round_trip(store, org, processor):
    weird = 'q"uote\\back\nline\ttab é 🙂 \u2028'
    msgs = [
        message(event_payload(org, weird, customer=weird, value="1e3", properties={weird: weird, "n": 1})),
        message(event_payload(org, "tiny", customer="c", value="0.0000001")),
        message(event_payload(org, "zero", customer="c", value="0E-12")),
    ]
    r = processor.process(msgs)
    assert r.usage_inserted == 3, r.dead_letter_reasons
    rows = store.query(
        "SELECT identifier, customer_id, value, properties FROM usage_events WHERE organization_id = {o:String} ORDER BY identifier",
        {"o": org},
    )
    assert rows[0] == (weird, weird, Decimal(1000), {weird: weird, "n": "1"})
    assert rows[1][0] == "tiny" and rows[1][2] == Decimal("0.0000001")
    assert total(store, org).value == Decimal("1000.0000001")
    assert usage(store, org, "api_call", "count", start=START, end=END, customer_id=weird)[0].value == 1
