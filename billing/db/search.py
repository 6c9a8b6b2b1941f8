"""Stripe's search query language, the part the list endpoints support:

    email:'jenny@example.com'        exact match
    name~'jen'                       substring (at least 3 characters)
    metadata['order_id']:'6735'      a metadata value
    clause AND clause  |  clause OR clause   (one connector per query, as in Stripe)

Parsing is pure; the repositories turn the clauses into SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, and_, or_

from billing.errors import InvalidRequest

_CLAUSE = re.compile(
    r"""\s*(?P<field>[a-z_]+)(?:\[\s*'(?P<key>(?:[^'\\]|\\.)+)'\s*\])?\s*(?P<op>[:~])\s*'(?P<value>(?:[^'\\]|\\.)*)'\s*"""
)
_CONNECTOR = re.compile(r"\s+(AND|OR)\s+")


@dataclass(frozen=True)
class Clause:
    field: str
    op: Literal[":", "~"]
    value: str
    key: str | None = None


@dataclass(frozen=True)
class SearchQuery:
    clauses: tuple[Clause, ...]
    connector: Literal["AND", "OR"]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_search_query(query: str, fields: set[str]) -> SearchQuery:
    def invalid(message: str) -> InvalidRequest:
        return InvalidRequest(message, code="invalid_search_query", param="query")

    if not query.strip():
        raise invalid("The search query is empty.")
    clauses: list[Clause] = []
    connectors: set[str] = set()
    position = 0
    while True:
        match = _CLAUSE.match(query, position)
        if not match:
            raise invalid(
                f"Could not parse the search query at character {position}: {query[position : position + 30]!r}"
            )
        field, key = match["field"], match["key"]
        if field not in fields:
            raise invalid(f"{field!r} is not a searchable field (searchable: {', '.join(sorted(fields))}).")
        if (field == "metadata") != (key is not None):
            raise invalid("Use metadata['key']:'value' to search metadata; other fields take no key.")
        value = _unescape(match["value"])
        op: Literal[":", "~"] = "~" if match["op"] == "~" else ":"
        if op == "~" and len(value) < 3:
            raise invalid("A substring search (~) needs at least 3 characters.")
        clauses.append(Clause(field, op, value, _unescape(key) if key else None))
        position = match.end()
        if position == len(query):
            break
        connector = _CONNECTOR.match(query, position - 1) or _CONNECTOR.match(query, position)
        if not connector:
            raise invalid(f"Expected AND or OR at character {position}.")
        connectors.add(connector[1])
        position = connector.end()
    if len(connectors) > 1:
        raise invalid("A search query can use AND or OR, not both.")
    if len(clauses) > 10:
        raise invalid("A search query can have at most 10 clauses.")
    return SearchQuery(tuple(clauses), "OR" if connectors == {"OR"} else "AND")


def text_condition(column: ColumnElement[str], clause: Clause) -> ColumnElement[bool]:
    """`:` an exact match, `~` a case-insensitive substring (LIKE's wildcards escaped)."""
    if clause.op == ":":
        return column == clause.value
    escaped = clause.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def combined(query: SearchQuery, conditions: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """The clauses' conditions joined by the query's one connector."""
    return and_(*conditions) if query.connector == "AND" else or_(*conditions)
