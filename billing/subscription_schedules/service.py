"""Subscription schedule writes, called by the command consumer inside a command's
transaction; never commits.

A schedule drives one subscription through its phases. Starting it creates the
subscription as POST /v1/subscriptions does (billing.subscriptions.service); each later
phase changes the subscription's items at the phase's start as a plan change does
(billing.subscriptions.changes), prorated by the phase's prorationBehavior. A boundary
that falls on the end of the subscription's period is the renewal's: the items change
without proration and the renewal, published after the boundary in the same pass,
invoices the new phase's items for the new period. After the last phase, Stripe's
endBehavior: release (the subscription goes on as it is, the schedule `released`) or
cancel (the subscription ends, the schedule `completed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.invoices.collection import billing_currency
from billing.models import Customer, Subscription, SubscriptionSchedule
from billing.models import SubscriptionSchedulePhase as Phase
from billing.payments.repository import get_live_customer, get_payment_method
from billing.requests.patch import merge_metadata, parse_changes
from billing.subscription_schedules.phases import (
    PhaseTerms,
    PhaseTiming,
    check_kept,
    next_boundary,
    phase_spans,
)
from billing.subscriptions import changes as changes_
from billing.subscriptions import service as subscriptions
from billing.subscriptions.periods import Period
from billing.subscriptions.status import TERMINAL
from contracts.enums import SubscriptionScheduleEndBehavior, SubscriptionScheduleStatus
from contracts.json_shapes import SchedulePhaseItem
from contracts.subscription_schedules import (
    SchedulePhaseRequest,
    SubscriptionScheduleAdvance,
    SubscriptionScheduleCancel,
    SubscriptionScheduleCreate,
    SubscriptionScheduleRelease,
    SubscriptionScheduleUpdate,
)
from contracts.subscriptions import (
    SubscriptionCancel,
    SubscriptionCreate,
    SubscriptionItemChange,
    SubscriptionItemChanges,
    SubscriptionItemCreate,
)

S = SubscriptionScheduleStatus
# what still follows its phases (and may be updated, released or canceled)
LIVE = frozenset({S.not_started, S.active})


class Transition(StrEnum):
    """What a command did to the schedule, for the events it tells."""

    none = "none"
    created = "created"
    updated = "updated"
    started = "started"  # the first phase began: the subscription was created
    advanced = "advanced"  # the next phase began
    released = "released"
    canceled = "canceled"
    completed = "completed"  # the last phase ended (released or canceled by endBehavior)


@dataclass(frozen=True)
class ScheduleChange:
    schedule: SubscriptionSchedule
    transition: Transition
    # the subscription the schedule created, changed or canceled, with what that invoiced
    created: subscriptions.CreatedSubscription | None = None
    changed: subscriptions.ChangedSubscription | None = None


def _param(index: int, field: str) -> str:
    return f"phases[{index}][{field}]"


async def _valid_phases(
    session: AsyncSession,
    schedule_id: str,
    customer: Customer,
    requests: list[SchedulePhaseRequest],
    start: datetime,
    now: datetime,
) -> list[Phase]:
    """The phase rows for `requests`, checked: prices, one currency, contiguous spans,
    trials and payment methods; nothing written."""
    first = requests[0]
    for index, request in enumerate(requests[1:], start=1):
        for field, value in (("trialEnd", request.trialEnd), ("trial", request.trial or None)):
            if value is not None:
                raise InvalidRequest(
                    "A trial is the first phase's only.", code="parameter_invalid", param=_param(index, field)
                )
        if request.currency is not None:
            raise InvalidRequest(
                "The first phase sets the currency; later phases bill in it.",
                code="parameter_invalid",
                param=_param(index, "currency"),
            )
    prices = [
        await subscriptions.item_prices(session, [item.price for item in request.items], _param(index, "items"))
        for index, request in enumerate(requests)
    ]
    try:
        currency = billing_currency(
            customer.currency, first.currency, prices[0][0].currency, what="a subscription schedule"
        )
    except InvalidRequest as error:
        raise InvalidRequest(error.message, code=error.code, param=_param(0, "currency")) from None
    for index, phase_prices in enumerate(prices):
        for position, price in enumerate(phase_prices):
            changes_.check_price_currency(price, currency, f"phases[{index}][items][{position}][price]")
    timings = [
        PhaseTiming(
            start_date=None if request.startDate == "now" else request.startDate,
            end_date=request.endDate,
            iterations=request.iterations,
            interval=changes_.price_interval(phase_prices[0]),
        )
        for request, phase_prices in zip(requests, prices, strict=True)
    ]
    spans = phase_spans(timings, start)
    trial_end = spans[0].end if first.trial else first.trialEnd
    if trial_end is not None and not (max(now, spans[0].start) < trial_end <= spans[0].end):
        raise InvalidRequest(
            "The first phase's trial must end in the future, inside the phase.",
            code="parameter_invalid",
            param=_param(0, "trialEnd"),
        )
    for index, request in enumerate(requests):
        method = request.defaultPaymentMethod
        if method is not None and await get_payment_method(session, customer.id, method) is None:
            raise ResourceMissing("payment_method", method, param=_param(index, "defaultPaymentMethod"))
    organization_id = tenant_of(session)
    rows = [
        Phase(
            id=new_id("subscription_schedule_phase"),
            organization_id=organization_id,
            schedule_id=schedule_id,
            position=index,
            start_date=span.start,
            end_date=span.end,
            items=[SchedulePhaseItem(priceId=item.price, quantity=item.quantity) for item in request.items],
            iterations=request.iterations,
            trial_end=trial_end if index == 0 else None,
            proration_behavior=request.prorationBehavior,
            currency=currency if index == 0 else None,
            default_payment_method_id=request.defaultPaymentMethod,
            metadata_=request.metadata,
        )
        for index, (request, span) in enumerate(zip(requests, spans, strict=True))
    ]
    return rows


def _start_of(requested: datetime | str | None, first_phase: datetime | str | None, now: datetime) -> datetime:
    """The schedule's start: its startDate or its first phase's (one only, or the same), else now."""
    if requested is not None and first_phase is not None and requested != first_phase:
        raise InvalidRequest(
            "startDate and phases[0][startDate] differ: give one.", code="parameter_invalid", param="startDate"
        )
    start = requested or first_phase or "now"
    if start == "now":
        return now
    assert isinstance(start, datetime)
    if start < now:
        raise InvalidRequest("startDate must be now or in the future.", code="parameter_invalid", param="startDate")
    return start


async def create_schedule(session: AsyncSession, command: SubscriptionScheduleCreate, now: datetime) -> ScheduleChange:
    if command.fromSubscription is not None:
        return await _wrap_subscription(session, command)
    if command.customer is None:
        raise InvalidRequest(
            "A schedule needs a customer and phases, or fromSubscription.", code="parameter_missing", param="customer"
        )
    if command.phases is None:
        raise InvalidRequest("A schedule needs its phases.", code="parameter_missing", param="phases")
    customer = await get_live_customer(session, command.customer, for_update=True)
    if customer is None:
        raise ResourceMissing("customer", command.customer, param="customer")
    start = _start_of(command.startDate, command.phases[0].startDate, now)
    schedule = SubscriptionSchedule(
        id=new_id("subscription_schedule"),
        organization_id=tenant_of(session),
        customer_id=customer.id,
        status=S.not_started,
        end_behavior=command.endBehavior,
        collection_method=command.collectionMethod,
        days_until_due=command.daysUntilDue,
        metadata_=command.metadata,
    )
    rows = await _valid_phases(session, schedule.id, customer, command.phases, start, now)
    session.add(schedule)
    await session.flush()
    session.add_all(rows)
    await session.flush()
    if start > now:
        return ScheduleChange(schedule, Transition.created)
    created = await _start(session, schedule, rows[0])
    return ScheduleChange(schedule, Transition.created, created=created)


async def _wrap_subscription(session: AsyncSession, command: SubscriptionScheduleCreate) -> ScheduleChange:
    """Stripe's from_subscription: one phase, the subscription's items to its period's end."""
    if command.phases is not None or command.startDate is not None or command.customer is not None:
        raise InvalidRequest(
            "fromSubscription takes the subscription's customer, items and period: give no customer, phases or "
            "startDate with it (update the schedule's phases after).",
            code="parameter_invalid",
            param="fromSubscription",
        )
    subscription = await get_one(session, Subscription, Subscription.id, command.fromSubscription, for_update=True)
    if subscription is None:
        raise ResourceMissing("subscription", str(command.fromSubscription), param="fromSubscription")
    if subscription.status in TERMINAL:
        raise InvalidRequest(
            f"The subscription {subscription.id} has ended; a schedule cannot take it.",
            code="subscription_status_invalid",
            param="fromSubscription",
        )
    if await get_one(session, SubscriptionSchedule, SubscriptionSchedule.subscription_id, subscription.id):
        raise InvalidRequest(
            f"The subscription {subscription.id} has a schedule already.",
            code="subscription_schedule_exists",
            param="fromSubscription",
        )
    items = await changes_.current_items(session, subscription)
    schedule = SubscriptionSchedule(
        id=new_id("subscription_schedule"),
        organization_id=subscription.organization_id,
        customer_id=subscription.customer_id,
        subscription_id=subscription.id,
        status=S.active,
        end_behavior=command.endBehavior,
        collection_method=subscription.collection_method,
        days_until_due=subscription.days_until_due,
        current_phase_index=0,
        metadata_=command.metadata,
    )
    session.add(schedule)
    await session.flush()
    session.add(
        Phase(
            id=new_id("subscription_schedule_phase"),
            organization_id=subscription.organization_id,
            schedule_id=schedule.id,
            position=0,
            start_date=subscription.current_period_start,
            end_date=subscription.current_period_end,
            items=[SchedulePhaseItem(priceId=b.item.price_id, quantity=b.item.quantity) for b in items],
            currency=subscription.currency,
            default_payment_method_id=subscription.default_payment_method_id,
        )
    )
    await session.flush()
    return ScheduleChange(schedule, Transition.created)


