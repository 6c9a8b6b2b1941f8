"""Find card numbers that must never reach us (PCI scope): pure, no I/O.

Card numbers are collected by Stripe.js on the customer's device and reach us only as
gateway tokens (``pm_...``). A body that carries something that looks like a card number
anywhere (metadata, a description, an address line, a key, a JSON number) is refused
before it is logged, stored or published. `find_card_number(body)` answers the first
such field as a Stripe-style param path (``metadata[note]``, ``items[0][description]``)
so the API can answer ``invalid_request_error`` with that ``param``, or None.

What counts as a card number: 13 to 19 digits passing the Luhn check, written either as
one unbroken run of digits, or as groups joined by one kind of separator (spaces or
dashes, up to three characters: ``4242 4242 4242 4242``, ``3782-822463-10005``,
``4242 - 4242 - 4242 - 4242``) where every group has at most 6 digits and every group but
the last at least 4, the way card numbers are written. Within a longer run of digit groups
every window of whole groups is tried, so a card followed by more digits (``4242 4242 4242
4242 12/34 123``) is still found; a window never cuts a group, so an unbroken id of 20+
digits is not a card, and neither are dates, phone numbers and amounts that happen to sit
side by side (``+1 415 555 2671 2026-01-02``). Punctuation ends a run
(``card:4242424242424242`` is found). A digit glued to the number makes it a different
number (``14242424242424242`` is 17 digits and checked as such). Not required: a known
issuer prefix (that list goes out of date), so a Luhn-valid placeholder such as
``0000 0000 0000 0000`` is refused too.

Text is read the way a person reads it, so a number disguised by Unicode is still found:
NFKC first (fullwidth ``４２４２``, superscripts and circled digits become ASCII digits, the
no-break and thin spaces a space), then the characters that are invisible (format
characters: zero-width spaces and joiners, soft hyphens, direction marks) are removed, and
any Unicode dash or minus is read as ``-``. Separators between groups are whitespace (any
Unicode space, tab, line break), dashes and dots (``4242.4242.4242.4242``). Digits are
any Unicode decimal digits (Arabic-Indic, Devanagari ...): a card written in them is
checked as its ASCII digits.

Identifiers are not card numbers. Digits glued to a letter or an underscore belong to a
word (``evt_3a41123581321345589b``, a hex digest, ``ord4242424242424242``): that group is
left out. And a group of more than 6 digits only counts alone, which is how a UUID
(8-4-4-4-12) never adds up to a card. Without these two rules one random hex id or UUID
in about 500 to 1,000 looked like a card, so a batch of 1,000 usage events keyed by UUIDs
was refused more often than not.

Speed: strings shorter than 13 characters are skipped, candidate runs are found by one
compiled regex scanning in C, windows are bounded by the 19-digit limit (linear in the
text), and the traversal is iterative (no recursion limit on deeply nested bodies).
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

from billing.requests.input_rules import first_field

MIN_DIGITS = 13
MAX_DIGITS = 19
# digits in each group but the last of a number written in groups
MIN_GROUP = 4
MAX_GROUP = 6

# A run of at least 13 digits, the digits possibly separated by up to three spaces, dashes
# or dots (`\s` is any Unicode whitespace).
_RUN = re.compile(r"\d(?:[\s.\-]{0,3}\d){12,}")
_GROUP_SPLIT = re.compile(r"([\s.\-]+)")
# Unicode's dashes (category Pd) and the minus sign: between groups they are a "-"
DASHES = (
    "\u058a\u05be\u1400\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e17\u2e1a\u2e3a\u2e3b\u2e40"
    "\u2e5d\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead"
)
_AS_HYPHEN = str.maketrans(dict.fromkeys(DASHES, "-"))
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of ASCII digits."""
    total = 0
    double = False
    for char in reversed(digits):
        value = ord(char) - 48
        total += _DOUBLED[value] if double else value
        double = not double
    return total % 10 == 0


