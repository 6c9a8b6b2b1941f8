"""Card numbers anywhere in a request body are found, with Stripe-style param paths."""

from __future__ import annotations

import json
import random
import string
import sys
import time
import unicodedata
import uuid
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from billing.payments.card_numbers import DASHES, as_read, contains_card_number, find_card_number, luhn_valid

pytestmark = pytest.mark.unit

STRIPE_TEST_CARDS = [
    "4242424242424242",  # Visa
    "4000056655665556",  # Visa debit
    "5555555555554444",  # Mastercard
    "378282246310005",  # American Express (15)
    "6011111111111117",  # Discover
    "3056930009020004",  # Diners Club
    "36227206271667",  # Diners Club (14)
    "3566002020360505",  # JCB
    "6200000000000005",  # UnionPay
]


def _luhn_complete(prefix: str) -> str:
    """`prefix` plus the check digit that makes it Luhn-valid."""
    for digit in "0123456789":
        if luhn_valid(prefix + digit):
            return prefix + digit
    raise AssertionError("unreachable")


def _luhn_break(number: str) -> str:
    last = int(number[-1])
    return number[:-1] + str((last + 1) % 10)


def _grouped(number: str, sizes: list[int], separator: str) -> str:
    parts, index = [], 0
    for size in sizes:
        if index >= len(number):
            break
        parts.append(number[index : index + size])
        index += size
    if index < len(number):
        parts.append(number[index:])
    return separator.join(parts)


def test_luhn_on_known_numbers() -> None:
    for card in STRIPE_TEST_CARDS:
        assert luhn_valid(card), card
    assert not luhn_valid("4242424242424241")
    assert luhn_valid("79927398713")  # the textbook example


@pytest.mark.parametrize("card", STRIPE_TEST_CARDS)
def test_stripe_test_cards_are_caught_plain_and_with_separators(card: str) -> None:
    assert find_card_number({"description": card}) == "description"
    assert find_card_number({"description": f"my card is {card}, thanks"}) == "description"
    for separator in (" ", "-", " - ", "  "):
        four = _grouped(card, [4, 4, 4, 4, 4], separator)
        assert find_card_number({"metadata": {"note": four}}) == "metadata[note]", four
    amex_style = _grouped(card, [4, 6, 5], " ")
    assert contains_card_number(amex_style), amex_style


def test_stripe_test_cards_as_json_numbers() -> None:
    for card in STRIPE_TEST_CARDS:
        body = json.loads(f'{{"amount": 100, "metadata": {{"ref": {card}}}}}')
        assert isinstance(body["metadata"]["ref"], int)
        assert find_card_number(body) == "metadata[ref]"
        assert find_card_number({"x": -int(card)}) == "x"
        assert find_card_number({"x": Decimal(card)}) == "x"
    # a float that is a whole number in range (precision permitting) is checked too
    assert find_card_number({"x": float(378282246310005)}) == "x"
    assert find_card_number({"x": 4242424242424242.5}) is None


def test_param_paths_are_stripe_style() -> None:
    card = "4242 4242 4242 4242"
    assert find_card_number({"address": {"line1": card}}) == "address[line1]"
    assert find_card_number({"items": [{"description": "ok"}, {"description": card}]}) == "items[1][description]"
    assert find_card_number({"a": {"b": [[{"c": ["x", card]}]]}}) == "a[b][0][0][c][1]"
    assert find_card_number([{"name": card}]) == "[0][name]"
    assert find_card_number(card) == ""
    # a card in a key answers the key's path
    assert find_card_number({"metadata": {"4242424242424242": "x"}}) == "metadata[4242424242424242]"


def test_first_in_document_order() -> None:
    card = "4242424242424242"
    body = {"a": "fine", "b": {"c": card}, "d": card, "e": [card]}
    assert find_card_number(body) == "b[c]"


def test_card_followed_by_expiry_and_cvc_is_caught() -> None:
    assert contains_card_number("4242 4242 4242 4242 12/34 123")
    assert contains_card_number("ref 12 4242424242424242")
    assert contains_card_number("card:4242424242424242;")
    assert contains_card_number("card 4242424242424242")


@pytest.mark.parametrize(
    "text",
    [
        "+1 415 555 2671",
        "(415) 555-2671",
        "+44 20 7946 0958",
        "123456789012",  # 12 digits
        "cus_NffrFeUfNV2Hib",
        "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "pm_1Pgag7B7WZ01zgkW",
        "123e4567-e89b-12d3-a456-426614174000",  # a UUID
        "2026-01-02T10:20:30Z",
        "order 20260102 line 7",
        "12345678901234567890123",  # a 23-digit id is one group; no window cuts it
        "amount 1999 qty 3 total 5997",
        "qty 12 12 2026-01-02 2026-01-02",  # adjacent numbers do not add up to a card
        "+1 415 555 2671 2026-01-02 2026-01-02",
        "1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6",
        "",
        "4242",
    ],
)
def test_ordinary_values_are_not_cards(text: str) -> None:
    assert find_card_number({"description": text, "metadata": {"k": text}}) is None