async def _start(
    session: AsyncSession, schedule: SubscriptionSchedule, first: Phase
) -> subscriptions.CreatedSubscription:
    """The first phase begins: its subscription, created as POST /v1/subscriptions creates
    one, from the phase's start (however late the scheduler is), so that its periods and
    the phases counted in them meet."""
    created = await subscriptions.create_subscription(
        session,
        SubscriptionCreate(
            customer=schedule.customer_id,
            items=[
                SubscriptionItemCreate(price=item["priceId"], quantity=item.get("quantity", 1)) for item in first.items
            ],
            currency=first.currency,
            trialEnd=first.trial_end,
            defaultPaymentMethod=first.default_payment_method_id,
            collectionMethod=schedule.collection_method,
            daysUntilDue=schedule.days_until_due,
        ),
        first.start_date,
    )
    schedule.subscription_id = created.subscription.id
    schedule.status, schedule.current_phase_index = S.active, 0
    await session.flush()
    return created


async def _phases(session: AsyncSession, schedule: SubscriptionSchedule) -> list[Phase]:
    return list(
        (await session.scalars(select(Phase).where(Phase.schedule_id == schedule.id).order_by(Phase.position))).all()
    )


def _spans(phases: list[Phase]) -> list[Period]:
    spans = []
    for phase in phases:
        assert phase.end_date is not None  # every phase is stored with its end
        spans.append(Period(phase.start_date, phase.end_date))
    return spans


