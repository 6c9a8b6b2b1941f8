"""/v1/analytics/usage and /v1/analytics/summary: usage from ClickHouse, for the caller's
organization only (the organization comes from the API key and is always passed to the
query functions server-side; no parameter names it). Values are exact decimal strings.

In the summary, an event name's `eventCount`, `valueSum` and `customers` are of every event
of that name (`valueSum`: their `value` field), while `usage` is what its meter measures
(aggregation, valueKey, filters): computed by `analytics.queries.usage_for_meter`, as
`/usage?meter=` is, so both routes give the same figure for the same meter and range.

The store is opened on first use, not at start-up: with the embedded default (chDB) the
process that serves the API must be the one that hosts the analytics consumer (`billing
dev`); an API process that cannot open it answers 503 on these routes and keeps serving
everything else.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from litestar import Controller, get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.queries import QueryError, UsageRow, asummary, ausage, meter_totals, usage_for_meter
from analytics.store import AnalyticsStore, StoreError, get_store
from api.auth import Caller
from billing.errors import InvalidRequest, ResourceMissing, ServiceUnavailable
from billing.meters.repository import get_meter, meters_by_event_name
from contracts.resources import Meter
from contracts.usage import format_decimal

DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=400)
MAX_HOURLY_RANGE = timedelta(days=31)


class AnalyticsStores:
    """The process's analytics store, opened (and migrated) on the first request that
    needs it: an API process without ClickHouse still serves everything else."""

    def __init__(self, clickhouse_url: str) -> None:
        self._url = clickhouse_url
        self._store: AnalyticsStore | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AnalyticsStore:
        if self._store is not None:
            return self._store
        async with self._lock:
            if self._store is None:
                from analytics.migrations import migrate

                try:
                    store = await asyncio.to_thread(get_store, self._url)
                    await asyncio.to_thread(migrate, store)
                except StoreError as error:
                    raise ServiceUnavailable(
                        "Analytics are unavailable in this API process: " + str(error), code="analytics_unavailable"
                    ) from error
                self._store = store
        return self._store


def decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def period(start: datetime | None, end: datetime | None, *, hourly: bool = False) -> tuple[datetime, datetime]:
    """[from, to): default the last 30 days up to now; both must carry a UTC offset."""
    for name, value in (("from", start), ("to", end)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise InvalidRequest(
                f"Invalid {name}: give a UTC offset (2025-01-31T00:00:00Z).", code="parameter_invalid", param=name
            )
    end = end or datetime.now(UTC)
    start = start or end - DEFAULT_RANGE
    if start >= end:
        raise InvalidRequest("Invalid from: it must be before to.", code="parameter_invalid", param="from")
    limit = MAX_HOURLY_RANGE if hourly else MAX_RANGE
    if end - start > limit:
        raise InvalidRequest(
            f"Invalid to: a range of at most {limit.days} days{' when grouped by hour' if hourly else ''}.",
            code="parameter_invalid",
            param="to",
        )
    return start.astimezone(UTC), end.astimezone(UTC)


def meter_usage(meter: Meter, row: UsageRow) -> dict[str, Any]:
    """A meter's figure in the summary: the row `/usage?meter=` answers for the same range."""
    return {"aggregation": str(meter.aggregation), "value": decimal_text(row.value), "eventCount": row.event_count}


def usage_row(row: UsageRow) -> dict[str, Any]:
    return {
        "bucket": iso(row.bucket),
        "customerId": row.customer_id,
        "value": decimal_text(row.value),
        "eventCount": row.event_count,
    }


