"""Meter commands: parse, call billing.meters.service, report what happened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.meters import service
from consumers.registry import Applied, CommandRouter
from contracts.events import METER_CREATED, METER_UPDATED, EventType
from contracts.meters import MeterCreate, MeterUpdateCommand
from contracts.resources import Meter

router = CommandRouter()


def _applied(meter: object, event: EventType[Meter]) -> Applied[Meter]:
    resource = Meter.model_validate(meter).model_dump(mode="json")
    return Applied("meter", resource, [event.of(resource)])


@router.handles(MeterCreate)
async def create(session: AsyncSession, command: MeterCreate) -> Applied[Meter]:
    return _applied(await service.create_meter(session, command), METER_CREATED)


@router.handles(MeterUpdateCommand)
async def update(session: AsyncSession, command: MeterUpdateCommand) -> Applied[Meter]:
    return _applied(await service.update_meter(session, command.id, command.changes), METER_UPDATED)