async def _live_schedule(session: AsyncSession, schedule_id: str) -> SubscriptionSchedule:
    schedule = await get_one(session, SubscriptionSchedule, SubscriptionSchedule.id, schedule_id, for_update=True)
    if schedule is None:
        raise ResourceMissing("subscription_schedule", schedule_id)
    if schedule.status not in LIVE:
        raise InvalidRequest(
            f"The subscription schedule is {schedule.status}: only a not_started or active one can change.",
            code="subscription_schedule_status_invalid",
        )
    return schedule


async def _subscription(session: AsyncSession, schedule: SubscriptionSchedule) -> Subscription:
    subscription = await get_one(session, Subscription, Subscription.id, schedule.subscription_id, for_update=True)
    assert subscription is not None  # an active schedule's subscription is kept (SetNull clears the link)
    return subscription


def _item_changes(current: list[changes_.BilledItem], phase: Phase) -> list[SubscriptionItemChange]:
    """The plan change from the subscription's items to the phase's: an item whose price
    stays takes the phase's quantity, the others go, the phase's new prices arrive."""
    wanted = {item["priceId"]: item.get("quantity", 1) for item in phase.items}
    kept = [
        SubscriptionItemChange(id=b.item.key, quantity=wanted[b.item.price_id])
        if b.item.price_id in wanted
        else SubscriptionItemChange(id=b.item.key, deleted=True)
        for b in current
    ]
    present = {b.item.price_id for b in current}
    added = [
        SubscriptionItemChange(price=price, quantity=quantity)
        for price, quantity in wanted.items()
        if price not in present
    ]
    return [*kept, *added]