class AnalyticsController(Controller):
    path = "/v1/analytics"
    tags = ["analytics"]

    @get("/usage", summary="Usage of one meter (or event name) over [from, to), optionally grouped")
    async def usage(
        self,
        caller: Caller,
        db: AsyncSession,
        analytics: AnalyticsStores,
        meter_id: Annotated[str | None, Parameter(query="meter", max_length=64, required=False)] = None,
        event_name: Annotated[str | None, Parameter(query="eventName", max_length=100, required=False)] = None,
        aggregation: Annotated[
            Literal["sum", "count", "max", "last", "unique_count"] | None,
            Parameter(query="aggregation", required=False),
        ] = None,
        customer: Annotated[str | None, Parameter(query="customer", max_length=255, required=False)] = None,
        start: Annotated[datetime | None, Parameter(query="from", required=False)] = None,
        end: Annotated[datetime | None, Parameter(query="to", required=False)] = None,
        group_by: Annotated[
            Literal["day", "hour", "customer"] | None, Parameter(query="groupBy", required=False)
        ] = None,
    ) -> dict[str, Any]:
        if (meter_id is None) == (event_name is None):
            raise InvalidRequest(
                "Give exactly one of meter (a meter id) or eventName.", code="parameter_missing", param="meter"
            )
        start, end = period(start, end, hourly=group_by == "hour")
        meter: Meter | None = None
        if meter_id is not None:
            if aggregation is not None:
                raise InvalidRequest(
                    "aggregation comes from the meter; give it only with eventName.",
                    code="parameter_unknown",
                    param="aggregation",
                )
            found = await get_meter(db, meter_id)
            if found is None:
                raise ResourceMissing("meter", meter_id, param="meter")
            meter = Meter.model_validate(found)
        elif aggregation is None:
            # an event name with a meter is read as that meter, unless told otherwise
            found = (await meters_by_event_name(db, [event_name or ""])).get(event_name or "")
            meter = Meter.model_validate(found) if found is not None else None
        store = await analytics.get()
        try:
            if meter is not None:
                rows = await asyncio.to_thread(
                    lambda: usage_for_meter(
                        store,
                        caller.organization_id,
                        meter,
                        start=start,
                        end=end,
                        customer_id=customer,
                        group_by=group_by,
                    )
                )
            else:
                rows = await ausage(
                    store,
                    caller.organization_id,
                    event_name or "",
                    aggregation or "sum",
                    start=start,
                    end=end,
                    customer_id=customer,
                    group_by=group_by,
                )
        except QueryError as error:
            raise InvalidRequest(str(error), code="parameter_invalid") from None
        return {
            "object": "usage",
            "meter": meter.id if meter else None,
            "eventName": meter.eventName if meter else event_name,
            "aggregation": str(meter.aggregation) if meter else (aggregation or "sum"),
            "customer": customer,
            "from": iso(start),
            "to": iso(end),
            "groupBy": group_by,
            "data": [usage_row(row) for row in rows],
        }

    @get(
        "/summary",
        summary="Events, value sums and customers per event name, and each meter's figure (as /usage "
        "answers it); interactions; dead letters",
    )
    async def summary(
        self,
        caller: Caller,
        db: AsyncSession,
        analytics: AnalyticsStores,
        start: Annotated[datetime | None, Parameter(query="from", required=False)] = None,
        end: Annotated[datetime | None, Parameter(query="to", required=False)] = None,
    ) -> dict[str, Any]:
        start, end = period(start, end)
        store = await analytics.get()
        try:
            result = await asummary(store, caller.organization_id, start, end)
        except QueryError as error:
            raise InvalidRequest(str(error), code="parameter_invalid") from None
        found = await meters_by_event_name(db, [m.event_name for m in result.meters])
        meters = {name: Meter.model_validate(meter) for name, meter in found.items()}
        figures = await asyncio.to_thread(
            lambda: meter_totals(store, caller.organization_id, meters.values(), start=start, end=end)
        )
        return {
            "object": "usage_summary",
            "from": iso(result.start),
            "to": iso(result.end),
            "eventCount": result.event_count,
            "valueSum": decimal_text(result.value_sum),
            "customers": result.customers,
            "meters": [
                {
                    "eventName": m.event_name,
                    "meter": meters[m.event_name].id if m.event_name in meters else None,
                    "eventCount": m.event_count,
                    "valueSum": decimal_text(m.value_sum),
                    "customers": m.customers,
                    "usage": meter_usage(meters[m.event_name], figures[m.event_name])
                    if m.event_name in meters
                    else None,
                }
                for m in result.meters
            ],
            "interactions": result.interactions,
            "interactionCount": result.interaction_count,
            "deadLetters": result.dead_letters,
        }
