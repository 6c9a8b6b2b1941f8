"""Meter writes, called by the consumers inside the command's transaction.

Each function takes a tenant session, changes rows, and never commits. One organization's
commands are applied in order (Kafka key = organization), so the eventName check below is
not raced by another create of the same organization; the unique index
(organization_id, event_name) is the second wall.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.meters.repository import get_meter, get_meter_by_event_name
from billing.models import Meter
from billing.requests.patch import parse_changes
from contracts.enums import MeterAggregation
from contracts.meters import MeterCreate, MeterUpdate


async def create_meter(session: AsyncSession, data: MeterCreate) -> Meter:
    existing = await get_meter_by_event_name(session, data.eventName)
    if existing is not None:
        raise InvalidRequest(
            f"A meter for the event name '{data.eventName}' already exists: '{existing.id}'. "
            "An event name can have only one meter.",
            code="resource_already_exists",
            param="eventName",
        )
    meter = Meter(
        id=new_id("meter"),
        organization_id=tenant_of(session),
        display_name=data.displayName,
        event_name=data.eventName,
        aggregation=MeterAggregation(data.aggregation),
        value_key=data.valueKey,
        filters=dict(data.filters),
        active=True,
    )
    session.add(meter)
    await session.flush()
    return meter


async def update_meter(session: AsyncSession, meter_id: str, changes: dict[str, Any]) -> Meter:
    """`changes` holds only the fields the client sent."""
    update = parse_changes(MeterUpdate, changes)
    meter = await get_meter(session, meter_id, for_update=True)
    if meter is None:
        raise ResourceMissing("meter", meter_id)
    for field in update.model_fields_set:
        value = getattr(update, field)
        if value is None:
            raise InvalidRequest(f"{field} cannot be null.", code="parameter_invalid", param=field)
        if field == "displayName":
            meter.display_name = value
        elif field == "active":
            meter.active = value
    await session.flush()
    return meter
