"""Usage and summary queries, tenant-scoped by construction.

Every function takes `organization_id` as a required argument and puts it in the WHERE
clause of every table it reads; there is no way to ask for usage without one. Values come
back as exact `Decimal` (ClickHouse Decimal(38, 12)), never float.

Periods are half-open [start, end) in UTC (timezone-aware datetimes; naive ones are
refused). The invoice code asks for a billing period's usage with `usage(..., start, end,
group_by=None)` and gets exactly one row.

How a usage query is answered (same result either way, see analytics/ingest.py for why the
aggregates are exact): the period is cut into whole UTC days (read from usage_daily), whole
hours (usage_hourly) and the sub-hour edges (raw rows from usage_events_by_time, the events
sorted by time), and the pieces are merged in one SQL query. Aggregations that the rollups cannot answer (`unique_count`, a
`value_key`, property filters) read the raw rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeGuard

from analytics.store import AnalyticsStore

Aggregation = Literal["sum", "count", "max", "last", "unique_count"]
GroupBy = Literal["day", "hour", "customer"] | None
AGGREGATIONS: tuple[str, ...] = ("sum", "count", "max", "last", "unique_count")


def _is_aggregation(name: str) -> TypeGuard[Aggregation]:
    return name in AGGREGATIONS


class MeterDefinition(Protocol):
    """What `usage_for_meter` reads of a meter: a contracts.resources.Meter, or anything with
    these (optionally also `organizationId`, and `filters`: a {property: value} object)."""

    @property
    def eventName(self) -> str: ...

    @property
    def aggregation(self) -> str: ...

    @property
    def valueKey(self) -> str | None: ...


GROUP_BYS: tuple[str | None, ...] = ("day", "hour", "customer", None)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group of usage. `bucket` is the start of the day/hour (UTC) when grouped by time,
    `customer_id` is set when grouped by customer. `value` is the aggregate: a Decimal
    (count and unique_count too), or None for max/last over no events."""

    bucket: datetime | None
    customer_id: str | None
    value: Decimal | None
    event_count: int


@dataclass(frozen=True, slots=True)
class MeterSummary:
    event_name: str
    event_count: int
    value_sum: Decimal
    customers: int


@dataclass(frozen=True, slots=True)
class UsageSummary:
    organization_id: str
    start: datetime
    end: datetime
    event_count: int
    value_sum: Decimal
    customers: int
    meters: list[MeterSummary] = field(default_factory=list)
    interactions: dict[str, int] = field(default_factory=dict)
    interaction_count: int = 0
    dead_letters: int = 0


class QueryError(ValueError):
    """Bad arguments (the API answers 400)."""


def _check_common(organization_id: str, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if not isinstance(organization_id, str) or not organization_id:
        raise QueryError("organization_id is required")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime):
            raise QueryError(f"{name} must be a datetime")
        if value.tzinfo is None or value.utcoffset() is None:
            raise QueryError(f"{name} must be timezone-aware")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if not start < end:
        raise QueryError("start must be before end")
    return start, end


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    f = _floor_hour(t)
    return f if f == t else f + timedelta(hours=1)


def _floor_day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(t: datetime) -> datetime:
    f = _floor_day(t)
    return f if f == t else f + timedelta(days=1)


def plan_segments(start: datetime, end: datetime, allow_daily: bool = True) -> list[tuple[str, datetime, datetime]]:
    """Cut [start, end) into ("raw"|"hourly"|"daily", from, to) pieces, biggest rollup first."""
    h1, h2 = _ceil_hour(start), _floor_hour(end)
    if h1 >= h2:
        return [("raw", start, end)]
    out: list[tuple[str, datetime, datetime]] = []
    if start < h1:
        out.append(("raw", start, h1))
    d1, d2 = _ceil_day(h1), _floor_day(h2)
    if allow_daily and d1 < d2:
        if h1 < d1:
            out.append(("hourly", h1, d1))
        out.append(("daily", d1, d2))
        if d2 < h2:
            out.append(("hourly", d2, h2))
    else:
        out.append(("hourly", h1, h2))
    if h2 < end:
        out.append(("raw", h2, end))
    return out


