"""Tenant-scoped subscription schedule reads (the tenant session adds the filter),
answered as `SubscriptionScheduleDetails`: the schedule with its phases."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.models import SubscriptionSchedule, SubscriptionSchedulePhase
from contracts.enums import SubscriptionScheduleStatus
from contracts.resources import SubscriptionSchedule as ScheduleResource
from contracts.resources import SubscriptionSchedulePhase as PhaseResource
from contracts.subscription_schedules import CurrentPhase, SubscriptionScheduleDetails


def _current_phase(schedule: SubscriptionSchedule, phases: list[PhaseResource]) -> CurrentPhase | None:
    if schedule.status is not SubscriptionScheduleStatus.active or schedule.current_phase_index is None:
        return None
    phase = phases[schedule.current_phase_index]
    assert phase.endDate is not None  # every phase is stored with its end
    return CurrentPhase(startDate=phase.startDate, endDate=phase.endDate)


async def details(
    session: AsyncSession, schedules: Sequence[SubscriptionSchedule]
) -> list[SubscriptionScheduleDetails]:
    """Each schedule with its phases in order: one query for the lot."""
    rows = (
        await session.scalars(
            select(SubscriptionSchedulePhase)
            .where(SubscriptionSchedulePhase.schedule_id.in_([schedule.id for schedule in schedules]))
            .order_by(SubscriptionSchedulePhase.schedule_id, SubscriptionSchedulePhase.position)
        )
    ).all()
    phases_of: dict[str, list[PhaseResource]] = {}
    for row in rows:
        phases_of.setdefault(row.schedule_id, []).append(PhaseResource.model_validate(row))
    answered = []
    for schedule in schedules:
        phases = phases_of.get(schedule.id, [])
        answered.append(
            SubscriptionScheduleDetails(
                **ScheduleResource.model_validate(schedule).model_dump(),
                phases=phases,
                currentPhase=_current_phase(schedule, phases),
            )
        )
    return answered


async def get_schedule(session: AsyncSession, schedule_id: str) -> SubscriptionScheduleDetails | None:
    schedule = await get_one(session, SubscriptionSchedule, SubscriptionSchedule.id, schedule_id)
    if schedule is None:
        return None
    (found,) = await details(session, [schedule])
    return found


async def list_schedules(
    session: AsyncSession,
    page: PageRequest,
    *,
    customer: str | None = None,
    status: SubscriptionScheduleStatus | None = None,
) -> Page[SubscriptionScheduleDetails]:
    """Newest first."""
    tenant_of(session)
    statement = select(SubscriptionSchedule)
    if customer is not None:
        statement = statement.where(SubscriptionSchedule.customer_id == customer)
    if status is not None:
        statement = statement.where(SubscriptionSchedule.status == status)
    found = await paginate(session, statement, SubscriptionSchedule, page, "subscription_schedule")
    return Page(await details(session, found.items), found.has_more)