def _groups_hold_card(parts: list[str]) -> bool:
    """Whether a window of whole groups is written like a card number and passes Luhn.

    `parts` alternates groups of digits and the separators between them (the output of
    ``_GROUP_SPLIT.split`` with a capturing group). A group alone counts with 13-19
    digits; a window of several groups counts when its separators are all the same, every
    group has at most 6 digits and every group but its last at least 4 (``4242 4242 4242
    4242``, ``3782 822463 10005``, ``4242-4242-4242-4242-424``). That keeps dates, phone
    numbers, amounts and UUIDs that happen to sit next to each other (``+1 415 555 2671
    2026-01-02``) from adding up to a "card".
    """
    groups = parts[0::2]
    separators = parts[1::2]
    count = len(groups)
    for a in range(count):
        first = groups[a]
        length = len(first)
        if MIN_DIGITS <= length <= MAX_DIGITS and luhn_valid(first):
            return True
        b = a
        while b + 1 < count:
            inner = len(groups[b])
            if (
                inner < MIN_GROUP
                or inner > MAX_GROUP
                or separators[b] != separators[a]
                or len(groups[b + 1]) > MAX_GROUP
            ):
                break
            b += 1
            length += len(groups[b])
            if length > MAX_DIGITS:
                break
            if length >= MIN_DIGITS and luhn_valid("".join(groups[a : b + 1])):
                return True
    return False


def _in_a_word(char: str) -> bool:
    return char.isalpha() or char == "_"


def as_read(text: str) -> str:
    """`text` as a person reads it: NFKC, invisible format characters removed, every dash
    a hyphen-minus. ASCII text is already that."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    return text.translate(_AS_HYPHEN)


def contains_card_number(text: str) -> bool:
    """Whether `text` holds a plausible card number (see the module docstring)."""
    if len(text) < MIN_DIGITS:
        return False
    text = as_read(text)
    for match in _RUN.finditer(text):
        run = match.group()
        if not run.isascii():
            # `\d` matches every Unicode decimal digit (fullwidth ４, Arabic-Indic ٤): a card
            # written in them is still a card, checked as its ASCII digits
            run = "".join(str(int(char)) if char.isdecimal() else char for char in run)
        parts = _GROUP_SPLIT.split(run)
        start, end = match.span()
        if start > 0 and _in_a_word(text[start - 1]):
            parts = parts[2:]
        if end < len(text) and _in_a_word(text[end]):
            parts = parts[:-2]
        if parts and _groups_hold_card(parts):
            return True
    return False


def redact_card_numbers(text: str, mark: str = "[card number]") -> str:
    """`text` with each plausible card number replaced by `mark` (for logs and dead-letter
    reasons). A number only seen once Unicode is read as a person reads it (`as_read`) has
    no place in the original text to cut: the whole text is replaced then."""
    if not contains_card_number(text):
        return text
    redacted = _RUN.sub(lambda match: mark if contains_card_number(f" {match.group()} ") else match.group(), text)
    return redacted if not contains_card_number(redacted) else mark


def _scalar_holds_card(value: Any) -> bool:
    if isinstance(value, str):
        return contains_card_number(value)
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        return _int_holds_card(value)
    if isinstance(value, float):
        return value.is_integer() and _int_holds_card(int(value))
    if isinstance(value, Decimal):
        return value.is_finite() and value == value.to_integral_value() and _int_holds_card(int(value))
    if isinstance(value, bytes):
        return contains_card_number(value.decode("utf-8", "replace"))
    return False


def _int_holds_card(value: int) -> bool:
    value = abs(value)
    if value < 10 ** (MIN_DIGITS - 1) or value >= 10**MAX_DIGITS:
        return False
    return luhn_valid(str(value))


def find_card_number(body: Any) -> str | None:
    """The Stripe-style param path of the first field holding a card number, or None.

    `body` is parsed JSON (dicts, lists, strings, numbers, also tuples and Decimals); the
    path is `billing.requests.input_rules.first_field`'s (``metadata[note]``, ``items[0][description]``,
    a card in a dict KEY answers that key's path, the body itself being such a string ``""``).
    """
    return first_field(body, _scalar_holds_card)


__all__ = ["DASHES", "as_read", "contains_card_number", "find_card_number", "luhn_valid", "redact_card_numbers"]
