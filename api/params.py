"""Request parameters shared by the controllers, named as Stripe's clients send them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar.params import Parameter

from billing.db.pagination import CreatedRange, PageRequest

IdempotencyKey = Annotated[
    str | None,
    Parameter(
        header="Idempotency-Key", min_length=1, max_length=255, required=False, description="1 to 255 characters"
    ),
]
Limit = Annotated[int, Parameter(query="limit", ge=1, le=100, description="1 to 100, default 10")]
StartingAfter = Annotated[str | None, Parameter(query="startingAfter", max_length=64, required=False)]
EndingBefore = Annotated[str | None, Parameter(query="endingBefore", max_length=64, required=False)]
# a list's filter by the customer whose objects they are
CustomerFilter = Annotated[str | None, Parameter(query="customer", max_length=64, required=False)]
SearchQuery = Annotated[str, Parameter(query="query", max_length=1000, description="Stripe's search query language")]
SearchPage = Annotated[
    str | None, Parameter(query="page", max_length=64, required=False, description="nextPage of the last answer")
]


def _created_bound(name: str) -> Any:
    """`created[gte]` and its siblings: ISO-8601 times bounding `createdAt`."""
    return Parameter(query=f"created[{name}]", required=False, description=f"createdAt {name}")


# Dependencies (api/app.py): a list endpoint takes `page_request: PageRequest` (and
# `created: CreatedRange` when it filters on creation time) instead of repeating the
# query parameters and building them itself.


async def provide_page_request(
    limit: Limit = 10, starting_after: StartingAfter = None, ending_before: EndingBefore = None
) -> PageRequest:
    return PageRequest(limit, starting_after, ending_before)


async def provide_created_range(
    created_gte: Annotated[datetime | None, _created_bound("gte")] = None,
    created_gt: Annotated[datetime | None, _created_bound("gt")] = None,
    created_lte: Annotated[datetime | None, _created_bound("lte")] = None,
    created_lt: Annotated[datetime | None, _created_bound("lt")] = None,
) -> CreatedRange:
    return CreatedRange(created_gte, created_gt, created_lte, created_lt)
