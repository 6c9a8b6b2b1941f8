"""Subscription schedule commands: parse, call billing.subscription_schedules, tell the
schedule's events and those of the subscription it created, changed or canceled."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing import clock
from billing.subscription_schedules import repository as schedule_reads
from billing.subscription_schedules import service
from billing.subscription_schedules.service import ScheduleChange, Transition
from billing.subscriptions import repository as subscription_reads
from consumers.registry import Applied, CommandRouter
from consumers.subscriptions import change_events, created_events
from contracts.enums import SubscriptionScheduleStatus, SubscriptionStatus
from contracts.events import (
    SUBSCRIPTION_DELETED,
    SUBSCRIPTION_SCHEDULE_CANCELED,
    SUBSCRIPTION_SCHEDULE_COMPLETED,
    SUBSCRIPTION_SCHEDULE_CREATED,
    SUBSCRIPTION_SCHEDULE_RELEASED,
    SUBSCRIPTION_SCHEDULE_UPDATED,
    SUBSCRIPTION_UPDATED,
    DomainEvent,
    EventType,
)
from contracts.subscription_schedules import (
    SubscriptionScheduleAdvance,
    SubscriptionScheduleCancel,
    SubscriptionScheduleCreate,
    SubscriptionScheduleDetails,
    SubscriptionScheduleRelease,
    SubscriptionScheduleUpdateCommand,
)

router = CommandRouter()

_SCHEDULE_EVENTS: dict[Transition, tuple[EventType[SubscriptionScheduleDetails], ...]] = {
    Transition.none: (),
    Transition.created: (SUBSCRIPTION_SCHEDULE_CREATED,),
    Transition.updated: (SUBSCRIPTION_SCHEDULE_UPDATED,),
    Transition.started: (SUBSCRIPTION_SCHEDULE_UPDATED,),
    Transition.advanced: (SUBSCRIPTION_SCHEDULE_UPDATED,),
    Transition.released: (SUBSCRIPTION_SCHEDULE_RELEASED,),
    Transition.canceled: (SUBSCRIPTION_SCHEDULE_CANCELED,),
    Transition.completed: (SUBSCRIPTION_SCHEDULE_COMPLETED,),
}


async def _applied(session: AsyncSession, change: ScheduleChange) -> Applied[SubscriptionScheduleDetails]:
    (schedule,) = await schedule_reads.details(session, [change.schedule])
    resource = schedule.model_dump(mode="json")
    events = [event.of(resource) for event in _SCHEDULE_EVENTS[change.transition]]
    if change.transition is Transition.completed and schedule.status is SubscriptionScheduleStatus.released:
        events.append(SUBSCRIPTION_SCHEDULE_RELEASED.of(resource))
    events.extend(await _subscription_events(session, change))
    return Applied("subscription_schedule", resource, events)


async def _subscription_events(session: AsyncSession, change: ScheduleChange) -> list[DomainEvent]:
    if change.created is not None:
        return await created_events(session, change.created)
    if change.changed is None:
        return []
    (subscription,) = await subscription_reads.details(session, [change.changed.subscription])
    told = SUBSCRIPTION_DELETED if subscription.status is SubscriptionStatus.canceled else SUBSCRIPTION_UPDATED
    return [told.of(subscription.model_dump(mode="json")), *await change_events(session, change.changed)]


@router.handles(SubscriptionScheduleCreate)
async def create(session: AsyncSession, command: SubscriptionScheduleCreate) -> Applied[SubscriptionScheduleDetails]:
    return await _applied(session, await service.create_schedule(session, command, clock.now()))


@router.handles(SubscriptionScheduleUpdateCommand)
async def update(
    session: AsyncSession, command: SubscriptionScheduleUpdateCommand
) -> Applied[SubscriptionScheduleDetails]:
    return await _applied(session, await service.update_schedule(session, command.id, command.changes, clock.now()))


@router.handles(SubscriptionScheduleRelease)
async def release(session: AsyncSession, command: SubscriptionScheduleRelease) -> Applied[SubscriptionScheduleDetails]:
    return await _applied(session, await service.release_schedule(session, command, clock.now()))


@router.handles(SubscriptionScheduleCancel)
async def cancel(session: AsyncSession, command: SubscriptionScheduleCancel) -> Applied[SubscriptionScheduleDetails]:
    return await _applied(session, await service.cancel_schedule(session, command, clock.now()))


@router.handles(SubscriptionScheduleAdvance)
async def advance(session: AsyncSession, command: SubscriptionScheduleAdvance) -> Applied[SubscriptionScheduleDetails]:
    return await _applied(session, await service.advance_schedule(session, command, clock.now()))
