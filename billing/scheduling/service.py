"""Claiming due work across every organization, once, whatever number of schedulers run.

A claim locks the due rows it reads (`FOR UPDATE SKIP LOCKED`: a second scheduler takes
other rows rather than wait) and records one `scheduled_commands` row per unit, in the
transaction the caller commits only after Kafka acknowledged the commands. A crash
before that commit leaves no claim and the next pass publishes the same commands again
(the same ids: the consumer's dedupe answers the repeat); after it, the claim stands and
nothing is published twice. The claim's key is the command id, derived from the command
(its type and payload: the subscription and the period end of a renewal): the last word
should two claims ever meet.

Work is due by its customer's time: the wall clock's, or its test clock's frozen time
(billing/clocks). An advancing test clock is stepped on once nothing is in flight for its
customers: no command published for them unapplied, no payment of theirs at the gateway."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing import clock
from billing.models import Customer, Payment, ProcessedCommand, ScheduledCommand, TestClock
from billing.payments.attempts import IN_FLIGHT
from billing.scheduling.due import DUE_KINDS, DueKind
from contracts.commands import Command
from contracts.enums import TestClockStatus
from contracts.envelopes import Actor, CommandEnvelope, command_id_for, request_hash
from contracts.test_clocks import TestClockStep

ACTOR = Actor(type="system", id="scheduler")


@dataclass(frozen=True)
class DueWork:
    organization_id: str
    subject_id: str
    due_at: datetime
    command: Command[Any]
    # the test clock whose time made it due
    test_clock_id: str | None = None
    # the command with what was measured when it was claimed (a draft's usage): published
    # instead of `command`, under `command`'s id (the unit's, whatever was measured)
    measured: Command[Any] | None = None

    @property
    def command_id(self) -> str:
        """The same for the same unit, whichever scheduler publishes it and however often."""
        unit = request_hash(self.command.command_type, self.command.payload())
        return command_id_for(self.organization_id, f"scheduler:{unit}")

    def envelope(self, issued_at: datetime) -> CommandEnvelope:
        return CommandEnvelope(
            commandId=self.command_id,
            type=self.command.command_type,
            organizationId=self.organization_id,
            actor=ACTOR,
            issuedAt=issued_at,
            payload=(self.measured or self.command).payload(),
        )


def _due(
    kind: DueKind, columns: list[Any], now: datetime, by_test_clock: bool, organization_ids: Collection[str] | None
) -> Select[Any]:
    """The units of `kind` due and unclaimed: for customers on the wall clock by `now`, or
    for customers on a test clock by its time."""
    subject = kind.subject
    statement = select(*columns).join(
        Customer, and_(Customer.organization_id == subject.organization_id, Customer.id == subject.customer_id)
    )
    moment: ColumnElement[datetime]
    if by_test_clock:
        statement = statement.join(
            TestClock,
            and_(TestClock.organization_id == Customer.organization_id, TestClock.id == Customer.test_clock_id),
        )
        moment = TestClock.frozen_time.expression
    else:
        statement = statement.where(Customer.test_clock_id.is_(None))
        moment = literal(now)
    claimed = exists().where(
        ScheduledCommand.subject_id == subject.id,
        ScheduledCommand.type == kind.command_type,
        ScheduledCommand.due_at == kind.due_at,
    )
    statement = statement.where(kind.is_due(moment), ~claimed)
    if organization_ids is not None:
        statement = statement.where(subject.organization_id.in_(organization_ids))
    return statement


async def count_due(
    session: AsyncSession, kind: DueKind, now: datetime, organization_ids: Collection[str] | None = None
) -> int:
    """How many units of `kind` are due (by `now`, or their test clock's time) and not claimed yet."""
    counted = 0
    for by_test_clock in (False, True):
        statement = _due(kind, [func.count()], now, by_test_clock, organization_ids).select_from(kind.subject)
        counted += (await session.scalar(statement)) or 0
    return counted


async def claim_due(
    session: AsyncSession,
    kind: DueKind,
    now: datetime,
    limit: int,
    organization_ids: Collection[str] | None = None,
) -> tuple[int, list[DueWork]]:
    """Up to `limit` units of `kind` due (by `now`, or their test clock's time), earliest
    first, claimed in the session's transaction: how many due rows it found, and the units
    it claimed (a row another claim took in between is not among them)."""
    subject = kind.subject
    found: list[DueWork] = []
    for by_test_clock in (False, True):
        statement = (
            _due(
                kind,
                [subject.organization_id, subject.id, kind.due_at, Customer.test_clock_id],
                now,
                by_test_clock,
                organization_ids,
            )
            .select_from(subject)
            .order_by(kind.due_at)
            .limit(limit)
            .with_for_update(of=subject, skip_locked=True)
        )
        found = [
            DueWork(organization_id, subject_id, due_at, kind.command(subject_id, due_at), test_clock_id)
            for organization_id, subject_id, due_at, test_clock_id in await session.execute(statement)
        ]
        if found:
            break
    return len(found), await _claim(session, found)


async def claim_test_clock_steps(
    session: AsyncSession, limit: int, organization_ids: Collection[str] | None = None
) -> tuple[int, list[DueWork]]:
    """A step for each advancing test clock with nothing in flight for its customers (as
    claim_due answers)."""
    unapplied = exists().where(
        ScheduledCommand.test_clock_id == TestClock.id,
        ~exists().where(ProcessedCommand.command_id == ScheduledCommand.command_id),
    )
    charging = exists().where(
        Customer.organization_id == TestClock.organization_id,
        Customer.test_clock_id == TestClock.id,
        Payment.organization_id == Customer.organization_id,
        Payment.customer_id == Customer.id,
        Payment.status.in_(IN_FLIGHT),
    )
    statement = (
        select(TestClock.organization_id, TestClock.id, TestClock.frozen_time, TestClock.advancing_to)
        .where(TestClock.status == TestClockStatus.advancing, ~unapplied, ~charging)
        .limit(limit)
        .with_for_update(of=TestClock, skip_locked=True)
    )
    if organization_ids is not None:
        statement = statement.where(TestClock.organization_id.in_(organization_ids))
    steps = [
        DueWork(
            organization_id, clock_id, frozen, TestClockStep(id=clock_id, frozenTime=frozen, advancingTo=to), clock_id
        )
        for organization_id, clock_id, frozen, to in await session.execute(statement)
    ]
    # a command applied after this pass looked for due work may have made more due at the
    # clock's time (a renewal's draft to finalize): the clock waits for the next pass
    steps = [step for step in steps if not await _due_by_test_clock(session, step.subject_id)]
    return len(steps), await _claim(session, steps)


async def _due_by_test_clock(session: AsyncSession, test_clock_id: str) -> bool:
    """Whether any unit is due, unclaimed, for the clock's customers by its time."""
    for kind in DUE_KINDS:
        statement = _due(kind, [func.count()], clock.now(), True, None).select_from(kind.subject)
        if await session.scalar(statement.where(TestClock.id == test_clock_id)):
            return True
    return False


async def _claim(session: AsyncSession, found: list[DueWork]) -> list[DueWork]:
    """The units of `found` this claim won (a concurrent one may have taken some)."""
    if not found:
        return []
    claims = (
        insert(ScheduledCommand)
        .values(
            [
                {
                    "command_id": work.command_id,
                    "organization_id": work.organization_id,
                    "type": work.command.command_type,
                    "subject_id": work.subject_id,
                    "due_at": work.due_at,
                    "test_clock_id": work.test_clock_id,
                }
                for work in found
            ]
        )
        .on_conflict_do_nothing()
        .returning(ScheduledCommand.command_id)
    )
    won = set((await session.scalars(claims)).all())
    return [work for work in found if work.command_id in won]