async def _enter_phase(
    session: AsyncSession, subscription: Subscription, phase: Phase, at: datetime, now: datetime
) -> subscriptions.ChangedSubscription:
    """The subscription takes the phase's items at `at`, prorated as the phase says; at
    the period's end the change is the renewal's to invoice, unprorated."""
    if phase.default_payment_method_id is not None:
        subscription.default_payment_method_id = phase.default_payment_method_id
    items = _item_changes(await changes_.current_items(session, subscription), phase)
    if at >= subscription.current_period_end:
        plan = await changes_.deferred_plan(session, subscription, items, now)
    else:
        plan = await changes_.plan_change(
            session,
            subscription,
            SubscriptionItemChanges(items=items, prorationBehavior=phase.proration_behavior, prorationDate=at),
            now,
        )
    return await subscriptions.apply_plan(session, plan, now)


async def advance_schedule(
    session: AsyncSession, command: SubscriptionScheduleAdvance, now: datetime
) -> ScheduleChange:
    schedule = await get_one(session, SubscriptionSchedule, SubscriptionSchedule.id, command.id, for_update=True)
    if schedule is None:
        raise ResourceMissing("subscription_schedule", command.id)
    phases = await _phases(session, schedule)
    if schedule.status not in LIVE or next_boundary(_spans(phases), schedule.current_phase_index) != command.boundary:
        return ScheduleChange(schedule, Transition.none)  # past that boundary (or ended): a repeat's no-op
    if now < command.boundary:
        raise InvalidRequest(
            f"The schedule's next boundary is {command.boundary.isoformat()}; it moves then, not before.",
            code="subscription_schedule_not_due",
            param="boundary",
        )
    if schedule.status is S.not_started:
        return ScheduleChange(schedule, Transition.started, created=await _start(session, schedule, phases[0]))
    subscription = await _subscription(session, schedule)
    if subscription.status in TERMINAL:  # ended under the schedule: nothing left to drive
        schedule.status, schedule.canceled_at = S.canceled, now
        await session.flush()
        return ScheduleChange(schedule, Transition.canceled)
    assert schedule.current_phase_index is not None  # an active schedule is in a phase
    following = schedule.current_phase_index + 1
    if following < len(phases):
        changed = await _enter_phase(session, subscription, phases[following], command.boundary, now)
        schedule.current_phase_index = following
        await session.flush()
        return ScheduleChange(schedule, Transition.advanced, changed=changed)
    schedule.completed_at = command.boundary
    if schedule.end_behavior is SubscriptionScheduleEndBehavior.release:
        _let_go(schedule, command.boundary)
        await session.flush()
        return ScheduleChange(schedule, Transition.completed)
    changed = await subscriptions.cancel_subscription(session, SubscriptionCancel(id=subscription.id), command.boundary)
    schedule.status = S.completed
    await session.flush()
    return ScheduleChange(schedule, Transition.completed, changed=changed)


