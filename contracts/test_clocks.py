"""Test clock requests and commands (Stripe's /v1/test_helpers/test_clocks, here
/v1/test-clocks): a frozen time for the customers created on it, advanced on request. The
resource is `contracts.resources.TestClock`, generated from Prisma."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from contracts.commands import Command
from contracts.common import RequestModel
from contracts.resources import TestClock


class TestClockCreate(Command[TestClock]):
    command_type: ClassVar[str] = "test_clock.create"

    frozenTime: AwareDatetime = Field(description="the clock's time to begin with")
    name: str | None = Field(default=None, max_length=300)


class TestClockAdvanceRequest(RequestModel):
    frozenTime: AwareDatetime = Field(description="later than the clock's time")


class TestClockAdvance(Command[TestClock]):
    """ready -> advancing: the scheduler moves the clock from one due moment of its
    customers' work to the next until `frozenTime`, then it is ready."""

    command_type: ClassVar[str] = "test_clock.advance"

    id: str = Field(max_length=64)
    frozenTime: AwareDatetime


class TestClockStep(Command[TestClock]):
    """Published by the scheduler once the work due at an advancing clock's `frozenTime`
    is applied: the clock moves on to the next due moment (or to where it advances to)."""

    command_type: ClassVar[str] = "test_clock.step"

    id: str = Field(max_length=64)
    frozenTime: AwareDatetime
    advancingTo: AwareDatetime


class TestClockDelete(Command[TestClock]):
    """The clock, its customers and everything of theirs."""

    command_type: ClassVar[str] = "test_clock.delete"

    id: str = Field(max_length=64)
