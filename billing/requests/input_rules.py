"""What a request may carry, checked at the API's edge before anything parses, stores or
publishes it: pure rules, no I/O.

- Text (JSON strings and keys, query and form names and values, the URL path) is refused
  when it holds a NUL, a lone surrogate (a JSON ``"\\ud800"`` escape) or bytes that are not
  UTF-8. Postgres stores none of them, and a command that cannot be stored must never
  reach the queue. Bytes are decoded with ``surrogateescape``, so an invalid byte becomes a
  lone surrogate and one rule covers both.
- A JSON body nests at most `MAX_JSON_DEPTH` levels. The depth is measured on the text
  before parsing: a parser that recurses would fail on a body 5,000 levels deep.
- One header holds at most `MAX_HEADER_BYTES`, all of them `MAX_HEADERS_BYTES`.

A refusal names the param in Stripe's style (``name``, ``metadata[note]``, ``items[0]``)
and never echoes the text refused. Metadata's limits (50 keys, 40-character keys,
500-character values) are the request contracts' (contracts/common.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

MAX_JSON_DEPTH = 32
MAX_HEADER_BYTES = 8 * 1024
MAX_HEADERS_BYTES = 16 * 1024

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# a JSON string (the unrolled form: linear, no backtracking), and the brackets outside them
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_FORM = "application/x-www-form-urlencoded"

TEXT_MESSAGE = "text must be UTF-8 without NUL characters or lone surrogates"


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, in Stripe's terms (the API answers it 400 unless `status` says)."""

    message: str
    code: str
    param: str | None = None
    status: int = 400


def bad_text(text: str) -> bool:
    """Whether `text` holds a NUL or a lone surrogate (an invalid byte decoded with surrogateescape)."""
    return _BAD_TEXT.search(text) is not None


def decoded(raw: bytes) -> str:
    """UTF-8 text with each invalid byte kept as a lone surrogate, for `bad_text` to find."""
    return raw.decode("utf-8", "surrogateescape")


def nesting_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON `text` nests arrays and objects deeper than `limit` (a scalar is
    depth 0, ``[]`` depth 1). Brackets inside strings do not count; text that is not JSON
    gets an answer too (its brackets outside anything string-like), never an exception."""
    depth = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def first_field(document: Any, holds: Callable[[Any], bool]) -> str | None:
    """The Stripe-style param path of the first key or value of parsed JSON for which
    `holds` is true, or None.

    A top-level key's path is its name (``description``); nested keys and list indexes are
    bracketed (``metadata[note]``, ``items[0][description]``); a top-level list starts with
    its index (``[0][name]``); a hit in a dict KEY answers that key's path; the document
    itself being such a scalar answers ``""``. Fields are visited in document order, a key
    before its value; the walk is iterative (no recursion limit on deep documents).
    """
    # each stack entry: (value, path) where path is a linked (parent, segment) tuple
    stack: list[tuple[Any, tuple[Any, ...] | None]] = [(document, None)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, Mapping):
            for key, child in reversed(list(value.items())):
                child_path = (path, f"[{key}]" if path is not None else str(key))
                stack.append((child, child_path))
                if holds(key):
                    stack.append((_KeyHit(), child_path))  # popped before the value
        elif isinstance(value, (list, tuple)):
            stack.extend((value[index], (path, f"[{index}]")) for index in range(len(value) - 1, -1, -1))
        elif isinstance(value, _KeyHit) or holds(value):
            return _path(path)
    return None


class _KeyHit:
    __slots__ = ()


def _path(node: tuple[Any, ...] | None) -> str:
    segments: list[str] = []
    while node is not None:
        node, segment = node
        segments.append(segment)
    return "".join(reversed(segments))


def trimmed_param(param: str | None, refused: Callable[[str], bool]) -> str | None:
    """`param` without its last segments while they hold what was refused (a hit in a
    key), so that an answer names where the problem is without repeating it."""
    while param and refused(param):
        cut = param.rfind("[")
        param = param[:cut] if cut > 0 else None
    return param or None


def _text_refusal(param: str | None) -> Refusal:
    where = f"Invalid {param}: " if param else "Invalid request: "
    return Refusal(where + TEXT_MESSAGE + ".", "invalid_characters", param)


def _is_bad_text(value: Any) -> bool:
    return isinstance(value, str) and bad_text(value)


def pairs_refusal(raw: bytes) -> Refusal | None:
    """A query string or form body (``a=1&b=%00``): the first name or value with bad text."""
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        name_text = decoded(unquote_to_bytes(name.replace(b"+", b" ")))
        if bad_text(name_text) or bad_text(decoded(unquote_to_bytes(value.replace(b"+", b" ")))):
            return _text_refusal(None if bad_text(name_text) else name_text)
    return None


def path_has_bad_text(raw_path: bytes) -> bool:
    return bad_text(decoded(unquote_to_bytes(raw_path)))


def headers_refusal(headers: Iterable[tuple[bytes, bytes]]) -> Refusal | None:
    total = 0
    for name, value in headers:
        size = len(name) + len(value)
        total += size
        if size > MAX_HEADER_BYTES:
            param = name.decode("latin-1") if re.fullmatch(rb"[A-Za-z0-9\-]{1,64}", name) else None
            return Refusal(
                f"A request header can hold at most {MAX_HEADER_BYTES} bytes.", "request_header_too_large", param, 431
            )
    if total > MAX_HEADERS_BYTES:
        return Refusal(
            f"The request headers can hold at most {MAX_HEADERS_BYTES} bytes together.",
            "request_header_too_large",
            None,
            431,
        )
    return None


def body_refusal(body: bytes, content_type: str | None) -> Refusal | None:
    """What is wrong with a request body by these rules, or None. A body that is not JSON
    (nor a form) is left to the app, which refuses it, unless it holds bad text."""
    if not body:
        return None
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == _FORM:
        return pairs_refusal(body)
    if kind.startswith("multipart/"):
        return None
    text = decoded(body)
    if nesting_exceeds(text):
        return Refusal(f"Invalid JSON body: nested deeper than {MAX_JSON_DEPTH} levels.", "invalid_json")
    try:
        document = json.loads(text)
    except ValueError:
        return _text_refusal(None) if bad_text(text) else None
    param = first_field(document, _is_bad_text)
    if param is None:
        return None
    return _text_refusal(trimmed_param(param, bad_text))


__all__ = [
    "MAX_HEADERS_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_JSON_DEPTH",
    "Refusal",
    "bad_text",
    "body_refusal",
    "decoded",
    "first_field",
    "headers_refusal",
    "nesting_exceeds",
    "pairs_refusal",
    "path_has_bad_text",
    "trimmed_param",
]