def _let_go(schedule: SubscriptionSchedule, at: datetime) -> None:
    """Released: the subscription goes on by itself (Stripe's released_subscription)."""
    schedule.status, schedule.released_at = S.released, at
    schedule.released_subscription_id, schedule.subscription_id = schedule.subscription_id, None


async def release_schedule(
    session: AsyncSession, command: SubscriptionScheduleRelease, now: datetime
) -> ScheduleChange:
    schedule = await _live_schedule(session, command.id)
    _let_go(schedule, now)
    await session.flush()
    return ScheduleChange(schedule, Transition.released)


async def cancel_schedule(session: AsyncSession, command: SubscriptionScheduleCancel, now: datetime) -> ScheduleChange:
    schedule = await _live_schedule(session, command.id)
    changed = None
    if schedule.subscription_id is not None:
        subscription = await _subscription(session, schedule)
        if subscription.status not in TERMINAL:
            changed = await subscriptions.cancel_subscription(session, SubscriptionCancel(id=subscription.id), now)
    schedule.status, schedule.canceled_at = S.canceled, now
    await session.flush()
    return ScheduleChange(schedule, Transition.canceled, changed=changed)


def _terms(phase: Phase) -> PhaseTerms:
    assert phase.end_date is not None  # every phase is stored with its end
    return PhaseTerms(
        Period(phase.start_date, phase.end_date),
        tuple((item["priceId"], item.get("quantity", 1)) for item in phase.items),
        str(phase.proration_behavior),
    )


async def update_schedule(
    session: AsyncSession, schedule_id: str, changes: dict[str, object], now: datetime
) -> ScheduleChange:
    """`changes` holds only the fields the client sent (SubscriptionScheduleUpdate)."""
    update = parse_changes(SubscriptionScheduleUpdate, dict(changes))
    schedule = await _live_schedule(session, schedule_id)
    if "metadata" in update.model_fields_set:
        schedule.metadata_ = merge_metadata(schedule.metadata_, update.metadata)
    if "endBehavior" in update.model_fields_set:
        if update.endBehavior is None:
            raise InvalidRequest("endBehavior cannot be null.", code="parameter_invalid", param="endBehavior")
        schedule.end_behavior = update.endBehavior
    if update.phases is None:
        await session.flush()
        return ScheduleChange(schedule, Transition.updated)
    before = await _phases(session, schedule)
    customer = await get_live_customer(session, schedule.customer_id, for_update=True)
    if customer is None:
        raise ResourceMissing("customer", schedule.customer_id, param="customer")
    if schedule.status is S.not_started and update.phases[0].startDate is not None:
        start = _start_of(None, update.phases[0].startDate, now)
    else:  # where it starts (or started)
        start = before[0].start_date
    rows = await _valid_phases(session, schedule.id, customer, update.phases, start, now)
    current = schedule.current_phase_index
    changed = None
    if current is not None:
        check_kept([_terms(row) for row in before], [_terms(row) for row in rows], current, now)
        if _terms(rows[current]).items != _terms(before[current]).items:
            # the phase in effect has other items now: the subscription takes them at once
            changed = await _enter_phase(session, await _subscription(session, schedule), rows[current], now, now)
    await session.execute(delete(Phase).where(Phase.schedule_id == schedule.id))
    session.add_all(rows)
    await session.flush()
    if schedule.status is S.not_started and rows[0].start_date <= now:
        created = await _start(session, schedule, rows[0])
        return ScheduleChange(schedule, Transition.updated, created=created)
    return ScheduleChange(schedule, Transition.updated, changed=changed)
