"""The one answer to "what time is it" for a customer, and the test clocks that give it.

A customer created on a test clock lives at the clock's `frozenTime`: every rule that
asks the time for one of its objects asks `now_for`, and the scheduler takes the clock's
time as now for that clock's customers. Advancing a clock does not jump: the scheduler
steps it to each moment something falls due for its customers (a period end, a trial
reminder, a payment retry), waits until that work is applied (the commands it published,
the payments they started), then steps again, so a year runs twelve monthly renewals in
order, each at its own time. The clock is `ready` once it reached the time asked for.

Test clocks exist in an organization's test mode: while it has no Stripe account connected
or a test key (sk_test_/rk_test_) connected (billing/organizations/stripe_account.key_mode).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ScalarSelect, and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import clock
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.models import (
    CreditNote,
    Customer,
    Invoice,
    InvoiceItem,
    Payment,
    Refund,
    ScheduledCommand,
    Subscription,
    SubscriptionSchedule,
    TestClock,
)
from billing.scheduling.due import DUE_KINDS
from contracts.enums import TestClockStatus
from contracts.test_clocks import TestClockAdvance, TestClockCreate, TestClockStep

# Stripe's: a test clock and its objects are deleted by themselves after 30 days
LIFETIME: Final = timedelta(days=30)

# the objects whose customer's time the rules ask for
TimedModel = type[Subscription] | type[Invoice] | type[Payment] | type[CreditNote]


async def now_for_customer(session: AsyncSession, customer_id: str | ScalarSelect[str]) -> datetime:
    """Now for the customer: its test clock's time, or the wall clock's for a customer
    without one (or one that does not exist: the rule that asked refuses it)."""
    tenant_of(session)
    frozen = await session.scalar(
        select(TestClock.frozen_time)
        .join(
            Customer,
            and_(Customer.organization_id == TestClock.organization_id, Customer.test_clock_id == TestClock.id),
        )
        .where(Customer.id == customer_id)
    )
    return frozen if frozen is not None else clock.now()


async def now_for(session: AsyncSession, model: TimedModel, object_id: str) -> datetime:
    """Now for the customer of `object_id`, a `model` row."""
    return await now_for_customer(session, select(model.customer_id).where(model.id == object_id).scalar_subquery())


async def create_test_clock(session: AsyncSession, command: TestClockCreate) -> TestClock:
    created = clock.now()
    test_clock = TestClock(
        id=new_id("test_clock"),
        organization_id=tenant_of(session),
        name=command.name,
        frozen_time=command.frozenTime,
        status=TestClockStatus.ready,
        advancing_to=None,
        deletes_after=created + LIFETIME,
        created_at=created,
        updated_at=created,
    )
    session.add(test_clock)
    await session.flush()
    return test_clock


async def _locked(session: AsyncSession, test_clock_id: str) -> TestClock:
    test_clock = await get_one(session, TestClock, TestClock.id, test_clock_id, for_update=True)
    if test_clock is None:
        raise ResourceMissing("test_clock", test_clock_id)
    return test_clock


async def advance_test_clock(session: AsyncSession, command: TestClockAdvance) -> TestClock:
    """ready -> advancing toward `frozenTime` (forward only); the scheduler moves it."""
    test_clock = await _locked(session, command.id)
    if test_clock.status is not TestClockStatus.ready:
        raise InvalidRequest(
            f"Test clock {test_clock.id} is {test_clock.status}: advance it again once it is ready.",
            code="test_clock_not_ready",
        )
    if command.frozenTime <= test_clock.frozen_time:
        raise InvalidRequest(
            f"A test clock only moves forward: give a frozenTime after {test_clock.frozen_time.isoformat()}.",
            code="test_clock_advance_backwards",
            param="frozenTime",
        )
    test_clock.status, test_clock.advancing_to = TestClockStatus.advancing, command.frozenTime
    test_clock.updated_at = clock.now()
    await session.flush()
    return test_clock


async def next_due(session: AsyncSession, test_clock: TestClock) -> datetime | None:
    """The first moment after the clock's time at which work falls due for its customers."""
    moments = []
    for kind in DUE_KINDS:
        subject = kind.subject
        moments.append(
            select(func.min(kind.due_at))
            .select_from(subject)
            .join(
                Customer, and_(Customer.organization_id == subject.organization_id, Customer.id == subject.customer_id)
            )
            .where(
                Customer.test_clock_id == test_clock.id,
                kind.is_due(kind.due_at),  # due by its own moment: its status and conditions hold
                kind.due_at > test_clock.frozen_time,
            )
            .scalar_subquery()
        )
    return await session.scalar(select(func.least(*moments)))


async def step_test_clock(session: AsyncSession, command: TestClockStep) -> tuple[TestClock, bool]:
    """Moves an advancing clock from `frozenTime` to the next moment work falls due for its
    customers, or to the time it advances to (then `ready`): the clock, and whether this
    step made it ready. A step from a time the clock has left changes nothing."""
    test_clock = await _locked(session, command.id)
    if (test_clock.status, test_clock.frozen_time, test_clock.advancing_to) != (
        TestClockStatus.advancing,
        command.frozenTime,
        command.advancingTo,
    ):
        return test_clock, False
    upcoming = await next_due(session, test_clock)
    if upcoming is not None and upcoming <= command.advancingTo:
        test_clock.frozen_time = upcoming
        ready = False
    else:
        test_clock.frozen_time = command.advancingTo
        test_clock.status, test_clock.advancing_to = TestClockStatus.ready, None
        ready = True
    test_clock.updated_at = clock.now()
    await session.flush()
    return test_clock, ready


# what a clock's customers own, in an order that deletes each row before what it references
# (rows that cascade from these go with them: lines, items, phases, payment methods)
_OWNED_BY_CUSTOMERS: Final = (CreditNote, Refund, Payment, InvoiceItem, Invoice, SubscriptionSchedule, Subscription)


async def delete_test_clock(session: AsyncSession, test_clock_id: str) -> TestClock:
    """The clock, its customers and everything of theirs: subscriptions, invoices,
    payments, refunds, credit notes, payment methods (Stripe's delete)."""
    test_clock = await _locked(session, test_clock_id)
    customers = select(Customer.id).where(Customer.test_clock_id == test_clock.id)
    for model in _OWNED_BY_CUSTOMERS:
        await session.execute(delete(model).where(model.customer_id.in_(customers)))
    await session.execute(delete(Customer).where(Customer.test_clock_id == test_clock.id))
    await session.execute(delete(ScheduledCommand).where(ScheduledCommand.test_clock_id == test_clock.id))
    await session.delete(test_clock)
    await session.flush()
    return test_clock
