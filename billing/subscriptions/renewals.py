"""A subscription's period end: one renewal command per period (`subscription.renew`
with the period's end, so a repeat finds the period advanced and changes nothing).

At the end of a period the subscription, in Stripe's order:
- ends, when it was set to cancel at the period's end (customer.subscription.deleted);
- ends its trial: with a payment method (or send_invoice) it becomes active and is
  invoiced; without one, `trialSettings.endBehavior.missingPaymentMethod` cancels it,
  pauses it (no invoice until resumed) or invoices it anyway (past_due: nothing can pay);
- otherwise applies the plan change the organization's rules kept for the period's end,
  then advances to the next period and invoices it: the pending invoice items (a
  create_prorations change's lines), each metered item in arrears for the period that
  ended, and each licensed item in advance, the lines the upcoming-invoice preview shows.
  The invoice stays a draft for the organization's draft period (`invoicing.
  renewalDraftMinutes`, an hour by default, as Stripe), then the scheduler finalizes it
  (`invoice.finalize_draft`, billing/invoices/drafts.py) with the metered lines priced at
  the usage ClickHouse counted by then, and it is charged as every subscription invoice is
  (or handled as a paused collection says). With no draft period and nothing metered it is
  finalized and charged at once.

Three days before a trial ends (at once for a shorter one) `subscription.notify_trial_ending`
tells `customer.subscription.trial_will_end`. An incomplete subscription still unpaid 23 hours after its creation expires by
`subscription.expire_incomplete`. A paused subscription is resumed by `subscription.resume`: a new cycle from that moment,
its first period invoiced and charged.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import get_one
from billing.errors import BillingError, InvalidRequest, ResourceMissing
from billing.invoices import service as invoices
from billing.invoices.lines import DraftLine, advance_line, item_line, usage_line
from billing.models import Customer, Organization, Subscription
from billing.organizations.service import own_column
from billing.payments import attempts
from billing.payments.repository import get_live_customer
from billing.subscriptions import changes
from billing.subscriptions.ending import end_canceled
from billing.subscriptions.periods import Period, first_period, next_period
from billing.subscriptions.service import ChangedSubscription, apply_plan, collect
from billing.subscriptions.status import TERMINAL, SubscriptionEvent, next_status
from contracts.enums import CollectionMethod, SubscriptionStatus
from contracts.subscriptions import (
    SubscriptionExpireIncomplete,
    SubscriptionNotifyTrialEnding,
    SubscriptionRenew,
    SubscriptionResume,
)

# what a renewal does not renew: a first invoice unpaid (it expires instead), a pause
_NOT_RENEWED = frozenset({SubscriptionStatus.incomplete, SubscriptionStatus.paused})
# what renews at its period's end (what the scheduler looks for)
RENEWED: Final = frozenset(SubscriptionStatus) - TERMINAL - _NOT_RENEWED


async def _apply_scheduled_change(session: AsyncSession, subscription: Subscription, now: datetime) -> None:
    """The change the rules kept for this moment, made before the next period is billed.
    One that no longer applies (its price archived since, say) is dropped: the
    subscription renews as it is rather than not at all."""
    try:
        plan = await changes.scheduled_plan(session, subscription, now)
    except BillingError:
        plan = None
    if plan is not None:
        await apply_plan(session, plan, now)
    subscription.scheduled_change = None


async def renew_subscription(session: AsyncSession, command: SubscriptionRenew, now: datetime) -> ChangedSubscription:
    subscription = await get_one(session, Subscription, Subscription.id, command.id, for_update=True)
    if subscription is None:
        raise ResourceMissing("subscription", command.id)
    if subscription.status in TERMINAL or subscription.current_period_end != command.periodEnd:
        return ChangedSubscription(subscription)  # renewed (or ended) already: a repeat changes nothing
    period_end = subscription.current_period_end
    if now < period_end:
        raise InvalidRequest(
            f"The period of {subscription.id} ends at {period_end.isoformat()}; it renews then, not before.",
            code="subscription_not_due",
            param="periodEnd",
        )
    if subscription.status in _NOT_RENEWED:
        raise InvalidRequest(
            f"A subscription that is {subscription.status} does not renew.",
            code="subscription_status_invalid",
        )
    if subscription.cancel_at_period_end:
        end_canceled(subscription, period_end)
        await session.flush()
        return ChangedSubscription(subscription)
    customer = await get_live_customer(session, subscription.customer_id, for_update=True)
    assert customer is not None  # a live subscription's customer is live
    period = Period(subscription.current_period_start, period_end)
    # usage in a trial is free, as the trial's items are; the items used are the period's,
    # before a change kept for its end
    used = (
        [] if subscription.status is SubscriptionStatus.trialing else await changes.current_items(session, subscription)
    )
    arrears = [usage_line(b.item, subscription.currency, period, 0) for b in used if not b.licensed]
    if subscription.status is SubscriptionStatus.trialing:
        payable = (
            subscription.collection_method is CollectionMethod.send_invoice
            or await attempts.payment_method_for(session, customer, subscription) is not None
        )
        missing = subscription.trial_settings["endBehavior"]["missingPaymentMethod"]
        if payable:
            subscription.status = next_status(subscription.status, SubscriptionEvent.trial_ended)
        elif missing == "cancel":
            end_canceled(subscription, period_end, "trial_ended_without_payment_method")
            await session.flush()
            return ChangedSubscription(subscription)
        elif missing == "pause":
            subscription.status = next_status(subscription.status, SubscriptionEvent.trial_ended_without_payment_method)
            await session.flush()
            return ChangedSubscription(subscription)
        else:  # create_invoice: invoiced, and with nothing to pay it with, past_due
            subscription.status = next_status(subscription.status, SubscriptionEvent.invoice_payment_failed)
    await _apply_scheduled_change(session, subscription, now)
    items = await changes.current_items(session, subscription)
    advance = changes.renewal_lines(items, subscription.currency, period, subscription.billing_cycle_anchor)
    upcoming = next_period(period, subscription.billing_cycle_anchor, items[0].interval)
    subscription.current_period_start, subscription.current_period_end = upcoming.start, upcoming.end
    draft_minutes = (await own_column(session, Organization.invoicing))["renewalDraftMinutes"]
    finalizes_at = period_end + timedelta(minutes=draft_minutes) if draft_minutes or arrears else None
    return await _bill_period(session, subscription, customer, [*arrears, *advance], now, finalizes_at)


async def _bill_period(
    session: AsyncSession,
    subscription: Subscription,
    customer: Customer,
    lines: list[DraftLine],
    now: datetime,
    finalizes_at: datetime | None = None,
) -> ChangedSubscription:
    """The invoice of the subscription's (new) current period: what is pending, then
    `lines`; a draft until `finalizes_at` when given, else finalized and charged, or as a
    paused collection says."""
    pending = await changes.pending_items(session, subscription)
    invoice, invoice_lines = await invoices.create_draft(
        session,
        customer,
        [*(item_line(item) for item in pending), *lines],
        currency=subscription.currency,
        period=Period(subscription.current_period_start, subscription.current_period_end),
        billing_reason="subscription_cycle",
        subscription=subscription,
    )
    for item in pending:
        item.invoice_id = invoice.id
    if finalizes_at is not None:
        invoice.automatically_finalizes_at = finalizes_at
        await session.flush()
        return ChangedSubscription(subscription, invoice, invoice_lines)
    payment = await collect(session, subscription, invoice, invoice_lines, customer, now)
    return ChangedSubscription(subscription, invoice, invoice_lines, payment)


async def resume_subscription(session: AsyncSession, command: SubscriptionResume, now: datetime) -> ChangedSubscription:
    subscription = await get_one(session, Subscription, Subscription.id, command.id, for_update=True)
    if subscription is None:
        raise ResourceMissing("subscription", command.id)
    if subscription.status is not SubscriptionStatus.paused:
        raise InvalidRequest(
            f"Only a paused subscription can be resumed; this one is {subscription.status}.",
            code="subscription_not_paused",
        )
    customer = await get_live_customer(session, subscription.customer_id, for_update=True)
    assert customer is not None  # a live subscription's customer is live
    if (
        subscription.collection_method is CollectionMethod.charge_automatically
        and await attempts.payment_method_for(session, customer, subscription) is None
    ):
        raise InvalidRequest(
            "The customer has no default payment method to charge the resumed subscription with: attach one "
            "(or set the subscription's defaultPaymentMethod) first.",
            code="invoice_no_payment_method",
        )
    subscription.status = next_status(subscription.status, SubscriptionEvent.resumed)
    items = await changes.current_items(session, subscription)
    cycle = first_period(now, items[0].interval)
    subscription.billing_cycle_anchor = now
    subscription.current_period_start, subscription.current_period_end = cycle.start, cycle.end
    advance = [advance_line(b.item, subscription.currency, cycle, cycle) for b in items if b.licensed]
    return await _bill_period(session, subscription, customer, advance, now)


# Stripe's: how long a first invoice may stay unpaid before its subscription expires
INCOMPLETE_EXPIRES_AFTER: Final = timedelta(hours=23)


async def expire_incomplete(
    session: AsyncSession, command: SubscriptionExpireIncomplete, now: datetime
) -> tuple[ChangedSubscription, bool]:
    """The subscription, and whether this expired it."""
    subscription = await get_one(session, Subscription, Subscription.id, command.id, for_update=True)
    if subscription is None:
        raise ResourceMissing("subscription", command.id)
    if subscription.status is not SubscriptionStatus.incomplete:
        return ChangedSubscription(subscription), False  # paid (or ended) since: nothing expires
    due = subscription.start_date + INCOMPLETE_EXPIRES_AFTER
    if now < due:
        raise InvalidRequest(
            f"The first invoice of {subscription.id} may be paid until {due.isoformat()}; it expires then.",
            code="subscription_not_due",
        )
    subscription.status = next_status(subscription.status, SubscriptionEvent.first_invoice_expired)
    subscription.ended_at = now
    voided = await invoices.void_open_invoices(session, subscription, now)
    return ChangedSubscription(subscription, voided=voided), True


# Stripe's: how long before a trial's end `customer.subscription.trial_will_end` is told
TRIAL_WILL_END_BEFORE: Final = timedelta(days=3)


async def notify_trial_ending(
    session: AsyncSession, command: SubscriptionNotifyTrialEnding, now: datetime
) -> tuple[Subscription, bool]:
    """The subscription, and whether its trial still ends at `trialEnd` (so the reminder is
    told); the command changes nothing."""
    subscription = await get_one(session, Subscription, Subscription.id, command.id)
    if subscription is None:
        raise ResourceMissing("subscription", command.id)
    if subscription.status is not SubscriptionStatus.trialing or subscription.trial_end != command.trialEnd:
        return subscription, False  # the trial ended, or moved, since: its own reminder tells
    due = command.trialEnd - TRIAL_WILL_END_BEFORE
    if now < due:
        raise InvalidRequest(
            f"The trial of {subscription.id} ends at {command.trialEnd.isoformat()}; its reminder is due at "
            f"{due.isoformat()}, not before.",
            code="subscription_not_due",
            param="trialEnd",
        )
    return subscription, True
