"""Tax rate commands: parse, call billing.tax_rates.service, report what happened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.tax_rates import service
from consumers.registry import Applied, CommandRouter
from contracts.events import TAX_RATE_CREATED, TAX_RATE_UPDATED, EventType
from contracts.resources import TaxRate
from contracts.tax_rates import TaxRateCreate, TaxRateUpdateCommand

router = CommandRouter()


def _applied(rate: object, event: EventType[TaxRate]) -> Applied[TaxRate]:
    resource = TaxRate.model_validate(rate).model_dump(mode="json")
    return Applied("tax_rate", resource, [event.of(resource)])


@router.handles(TaxRateCreate)
async def create(session: AsyncSession, command: TaxRateCreate) -> Applied[TaxRate]:
    return _applied(await service.create_tax_rate(session, command), TAX_RATE_CREATED)


@router.handles(TaxRateUpdateCommand)
async def update(session: AsyncSession, command: TaxRateUpdateCommand) -> Applied[TaxRate]:
    return _applied(await service.update_tax_rate(session, command.id, command.changes), TAX_RATE_UPDATED)
