"""The dashboard's data: one JSON document per page load, for one organization.

Usage over time (per meter, per UTC day), top customers of one meter, usage by product
(events of the meters that the product's prices refer to) and interactions by type. Every
number comes from analytics.queries with the organization of the signed-in key; names come
from Postgres through a tenant session.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.queries import summary, usage, usage_for_meter
from analytics.store import AnalyticsStore
from api.controllers.analytics import decimal_text, iso
from billing.meters.repository import all_meters
from billing.models import Customer, Price, Product
from contracts.resources import Meter

MAX_SERIES = 8
TOP_CUSTOMERS = 10


def dashboard_period(days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Whole UTC days: today and the `days - 1` before it."""
    now = now or datetime.now(UTC)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return end - timedelta(days=days), end


async def overview(
    store: AnalyticsStore, db: AsyncSession, organization_id: str, days: int, selected: str | None
) -> dict[str, Any]:
    start, end = dashboard_period(days)
    meters = [Meter.model_validate(m) for m in await all_meters(db)]
    by_name = {m.eventName: m for m in meters}

    def read() -> dict[str, Any]:
        totals = summary(store, organization_id, start, end)
        seen = [m.event_name for m in totals.meters]
        names = [m.eventName for m in meters if m.eventName in seen] + [n for n in seen if n not in by_name]
        series = []
        for name in names[:MAX_SERIES]:
            meter = by_name.get(name)
            rows = (
                usage_for_meter(store, organization_id, meter, start=start, end=end, group_by="day")
                if meter
                else usage(store, organization_id, name, "sum", start=start, end=end, group_by="day")
            )
            series.append(
                {
                    "eventName": name,
                    "displayName": meter.displayName if meter else name,
                    "aggregation": str(meter.aggregation) if meter else "sum",
                    "points": [
                        {"day": iso(r.bucket), "value": decimal_text(r.value), "eventCount": r.event_count}
                        for r in rows
                    ],
                }
            )
        chosen = selected if selected in names else (names[0] if names else None)
        top: list[dict[str, Any]] = []
        if chosen is not None:
            meter = by_name.get(chosen)
            rows = (
                usage_for_meter(store, organization_id, meter, start=start, end=end, group_by="customer")
                if meter
                else usage(store, organization_id, chosen, "sum", start=start, end=end, group_by="customer")
            )
            rows.sort(key=lambda r: (r.value is not None, r.value or 0, r.event_count), reverse=True)
            top = [
                {"customerId": r.customer_id, "value": decimal_text(r.value), "eventCount": r.event_count}
                for r in rows[:TOP_CUSTOMERS]
            ]
        return {"totals": totals, "series": series, "selected": chosen, "top": top}

    result = await asyncio.to_thread(read)
    totals = result["totals"]

    names = (
        {
            c.id: c.name or c.email
            for c in (
                await db.scalars(select(Customer).where(Customer.id.in_([t["customerId"] for t in result["top"]])))
            )
        }
        if result["top"]
        else {}
    )
    for row in result["top"]:
        row["name"] = names.get(row["customerId"])

    meter_ids = {m.id: m.eventName for m in meters}
    products: dict[str, dict[str, Any]] = {}
    if meter_ids:
        links = await db.execute(
            select(Price.meter_id, Product.id, Product.name)
            .join(Product, Product.id == Price.product_id)
            .where(Price.meter_id.in_(list(meter_ids)))
        )
        events_of = {m.event_name: m.event_count for m in totals.meters}
        counted: set[tuple[str, str]] = set()
        for meter_id, product_id, product_name in links:
            entry = products.setdefault(
                product_id, {"productId": product_id, "name": product_name, "eventCount": 0, "eventNames": []}
            )
            assert meter_id is not None  # the query matched it among the meters' ids
            name = meter_ids[meter_id]
            if (product_id, name) not in counted:
                counted.add((product_id, name))
                entry["eventCount"] += events_of.get(name, 0)
                entry["eventNames"].append(name)
        linked = {n for p in products.values() for n in p["eventNames"]}
    else:
        linked = set()
    unlinked = sum(m.event_count for m in totals.meters if m.event_name not in linked)
    by_product = sorted(products.values(), key=lambda p: (-p["eventCount"], p["name"]))
    if unlinked:
        by_product.append({"productId": None, "name": "(no product)", "eventCount": unlinked, "eventNames": []})

    return {
        "object": "dashboard_overview",
        "from": iso(start),
        "to": iso(end),
        "days": days,
        "totals": {
            "eventCount": totals.event_count,
            "valueSum": decimal_text(totals.value_sum),
            "customers": totals.customers,
            "interactionCount": totals.interaction_count,
            "deadLetters": totals.dead_letters,
        },
        "meters": [
            {"id": m.id, "eventName": m.eventName, "displayName": m.displayName, "aggregation": str(m.aggregation)}
            for m in meters
        ],
        "usageOverTime": result["series"],
        "selectedMeter": result["selected"],
        "topCustomers": result["top"],
        "usageByProduct": by_product,
        "interactions": [
            {"type": t, "count": n} for t, n in sorted(totals.interactions.items(), key=lambda kv: -kv[1])
        ],
    }