# group key -> SQL expression per source table
_KEY_EXPR = {
    "bucket_day": {
        "raw": "toDateTime(toStartOfDay(timestamp), 'UTC')",
        "hourly": "toDateTime(toStartOfDay(hour), 'UTC')",
        "daily": "toDateTime(day, 'UTC')",
    },
    "bucket_hour": {"raw": "toDateTime(toStartOfHour(timestamp), 'UTC')", "hourly": "hour"},
    "customer": {"raw": "customer_id", "hourly": "customer_id", "daily": "customer_id"},
    "event_name": {"raw": "event_name", "hourly": "event_name", "daily": "event_name"},
}
_TABLE = {"raw": "usage_events_by_time", "hourly": "usage_hourly", "daily": "usage_daily"}
_TIME = {
    "raw": ("timestamp", "DateTime64(6, 'UTC')"),
    "hourly": ("hour", "DateTime('UTC')"),
    "daily": ("day", "Date"),
}
_PARTIALS = {
    "raw": "count() AS cnt, sum(value) AS vsum, max(value) AS vmax, max((timestamp, identifier, value)) AS vlast",
    "hourly": "sum(event_count) AS cnt, sum(value_sum) AS vsum, max(value_max) AS vmax, max(value_last) AS vlast",
    "daily": "sum(event_count) AS cnt, sum(value_sum) AS vsum, max(value_max) AS vmax, max(value_last) AS vlast",
}


def _rollup_sql(
    keys: list[str], segments: list[tuple[str, datetime, datetime]], params: dict[str, Any], extra_where: str
) -> str:
    parts = []
    for i, (kind, lo, hi) in enumerate(segments):
        col, typ = _TIME[kind]
        params[f"lo{i}"], params[f"hi{i}"] = (lo.date(), hi.date()) if kind == "daily" else (lo, hi)
        select_keys = [f"{_KEY_EXPR[k][kind]} AS {k}" for k in keys]
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        parts.append(
            f"SELECT {', '.join([*select_keys, _PARTIALS[kind]])} FROM {_TABLE[kind]} "
            f"WHERE organization_id = {{org:String}} AND {col} >= {{lo{i}:{typ}}} AND {col} < {{hi{i}:{typ}}}"
            f"{extra_where}{group}"
        )
    union = " UNION ALL ".join(parts)
    outer_keys = ", ".join(keys)
    select = (
        outer_keys + ", " if keys else ""
    ) + "sum(cnt) AS cnt, sum(vsum) AS vsum, max(vmax) AS vmax, max(vlast) AS vlast"
    tail = f" GROUP BY {outer_keys} ORDER BY {outer_keys}" if keys else ""
    return f"SELECT {select} FROM ({union}){tail}"


def _group_keys(group_by: GroupBy) -> list[str]:
    return {"day": ["bucket_day"], "hour": ["bucket_hour"], "customer": ["customer"], None: []}[group_by]


def usage(
    store: AnalyticsStore,
    organization_id: str,
    event_name: str,
    aggregation: Aggregation = "sum",
    *,
    start: datetime,
    end: datetime,
    value_key: str | None = None,
    customer_id: str | None = None,
    group_by: GroupBy = None,
    property_filters: Mapping[str, str] | None = None,
) -> list[UsageRow]:
    """Usage of one meter (event name) of one organization over [start, end).

    aggregation: sum / max / last of `value` (or of the numeric property `value_key`),
    count of events, unique_count of distinct `value`s (or of property `value_key`'s values).
    group_by: None (one row, even with no events: value 0 for sum/count/unique_count, None
    for max/last), "day" / "hour" (UTC buckets), "customer"; groups without events are not
    returned. customer_id / property_filters restrict the events counted.
    """
    start, end = _check_common(organization_id, start, end)
    if not _is_aggregation(aggregation):
        raise QueryError(f"aggregation must be one of {', '.join(AGGREGATIONS)}")
    if group_by not in GROUP_BYS:
        raise QueryError("group_by must be day, hour, customer or empty")
    if not isinstance(event_name, str) or not event_name:
        raise QueryError("event_name is required")
    if value_key is not None and (not isinstance(value_key, str) or not value_key):
        raise QueryError("value_key must be a non-empty string")

    params: dict[str, Any] = {"org": organization_id, "name": event_name}
    where = " AND event_name = {name:String}"
    if customer_id is not None:
        params["customer"] = customer_id
        where += " AND customer_id = {customer:String}"
    keys = _group_keys(group_by)

    use_rollups = (
        aggregation != "unique_count" and (value_key is None or aggregation == "count") and not property_filters
    )
    if use_rollups:
        segments = plan_segments(start, end, allow_daily=group_by != "hour")
        sql = _rollup_sql(keys, segments, params, where)
        rows = store.query(sql, params)
        out = []
        for row in rows:
            key_values = row[: len(keys)]
            cnt, vsum, vmax, vlast = row[len(keys) :]
            cnt = int(cnt)
            if cnt == 0:
                continue
            value = {"sum": vsum, "count": Decimal(cnt), "max": vmax, "last": vlast[2] if vlast else None}[aggregation]
            out.append(_row(keys, key_values, value, cnt))
    else:
        out = _raw_usage(store, params, where, keys, aggregation, start, end, value_key, property_filters or {})
    if group_by is None and not out:
        out = [UsageRow(None, None, _ZERO if aggregation in ("sum", "count", "unique_count") else None, 0)]
    return out


