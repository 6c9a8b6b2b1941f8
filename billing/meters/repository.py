"""Tenant-scoped meter reads for the API and the services (the tenant session adds the filter)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.meters.rules import MeterRule, value_refusal
from billing.models import Meter
from contracts.resources import Meter as MeterResource


async def get_meter(session: AsyncSession, meter_id: str, *, for_update: bool = False) -> Meter | None:
    return await get_one(session, Meter, Meter.id, meter_id, for_update=for_update)


async def get_meter_by_event_name(session: AsyncSession, event_name: str) -> Meter | None:
    return await get_one(session, Meter, Meter.event_name, event_name)


async def meters_by_event_name(session: AsyncSession, event_names: Iterable[str]) -> dict[str, Meter]:
    """{eventName: meter} for those of `event_names` that have a meter (active or not)."""
    tenant_of(session)
    names = sorted(set(event_names))
    if not names:
        return {}
    rows = await session.scalars(select(Meter).where(Meter.event_name.in_(names)))
    return {meter.event_name: meter for meter in rows}


async def list_meters(session: AsyncSession, page: PageRequest, *, active: bool | None = None) -> Page[Meter]:
    tenant_of(session)
    statement = select(Meter)
    if active is not None:
        statement = statement.where(Meter.active.is_(active))
    return await paginate(session, statement, Meter, page, "meter")


async def all_meters(session: AsyncSession) -> list[Meter]:
    """Every meter of the organization, oldest first (the dashboard's meter list)."""
    tenant_of(session)
    return list((await session.scalars(select(Meter).order_by(Meter.created_at, Meter.id))).all())


async def check_usage_references(
    session: AsyncSession, events: list[tuple[str, str, Mapping[str, Any]]], *, batch: bool
) -> None:
    """Every (eventName, customerId, properties) of a usage request must name an active
    meter and a live customer of this organization, and carry what the meter measures (its
    valueKey property, billing/meters/rules.py); the first one that does not is refused with
    its exact parameter (`events[3][customerId]`, `events[3][properties][tokens]`, or
    `customerId` / `properties[tokens]` for a single event)."""
    from billing.errors import InvalidRequest
    from billing.models import Customer

    tenant_of(session)
    meters = await meters_by_event_name(session, (name for name, _, _ in events))
    customer_ids = sorted({customer for _, customer, _ in events})
    live: set[str] = set()
    for start in range(0, len(customer_ids), 1000):
        chunk = customer_ids[start : start + 1000]
        rows = await session.scalars(select(Customer.id).where(Customer.id.in_(chunk), Customer.deleted.is_(False)))
        live.update(rows)

    def param(index: int, field: str) -> str:
        return f"events[{index}][{field}]" if batch else field

    for index, (name, customer, properties) in enumerate(events):
        meter = meters.get(name)
        if meter is None:
            raise InvalidRequest(
                f"No meter has the event name '{name}'. Create one with POST /v1/meters before sending its events.",
                code="resource_missing",
                param=param(index, "eventName"),
            )
        if not meter.active:
            raise InvalidRequest(
                f"The meter '{meter.id}' for the event name '{name}' is inactive: it accepts no events.",
                code="meter_inactive",
                param=param(index, "eventName"),
            )
        if customer not in live:
            raise InvalidRequest(
                f"No such customer: '{customer}'", code="resource_missing", param=param(index, "customerId")
            )
        refusal = value_refusal(MeterRule.of(MeterResource.model_validate(meter)), name, properties)
        if refusal is not None:
            raise InvalidRequest(
                refusal.message,
                code="parameter_missing" if refusal.code == "missing_value_key" else "parameter_invalid",
                param=f"events[{index}][properties][{refusal.key}]" if batch else f"properties[{refusal.key}]",
            )
