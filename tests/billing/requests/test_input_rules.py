"""The edge's input rules, pure: text, nesting, headers, id shapes and command ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import ids
from billing.requests.input_rules import (
    MAX_HEADER_BYTES,
    MAX_JSON_DEPTH,
    bad_text,
    body_refusal,
    first_field,
    headers_refusal,
    nesting_exceeds,
    pairs_refusal,
    path_has_bad_text,
)
from contracts.envelopes import command_id_for, command_id_issued

pytestmark = pytest.mark.unit

# text Postgres stores: no NUL, no surrogate (category Cs)
clean_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | clean_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(clean_text, children, max_size=4),
    max_leaves=30,
)


def depth(document: Any) -> int:
    if isinstance(document, dict):
        return 1 + max((depth(v) for v in document.values()), default=0)
    if isinstance(document, list):
        return 1 + max((depth(v) for v in document), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(documents, st.integers(min_value=0, max_value=8))
def test_nesting_is_measured_as_parsing_would(document: Any, limit: int) -> None:
    for text in (json.dumps(document), json.dumps(document, indent=1, ensure_ascii=False)):
        assert nesting_exceeds(text, limit) == (depth(document) > limit)


def test_nesting_far_too_deep_is_answered_without_recursion() -> None:
    assert nesting_exceeds("[" * 5000 + "]" * 5000)
    assert nesting_exceeds('{"a":' * 5000 + "1" + "}" * 5000)
    assert not nesting_exceeds('["' + "[" * 5000 + '"]')  # brackets in a string are text
    assert not nesting_exceeds("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert nesting_exceeds("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert body_refusal(b"[" * 5000 + b"]" * 5000, "application/json").code == "invalid_json"  # type: ignore[union-attr]


@given(clean_text)
def test_clean_text_passes(text: str) -> None:
    assert not bad_text(text)
    assert body_refusal(json.dumps({"name": text}).encode(), "application/json") is None


@given(clean_text, clean_text, st.sampled_from(["\x00", "\ud800", "\udfff", "\udc80"]))
def test_a_nul_or_lone_surrogate_anywhere_is_bad(before: str, after: str, bad: str) -> None:
    assert bad_text(before + bad + after)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), clean_text, min_size=1, max_size=5), st.data())
def test_the_refusal_names_the_field(metadata: dict[str, str], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(metadata)))
    for bad in ("\x00", "\ud800", "\udfff"):
        # json.dumps writes these as the escapes a client sends: \u0000, \ud800, \udfff
        body = json.dumps({"name": "ok", "metadata": {**metadata, key: f"a{bad}b"}}).encode()
        refusal = body_refusal(body, "application/json")
        assert refusal is not None and (refusal.param, refusal.code, refusal.status) == (
            f"metadata[{key}]",
            "invalid_characters",
            400,
        )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"name": "bad\\u0000name"}', "name"),
        (b'{"name": "\xff\xfe"}', "name"),  # not UTF-8
        (b'{"name": "\xed\xa0\x80"}', "name"),  # a surrogate encoded as UTF-8 (CESU): not UTF-8 either
        (b'{"items": [{"description": "ok"}, {"description": "\\ud83d"}]}', "items[1][description]"),
        (b'{"metadata": {"bad\\u0000key": "v"}}', "metadata"),  # a bad key: named by where it is, not echoed
        (b'{"bad\\u0000key": 1}', None),
        (b'"\\u0000"', None),
        (b'{"name": "\xff", broken', None),  # not JSON either: still refused, without a param
    ],
)
def test_bodies(body: bytes, param: str | None) -> None:
    refusal = body_refusal(body, "application/json")
    assert refusal is not None and refusal.code == "invalid_characters" and refusal.param == param
    assert "\x00" not in refusal.message and not bad_text(refusal.message)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "emoji \\ud83d\\ude00 as a pair"}',
        '{"name": "\u00e9\u4e2d\U0001f600"}'.encode(),
        b'{"name": "broken',  # not JSON, but clean: the app answers it
        b"",
    ],
)
def test_good_bodies_pass(body: bytes) -> None:
    assert body_refusal(body, "application/json") is None


def test_form_bodies_are_pairs() -> None:
    assert body_refusal(b"name=Ada&metadata%5Bk%5D=v", "application/x-www-form-urlencoded") is None
    refusal = body_refusal(b"name=Ada&metadata%5Bk%5D=%00", "application/x-www-form-urlencoded")
    assert refusal is not None and refusal.param == "metadata[k]"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        (b"startingAfter=cus_1%00", "startingAfter"),
        (b"limit=3&query=name%3A%27%ED%A0%80%27", "query"),
        (b"page=%FF", "page"),
        (b"x%00y=1", None),
    ],
)
def test_query_strings(query: bytes, param: str | None) -> None:
    refusal = pairs_refusal(query)
    assert refusal is not None and refusal.param == param


def test_clean_query_strings_and_paths_pass() -> None:
    assert pairs_refusal(b"") is None
    assert pairs_refusal(b"email=a%2Bb%40example.com&created%5Bgt%5D=2026-01-01&name=%C3%A9") is None
    assert not path_has_bad_text(b"/v1/customers/cus_%C3%A9")
    assert path_has_bad_text(b"/v1/customers/cus_%00")
    assert path_has_bad_text(b"/v1/customers/cus_%FF")


def test_header_limits() -> None:
    assert headers_refusal([(b"authorization", b"Bearer sk_x"), (b"x-a", b"a" * 4000)]) is None
    one = headers_refusal([(b"x-big", b"a" * MAX_HEADER_BYTES)])
    assert one is not None and (one.status, one.code, one.param) == (431, "request_header_too_large", "x-big")
    together = headers_refusal([(f"x-{i}".encode(), b"a" * 4000) for i in range(5)])
    assert together is not None and (together.status, together.param) == (431, None)


def test_first_field_paths() -> None:
    def hit(value: Any) -> bool:
        return value == "hit"

    assert first_field({"a": {"b": ["x", "hit"]}}, hit) == "a[b][1]"
    assert first_field([{"name": "x"}, {"name": "hit"}], hit) == "[1][name]"
    assert first_field("hit", hit) == ""
    assert first_field({"hit": 1, "b": "hit"}, hit) == "hit"  # a key before the values after it
    assert first_field({"a": "x"}, hit) is None


@given(st.sampled_from(sorted(ids.PREFIXES)), st.sampled_from(sorted(ids.PREFIXES)))
def test_an_id_has_the_shape_of_its_resource_only(resource: str, other: str) -> None:
    made = ids.new_id(resource)
    assert ids.has_shape(resource, made) and ids.is_id_like(made)
    assert ids.has_shape(other, made) == (other == resource)


@pytest.mark.parametrize(
    "value", ["cus_", "cus_a b", "cus_a\x00", "cus_é", "prod_abc", "cus_" + "a" * 65, "cus_abc_def"]
)
def test_what_is_not_a_customer_id(value: str) -> None:
    assert not ids.has_shape("customer", value)


@settings(max_examples=200)
@given(
    st.from_regex(r"org_[A-Za-z0-9]{24}", fullmatch=True),
    st.from_regex(r"org_[A-Za-z0-9]{24}", fullmatch=True),
    st.none() | st.text(min_size=1, max_size=255),
)
def test_a_command_id_is_known_as_issued_to_its_organization_only(
    organization: str, other: str, key: str | None
) -> None:
    command_id = command_id_for(organization, key)
    assert command_id_issued(organization, command_id)
    assert command_id_issued(other, command_id) == (other == organization)
    assert not command_id_issued(organization, command_id[:-1] + ("0" if command_id[-1] != "0" else "1"))
    if key is not None:
        assert command_id_for(organization, key) == command_id  # a retry is the same command


@pytest.mark.parametrize("made_up", ["cmd_" + "0" * 32, "cmd_x", "anything", "cmd_" + "a" * 40, ""])
def test_made_up_command_ids_were_never_issued(made_up: str) -> None:
    assert not command_id_issued("org_" + "a" * 24, made_up)
