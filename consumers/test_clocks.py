"""Test clock commands: parse, call billing.clocks.service, report what happened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clocks import service
from consumers.registry import Applied, CommandRouter
from contracts.events import TEST_CLOCK_ADVANCING, TEST_CLOCK_CREATED, TEST_CLOCK_DELETED, TEST_CLOCK_READY
from contracts.resources import TestClock
from contracts.test_clocks import TestClockAdvance, TestClockCreate, TestClockDelete, TestClockStep

router = CommandRouter()


@router.handles(TestClockCreate)
async def create(session: AsyncSession, command: TestClockCreate) -> Applied[TestClock]:
    resource = TestClock.model_validate(await service.create_test_clock(session, command)).model_dump(mode="json")
    return Applied("test_clock", resource, [TEST_CLOCK_CREATED.of(resource)])


@router.handles(TestClockAdvance)
async def advance(session: AsyncSession, command: TestClockAdvance) -> Applied[TestClock]:
    resource = TestClock.model_validate(await service.advance_test_clock(session, command)).model_dump(mode="json")
    return Applied("test_clock", resource, [TEST_CLOCK_ADVANCING.of(resource)])


@router.handles(TestClockStep)
async def step(session: AsyncSession, command: TestClockStep) -> Applied[TestClock]:
    test_clock, ready = await service.step_test_clock(session, command)
    resource = TestClock.model_validate(test_clock).model_dump(mode="json")
    return Applied("test_clock", resource, [TEST_CLOCK_READY.of(resource)] if ready else [])


@router.handles(TestClockDelete)
async def delete(session: AsyncSession, command: TestClockDelete) -> Applied[TestClock]:
    resource = TestClock.model_validate(await service.delete_test_clock(session, command.id)).model_dump(mode="json")
    return Applied("test_clock", resource, [TEST_CLOCK_DELETED.of(resource)])
