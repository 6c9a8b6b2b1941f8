"""What falls due, found in Postgres by the scheduler: each kind of due work is a query
over the rows that carry its time (a subscription's period end, trial end and start, an
invoice's next payment attempt, a draft's finalization) and the command that does the
work, published once per unit under a deterministic id.

A unit is one (command type, subject, due time): the period that ends at that moment, the
trial that ends three days later. Its command carries the same time, so a command that
arrives after the subscription moved on (renewed, the trial moved) finds another time and
changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    TIMESTAMP,
    ColumnElement,
    SQLColumnExpression,
    and_,
    case,
    exists,
    func,
    literal,
    select,
    type_coerce,
)

from billing.models import Invoice, Subscription, SubscriptionSchedule, SubscriptionSchedulePhase
from billing.subscriptions.renewals import INCOMPLETE_EXPIRES_AFTER, RENEWED, TRIAL_WILL_END_BEFORE
from billing.subscriptions.status import TERMINAL
from contracts.commands import Command
from contracts.enums import InvoiceStatus, SubscriptionScheduleStatus, SubscriptionStatus
from contracts.invoices import InvoiceFinalizeDraft, InvoiceRetryPayment
from contracts.subscription_schedules import SubscriptionScheduleAdvance
from contracts.subscriptions import SubscriptionExpireIncomplete, SubscriptionNotifyTrialEnding, SubscriptionRenew

# what due work is on: each has its id, organization and customer (whose clock tells the time)
Subject = type[Subscription] | type[Invoice] | type[SubscriptionSchedule]


@dataclass(frozen=True)
class DueKind:
    """One kind of due work: on rows of `subject`, due at `due_at`."""

    command_type: str
    subject: Subject
    # when a unit falls due (an expression over its subject row)
    due_at: SQLColumnExpression[Any]
    # whether it is due by `now`
    is_due: Callable[[SQLColumnExpression[Any]], ColumnElement[bool]]
    # the command for the subject `id` whose unit fell due at `due_at`
    command: Callable[[str, datetime], Command[Any]]


# timestamptz, as the columns: a moment compared with them is bound as one (not a naive timestamp)
_MOMENT = TIMESTAMP(timezone=True)
_trial_reminder_at = type_coerce(Subscription.trial_end - literal(TRIAL_WILL_END_BEFORE), _MOMENT)
_expires_at = type_coerce(Subscription.start_date + literal(INCOMPLETE_EXPIRES_AFTER), _MOMENT)
# a schedule's next boundary (billing.subscription_schedules.phases.next_boundary): its
# first phase's start until it starts, then the end of the phase it is in
_Phase = SubscriptionSchedulePhase
_next_boundary = (
    select(
        case(
            (SubscriptionSchedule.status == SubscriptionScheduleStatus.not_started, _Phase.start_date),
            else_=_Phase.end_date,
        )
    )
    .where(
        _Phase.schedule_id == SubscriptionSchedule.id,
        _Phase.position == func.coalesce(SubscriptionSchedule.current_phase_index, 0),
    )
    .correlate(SubscriptionSchedule)
    .scalar_subquery()
)
_SCHEDULED = (SubscriptionScheduleStatus.not_started, SubscriptionScheduleStatus.active)
# a renewal due before the boundary comes first (a later pass takes the boundary): the
# phase then changes the period it falls in
_renewal_first = exists().where(
    Subscription.id == SubscriptionSchedule.subscription_id,
    Subscription.status.in_(RENEWED),
    Subscription.current_period_end < _next_boundary,
)

# in the order a pass publishes them: a trial's reminder before the trial's end; a
# schedule's boundary before the renewal at the same moment, which then bills the new phase
DUE_KINDS: Final = (
    DueKind(
        SubscriptionNotifyTrialEnding.command_type,
        Subscription,
        _trial_reminder_at,
        # a trial ended already is the renewal's: its reminder would come too late to help
        lambda now: and_(
            Subscription.status == SubscriptionStatus.trialing,
            _trial_reminder_at <= now,
            Subscription.trial_end > now,
        ),
        lambda id, due_at: SubscriptionNotifyTrialEnding(id=id, trialEnd=due_at + TRIAL_WILL_END_BEFORE),
    ),
    DueKind(
        SubscriptionScheduleAdvance.command_type,
        SubscriptionSchedule,
        _next_boundary,
        lambda now: and_(SubscriptionSchedule.status.in_(_SCHEDULED), _next_boundary <= now, ~_renewal_first),
        lambda id, due_at: SubscriptionScheduleAdvance(id=id, boundary=due_at),
    ),
    DueKind(
        SubscriptionRenew.command_type,
        Subscription,
        Subscription.current_period_end,
        # over the (status, current_period_end) index
        lambda now: and_(Subscription.status.in_(RENEWED), Subscription.current_period_end <= now),
        lambda id, due_at: SubscriptionRenew(id=id, periodEnd=due_at),
    ),
    DueKind(
        InvoiceFinalizeDraft.command_type,
        Invoice,
        Invoice.automatically_finalizes_at,
        # over the (status, automatically_finalizes_at) index; its metered lines are measured
        # when it is claimed (billing/scheduling/usage.py)
        lambda now: and_(Invoice.status == InvoiceStatus.draft, Invoice.automatically_finalizes_at <= now),
        lambda id, due_at: InvoiceFinalizeDraft(id=id, automaticallyFinalizesAt=due_at),
    ),
    DueKind(
        InvoiceRetryPayment.command_type,
        Invoice,
        Invoice.next_payment_attempt,
        # never once the subscription has ended (polar#6542): its retries stop with it
        lambda now: and_(
            Invoice.status == InvoiceStatus.open,
            Invoice.next_payment_attempt <= now,
            exists().where(
                Subscription.organization_id == Invoice.organization_id,
                Subscription.id == Invoice.subscription_id,
                Subscription.status.not_in(TERMINAL),
            ),
        ),
        lambda id, due_at: InvoiceRetryPayment(id=id, nextPaymentAttempt=due_at),
    ),
    DueKind(
        SubscriptionExpireIncomplete.command_type,
        Subscription,
        _expires_at,
        lambda now: and_(Subscription.status == SubscriptionStatus.incomplete, _expires_at <= now),
        lambda id, due_at: SubscriptionExpireIncomplete(id=id),
    ),
)