def _row(keys: list[str], key_values: tuple[Any, ...], value: Decimal | None, cnt: int) -> UsageRow:
    bucket = None
    customer = None
    for k, v in zip(keys, key_values, strict=True):
        if k.startswith("bucket"):
            bucket = v if v.tzinfo else v.replace(tzinfo=UTC)
        elif k == "customer":
            customer = v
    return UsageRow(bucket, customer, value, cnt)


def _raw_usage(
    store: AnalyticsStore,
    params: dict[str, Any],
    where: str,
    keys: list[str],
    aggregation: str,
    start: datetime,
    end: datetime,
    value_key: str | None,
    property_filters: Mapping[str, str],
) -> list[UsageRow]:
    params["lo"], params["hi"] = start, end
    where = (
        " WHERE organization_id = {org:String}"
        " AND timestamp >= {lo:DateTime64(6, 'UTC')} AND timestamp < {hi:DateTime64(6, 'UTC')}" + where
    )
    for i, (k, v) in enumerate(sorted(property_filters.items())):
        params[f"fk{i}"], params[f"fv{i}"] = str(k), str(v)
        where += f" AND properties[{{fk{i}:String}}] = {{fv{i}:String}}"
    if value_key is not None:
        params["vk"] = value_key
    if aggregation == "unique_count":
        if value_key is not None:
            where += " AND mapContains(properties, {vk:String})"
            agg = "toDecimal128(uniqExact(properties[{vk:String}]), 0)"
        else:
            agg = "toDecimal128(uniqExact(value), 0)"
        value_expr = None
    elif aggregation == "count":
        agg = "toDecimal128(count(), 0)"
        value_expr = None
    else:
        value_expr = "toDecimal128OrNull(properties[{vk:String}], 12)" if value_key else "value"
        if value_key:
            where += " AND mapContains(properties, {vk:String}) AND v IS NOT NULL"
        agg = {"sum": "sum(v)", "max": "max(v)", "last": "max((timestamp, identifier, v)).3"}[aggregation]
    select_keys = [f"{_KEY_EXPR[k]['raw']} AS {k}" for k in keys]
    source = f"(SELECT *, {value_expr} AS v FROM usage_events{where})" if value_expr else f"usage_events{where}"
    sql = f"SELECT {', '.join([*select_keys, 'count() AS cnt', agg + ' AS val'])} FROM {source}"
    if keys:
        sql += f" GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}"
    out = []
    for row in store.query(sql, params):
        cnt = int(row[len(keys)])
        if cnt == 0:
            continue
        out.append(_row(keys, row[: len(keys)], row[len(keys) + 1], cnt))
    return out