@pytest.mark.parametrize("card", STRIPE_TEST_CARDS)
def test_luhn_invalid_numbers_are_not_cards(card: str) -> None:
    broken = _luhn_break(card)
    assert not luhn_valid(broken)
    assert find_card_number({"d": broken, "n": int(broken)}) is None
    assert find_card_number({"d": _grouped(broken, [4, 4, 4, 4], " ")}) is None


def test_ordinary_numbers_are_not_cards() -> None:
    body = {
        "amount": 1999,
        "quantity": 3,
        "created": 1767225600,
        "ratio": 0.25,
        "flag": True,
        "none": None,
        "big": 10**25,
        "twelve": 123456789012,
    }
    assert find_card_number(body) is None


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@hsettings(max_examples=400)
@given(
    number=st.integers(min_value=12, max_value=18).flatmap(
        lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
    ),
    before=_TEXT,
    after=_TEXT,
)
def test_any_luhn_valid_number_embedded_in_text_is_caught(number: str, before: str, after: str) -> None:
    card = _luhn_complete(number)
    assert 13 <= len(card) <= 19
    # the surrounding text is delimited from the number (a digit glued on makes another number)
    text = f"{before} {card} {after}"
    assert contains_card_number(text), text
    assert find_card_number({"metadata": {"note": text}}) == "metadata[note]"


@hsettings(max_examples=400)
@given(
    number=st.integers(min_value=12, max_value=18).flatmap(
        lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
    ),
    separator=st.sampled_from([" ", "-", "  ", " - ", "--"]),
    before=_TEXT,
    after=_TEXT,
    data=st.data(),
)
def test_any_luhn_valid_number_written_in_groups_is_caught(
    number: str, separator: str, before: str, after: str, data: st.DataObject
) -> None:
    card = _luhn_complete(number)
    # groups of 4-6 digits, the last one the 1-6 that remain: how card numbers are written
    sizes: list[int] = []
    while sum(sizes) + 4 < len(card) and (
        len(card) - sum(sizes) > 6 or data.draw(st.booleans(), label="another group")
    ):
        sizes.append(data.draw(st.integers(min_value=4, max_value=min(6, len(card) - sum(sizes) - 1))))
    written = _grouped(card, sizes, separator)
    text = f"{before} {written} {after}"
    assert contains_card_number(text), text


@hsettings(max_examples=300)
@given(st.text(alphabet=st.characters(blacklist_categories=("Nd", "Cs")), max_size=200))
def test_text_without_digits_is_never_a_card(text: str) -> None:
    assume(not any(char.isdigit() for char in as_read(text)))  # "²" or "①" is read as a digit
    assert not contains_card_number(text)


@hsettings(max_examples=300)
@given(st.integers(min_value=0, max_value=10**12 - 1), _TEXT)
def test_numbers_under_13_digits_are_never_cards(value: int, text: str) -> None:
    assume(not any(ch.isdigit() for ch in text))
    assert not contains_card_number(f"{text} {value} {text}")
    assert find_card_number({"n": value}) is None


def test_fast_on_a_large_body() -> None:
    rng = random.Random(7)
    words = ["invoice", "order", "2026-01-02", "qty", "12", "x", "+1 415 555 2671", "ref", "cus_NffrFeUfNV2Hib"]
    body = {
        "items": [
            {
                "description": " ".join(rng.choice(words) for _ in range(60)),
                "quantity": rng.randint(1, 99),
                "metadata": {f"k{j}": f"value {j} {rng.randint(0, 10**9)}" for j in range(5)},
            }
            for _ in range(5000)
        ]
    }
    size = len(json.dumps(body))
    assert size > 3_000_000
    started = time.perf_counter()
    assert find_card_number(body) is None
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{size} bytes took {elapsed:.2f}s"

    body["items"][-1]["metadata"]["k4"] = "4000 0566 5566 5556"
    assert find_card_number(body) == "items[4999][metadata][k4]"


def test_deep_nesting_does_not_recurse() -> None:
    body: object = "4242424242424242"
    for _ in range(5000):
        body = {"a": [body]}
    path = find_card_number(body)
    assert path is not None and path.startswith("a[0][a][0]")


