"""Stripe's cursor pagination, newest first: `limit` (1-100), `startingAfter` and
`endingBefore` name an object of the list; `hasMore` says whether more lie beyond."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, Uuid, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from billing import ids
from billing.errors import InvalidRequest, ResourceMissing

Row = TypeVar("Row")

MAX_LIMIT = 100


@dataclass(frozen=True)
class Page(Generic[Row]):
    items: list[Row]
    has_more: bool


@dataclass(frozen=True)
class PageRequest:
    limit: int = 10
    starting_after: str | None = None
    ending_before: str | None = None
    #: the query parameter that carried `starting_after` (a search's is `page`)
    starting_after_param: str = "startingAfter"

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest(
                f"limit must be between 1 and {MAX_LIMIT}.", code="parameter_invalid_integer", param="limit"
            )
        if self.starting_after and self.ending_before:
            raise InvalidRequest(
                "startingAfter and endingBefore cannot be used together.",
                code="parameter_invalid",
                param="endingBefore",
            )

    @classmethod
    def search(cls, limit: int, page: str | None) -> PageRequest:
        """A search's page: `page` is the `nextPage` of the previous answer."""
        return cls(limit, starting_after=page, starting_after_param="page")

    @property
    def cursor(self) -> tuple[str, str] | None:
        """(the cursor id, the parameter that carried it), or None on the first page."""
        if self.starting_after:
            return self.starting_after, self.starting_after_param
        if self.ending_before:
            return self.ending_before, "endingBefore"
        return None


def _cursor_fits(model: Any, cursor_id: str) -> bool:
    """Whether the cursor has the shape of the list's ids (a UUID column compares only with UUIDs)."""
    if isinstance(model.__table__.c.id.type, Uuid):
        return ids.is_uuid(cursor_id)
    return ids.is_id_like(cursor_id)


@dataclass(frozen=True)
class CreatedRange:
    """Stripe's `created[gt|gte|lt|lte]` list filter."""

    gte: datetime | None = None
    gt: datetime | None = None
    lte: datetime | None = None
    lt: datetime | None = None

    def apply(self, statement: Select[Any], column: Any) -> Select[Any]:
        for bound, compare in (
            (self.gte, column.__ge__),
            (self.gt, column.__gt__),
            (self.lte, column.__le__),
            (self.lt, column.__lt__),
        ):
            if bound is not None:
                statement = statement.where(compare(bound))
        return statement


async def paginate(
    session: AsyncSession, statement: Select[Any], model: Any, page: PageRequest, resource: str
) -> Page[Any]:
    """`statement` selects `model` rows (already filtered); the tenant session keeps the
    cursor lookup inside the organization, so a foreign id is simply missing."""
    order_key = tuple_(model.created_at, model.id)
    if page.cursor is not None:
        cursor_id, param = page.cursor
        if not _cursor_fits(model, cursor_id):
            raise InvalidRequest(
                f"Invalid {param}: not the id of an object of this list.", code="parameter_invalid", param=param
            )
        cursor = (await session.execute(select(model.created_at, model.id).where(model.id == cursor_id))).first()
        if cursor is None:
            raise ResourceMissing(resource, cursor_id, param=param)
        if page.starting_after:
            statement = statement.where(order_key < tuple_(cursor.created_at, cursor.id))
        else:
            statement = statement.where(order_key > tuple_(cursor.created_at, cursor.id))
    if page.ending_before:
        statement = statement.order_by(model.created_at.asc(), model.id.asc())
    else:
        statement = statement.order_by(model.created_at.desc(), model.id.desc())
    rows = list((await session.scalars(statement.limit(page.limit + 1))).all())
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if page.ending_before:
        rows.reverse()
    return Page(rows, has_more)
