"""Pure rules on a usage request, before it is published."""

from __future__ import annotations

from collections.abc import Sequence

from billing.errors import InvalidRequest


def check_unique_identifiers(identifiers: Sequence[str], *, batch: bool) -> None:
    """Each event of one request needs its own identifier; the second use is named.
    (Across requests a repeated identifier is fine: the consumer keeps the first event.)"""
    seen: dict[str, int] = {}
    for index, identifier in enumerate(identifiers):
        first = seen.setdefault(identifier, index)
        if first != index:
            raise InvalidRequest(
                f"Duplicate identifier '{identifier}': events[{index}] repeats events[{first}]. "
                "Each event needs its own identifier.",
                code="parameter_invalid",
                param=f"events[{index}][identifier]" if batch else "identifier",
            )
