"""Meter commands: parse, call billing.meters.service, report what happened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.meters import service
from consumers.registry import Applied, CommandRouter
from contracts.meters import MeterCreate, MeterUpdateCommand
from contracts.resources import Meter

router = CommandRouter()


def _applied(meter: object, event_type: str) -> Applied:
    resource = Meter.model_validate(meter).model_dump(mode="json")
    return Applied("meter", resource, [(event_type, resource)])


@router.command("meter.create", MeterCreate)
async def create(session: AsyncSession, payload: MeterCreate) -> Applied:
    return _applied(await service.create_meter(session, payload), "meter.created")


@router.command("meter.update", MeterUpdateCommand)
async def update(session: AsyncSession, payload: MeterUpdateCommand) -> Applied:
    return _applied(await service.update_meter(session, payload.id, payload.changes), "meter.updated")