@hsettings(max_examples=400)
@given(
    number=st.integers(min_value=12, max_value=18).flatmap(
        lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
    ),
    letters=st.text(alphabet=st.characters(categories=("Lu", "Ll")) | st.just("_"), min_size=1, max_size=6),
    glued_before=st.booleans(),
)
def test_digits_glued_to_a_letter_belong_to_an_identifier(number: str, letters: str, glued_before: bool) -> None:
    # a hex digest, an event id (evt_3a41...): one in ~1,000 random ids held a Luhn-valid run
    assume(as_read(letters).replace("_", "").isalpha())  # NFKC reads "Ŀ" as "L·": not glued then
    card = _luhn_complete(number)
    text = f"id {letters}{card} x" if glued_before else f"id {card}{letters} x"
    assert not contains_card_number(text), text


@hsettings(max_examples=1000)
@given(st.uuids(), st.binary(min_size=8, max_size=32))
def test_uuids_and_hex_ids_are_never_cards(value: uuid.UUID, raw: bytes) -> None:
    assert find_card_number({"identifier": str(value), "hex": value.hex, "id": "evt_" + raw.hex()}) is None


def test_a_group_longer_than_six_digits_only_counts_alone() -> None:
    # the last two groups of a UUID: 4 + 12 digits, Luhn-valid, is not how cards are written
    assert luhn_valid("1716446655440004")
    assert not contains_card_number("e29b-41d4-1716-446655440009")
    assert contains_card_number("e29b-41d4 1716 4466 5544 0004")


DISGUISED = [
    "4242.4242.4242.4242",
    "4242\u200b4242\u200b4242\u200b4242",  # zero-width spaces
    "4\u200b2\u200c4\u200d2\u20604\ufeff24242424242",  # an invisible character between digits
    "4242\u00ad4242\u00ad4242\u00ad4242",  # soft hyphens
    "\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12",  # fullwidth
    "4242\u00a04242\u00a04242\u00a04242",  # no-break spaces
    "4242\u20094242\u20094242\u20094242",  # thin spaces
    "4242\u20134242\u20134242\u20134242",  # en dashes
    "4242\u22124242\u22124242\u22124242",  # minus signs
    "4242\n4242\n4242\n4242",  # one group per line
    "\u2463\u2461\u2463\u2461\u2463\u2461\u2463\u2461\u2463\u2461\u2463\u2461\u2463\u2461\u2463\u2461",  # circled digits
    "\u0664\u0662\u0664\u0662 \u0664\u0662\u0664\u0662 \u0664\u0662\u0664\u0662 \u0664\u0662\u0664\u0662",  # Arabic-Indic
]


@pytest.mark.parametrize("text", DISGUISED)
def test_a_card_disguised_by_unicode_or_dots_is_caught(text: str) -> None:
    assert contains_card_number(f"note {text} end"), ascii(text)
    assert find_card_number({"metadata": {"note": text}}) == "metadata[note]"


def test_the_dashes_are_every_unicode_dash() -> None:
    every_dash = {chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Pd"}
    assert set(DASHES) == every_dash - {"-"} | {"\u2212"}


def test_random_identifiers_are_never_cards() -> None:
    """300,000 identifiers of the kinds requests carry (UUIDs, hex digests, Stripe-style ids):
    not one is taken for a card. Seeded, so a failure names the same id every run."""
    rng = random.Random(20261204)
    alphabet = string.ascii_letters + string.digits
    false_positives = []
    for _ in range(100_000):
        value = uuid.UUID(int=rng.getrandbits(128), version=4)
        digest = rng.getrandbits(256).to_bytes(32, "big").hex()
        stripe_id = rng.choice(["evt_", "pm_", "cus_", "pi_", "in_"]) + "".join(rng.choices(alphabet, k=24))
        for identifier in (str(value), digest, stripe_id):
            if contains_card_number(identifier):
                false_positives.append(identifier)
    assert false_positives == []


_INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u202a"])


@hsettings(max_examples=300)
@given(
    number=st.integers(min_value=12, max_value=18).flatmap(
        lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
    ),
    separator=st.sampled_from([".", "\u00a0", "\u2009", "\u3000", "\u2013", "\u2212", "\uff0d", "\t", "\n"]),
    invisible=st.lists(st.tuples(st.integers(min_value=0), _INVISIBLE), max_size=6),
)
def test_any_card_with_unicode_separators_and_invisible_characters_is_caught(
    number: str, separator: str, invisible: list[tuple[int, str]]
) -> None:
    card = _luhn_complete(number)
    text = _grouped(card, [4] * ((len(card) - 1) // 4), separator)
    for position, char in invisible:
        at = position % (len(text) + 1)
        text = text[:at] + char + text[at:]
    assert contains_card_number(f"see {text}."), ascii(text)