def summary(store: AnalyticsStore, organization_id: str, start: datetime, end: datetime) -> UsageSummary:
    """Per meter: events, value sum, distinct customers; interactions per type; dead letters."""
    start, end = _check_common(organization_id, start, end)
    params: dict[str, Any] = {"org": organization_id}
    segments = plan_segments(start, end)
    inner = _rollup_sql(["event_name", "customer"], segments, params, "")
    meters_sql = (
        "SELECT event_name, sum(cnt), sum(vsum), uniqExactIf(customer, cnt > 0) "
        f"FROM ({inner}) GROUP BY event_name HAVING sum(cnt) > 0 ORDER BY event_name"
    )
    totals_sql = f"SELECT sum(cnt), sum(vsum), uniqExactIf(customer, cnt > 0) FROM ({inner})"
    meters = [MeterSummary(name, int(c), vs, int(cu)) for name, c, vs, cu in store.query(meters_sql, params)]
    total_cnt, total_sum, total_customers = store.query(totals_sql, params)[0]
    p2 = {"org": organization_id, "lo": start, "hi": end}
    interactions = {
        t: int(n)
        for t, n in store.query(
            "SELECT type, uniqExact(event_id) FROM interactions WHERE organization_id = {org:String} "
            "AND occurred_at >= {lo:DateTime64(6, 'UTC')} AND occurred_at < {hi:DateTime64(6, 'UTC')} "
            "GROUP BY type ORDER BY type",
            p2,
        )
    }
    dead = store.query(
        "SELECT uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM usage_dead_letters "
        "WHERE organization_id = {org:String} AND received_at >= {lo:DateTime64(6, 'UTC')} "
        "AND received_at < {hi:DateTime64(6, 'UTC')}",
        p2,
    )[0][0]
    return UsageSummary(
        organization_id=organization_id,
        start=start,
        end=end,
        event_count=int(total_cnt or 0),
        value_sum=total_sum if total_sum is not None else _ZERO,
        customers=int(total_customers or 0),
        meters=meters,
        interactions=interactions,
        interaction_count=sum(interactions.values()),
        dead_letters=int(dead),
    )


def meter_totals(
    store: AnalyticsStore,
    organization_id: str,
    meters: Iterable[MeterDefinition],
    *,
    start: datetime,
    end: datetime,
) -> dict[str, UsageRow]:
    """Each meter's figure over [start, end), keyed by its event name: `usage_for_meter(...)[0]`,
    the very row `GET /v1/analytics/usage?meter=...` answers, so the summary and the usage
    route cannot disagree. (The summary's own per-event-name `value_sum` is the sum of the
    events' `value` field; a meter may measure something else: a property (`valueKey`), a
    count, a max, only the events its `filters` match.)"""
    return {
        meter.eventName: usage_for_meter(store, organization_id, meter, start=start, end=end)[0] for meter in meters
    }


async def ausage(
    store: AnalyticsStore, organization_id: str, event_name: str, aggregation: Aggregation = "sum", **kw: Any
) -> list[UsageRow]:
    """`usage` in a worker thread, for async handlers."""
    return await asyncio.to_thread(lambda: usage(store, organization_id, event_name, aggregation, **kw))


async def asummary(store: AnalyticsStore, organization_id: str, start: datetime, end: datetime) -> UsageSummary:
    return await asyncio.to_thread(summary, store, organization_id, start, end)


def usage_for_meter(
    store: AnalyticsStore,
    organization_id: str,
    meter: MeterDefinition,
    *,
    start: datetime,
    end: datetime,
    customer_id: str | None = None,
    group_by: GroupBy = None,
) -> list[UsageRow]:
    """`usage` for a meter (see MeterDefinition)."""
    if getattr(meter, "organizationId", organization_id) != organization_id:
        raise QueryError("meter belongs to another organization")
    filters = getattr(meter, "filters", None)
    if filters is not None and not isinstance(filters, dict):
        raise QueryError("meter filters must be an object of property: value")
    aggregation = str(getattr(meter.aggregation, "value", meter.aggregation))
    if not _is_aggregation(aggregation):
        raise QueryError(f"aggregation must be one of {', '.join(AGGREGATIONS)}")
    return usage(
        store,
        organization_id,
        meter.eventName,
        aggregation,
        start=start,
        end=end,
        value_key=meter.valueKey,
        customer_id=customer_id,
        group_by=group_by,
        property_filters={str(k): str(v) for k, v in (filters or {}).items()} or None,
    )


async def meter_total(
    store: AnalyticsStore,
    organization_id: str,
    meter: MeterDefinition,
    customer_id: str,
    start: datetime,
    end: datetime,
) -> Decimal | None:
    """One customer's total of `meter` over [start, end), the figure a metered invoice line
    bills (the usage route's ungrouped row for that customer), in a worker thread."""
    rows = await asyncio.to_thread(
        lambda: usage_for_meter(store, organization_id, meter, start=start, end=end, customer_id=customer_id)
    )
    return rows[0].value
