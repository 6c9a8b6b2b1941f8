"""Subscription commands: parse, call billing.subscriptions (service, renewals), report what happened."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clocks import service as clocks
from billing.invoices import repository as invoice_reads
from billing.models import Subscription
from billing.subscriptions import renewals, service
from billing.subscriptions import repository as subscription_reads
from consumers.registry import Applied, CommandRouter
from contracts.enums import InvoiceStatus, SubscriptionStatus
from contracts.events import (
    INVOICE_CREATED,
    INVOICE_FINALIZED,
    INVOICE_MARKED_UNCOLLECTIBLE,
    INVOICE_PAID,
    INVOICE_VOIDED,
    PAYMENT_CREATED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_DELETED,
    SUBSCRIPTION_PAUSED,
    SUBSCRIPTION_RESUMED,
    SUBSCRIPTION_TRIAL_WILL_END,
    SUBSCRIPTION_UPDATED,
    DomainEvent,
)
from contracts.invoices import InvoiceDetails
from contracts.resources import Payment
from contracts.subscriptions import (
    SubscriptionCancel,
    SubscriptionCreate,
    SubscriptionDetails,
    SubscriptionExpireIncomplete,
    SubscriptionNotifyTrialEnding,
    SubscriptionRenew,
    SubscriptionResume,
    SubscriptionUpdateCommand,
)

router = CommandRouter()


async def _now(session: AsyncSession, subscription_id: str) -> datetime:
    """Now for the subscription's customer (its test clock's time, if it has one)."""
    return await clocks.now_for(session, Subscription, subscription_id)


# where a new invoice went after its finalization: paid when nothing was due; marked
# uncollectible or voided while the subscription's collection is paused
_SETTLED = {
    InvoiceStatus.paid: INVOICE_PAID,
    InvoiceStatus.uncollectible: INVOICE_MARKED_UNCOLLECTIBLE,
    InvoiceStatus.void: INVOICE_VOIDED,
}


def finalized_invoice_events(invoice: InvoiceDetails) -> list[DomainEvent]:
    """An invoice unless still a draft (a paused collection's, or a renewal's in its draft
    period): finalized, and what became of it at once."""
    if invoice.status is InvoiceStatus.draft:
        return []
    data = invoice.model_dump(mode="json")
    settled = _SETTLED.get(invoice.status)
    return [INVOICE_FINALIZED.of(data), *([settled.of(data)] if settled is not None else [])]


def new_invoice_events(invoice: InvoiceDetails) -> list[DomainEvent]:
    """A new invoice: created, and the events of its finalization when it was finalized at once."""
    return [INVOICE_CREATED.of(invoice.model_dump(mode="json")), *finalized_invoice_events(invoice)]


@router.handles(SubscriptionCreate)
async def create(session: AsyncSession, command: SubscriptionCreate) -> Applied[SubscriptionDetails]:
    created = await service.create_subscription(
        session, command, await clocks.now_for_customer(session, command.customer)
    )
    (subscription,) = await subscription_reads.details(session, [created.subscription])
    resource = subscription.model_dump(mode="json")
    return Applied("subscription", resource, await created_events(session, created))


async def created_events(session: AsyncSession, created: service.CreatedSubscription) -> list[DomainEvent]:
    """A new subscription, its first invoice and the payment it asks for."""
    (subscription,) = await subscription_reads.details(session, [created.subscription])
    (invoice,) = await invoice_reads.details(session, [created.invoice])
    events = [SUBSCRIPTION_CREATED.of(subscription.model_dump(mode="json")), *new_invoice_events(invoice)]
    if created.payment is not None:
        events.append(PAYMENT_CREATED.of(Payment.model_validate(created.payment).model_dump(mode="json")))
    return events


@router.handles(SubscriptionUpdateCommand)
async def update(session: AsyncSession, command: SubscriptionUpdateCommand) -> Applied[SubscriptionDetails]:
    changed = await service.update_subscription(session, command.id, command.changes, await _now(session, command.id))
    (subscription,) = await subscription_reads.details(session, [changed.subscription])
    resource = subscription.model_dump(mode="json")
    return Applied(
        "subscription", resource, [SUBSCRIPTION_UPDATED.of(resource), *await change_events(session, changed)]
    )


async def change_events(session: AsyncSession, changed: service.ChangedSubscription) -> list[DomainEvent]:
    """The invoice a change made (or voided) and the payment it asks for."""
    if changed.voided is not None:
        (voided,) = await invoice_reads.details(session, [changed.voided])
        return [INVOICE_VOIDED.of(voided.model_dump(mode="json"))]
    if changed.invoice is None:
        return []
    (invoice,) = await invoice_reads.details(session, [changed.invoice])
    events = new_invoice_events(invoice)
    if changed.payment is not None:
        events.append(PAYMENT_CREATED.of(Payment.model_validate(changed.payment).model_dump(mode="json")))
    return events


# what a period's end tells beyond an update: the subscription ended, or paused at a trial's end
_RENEWAL_EVENT = {SubscriptionStatus.canceled: SUBSCRIPTION_DELETED, SubscriptionStatus.paused: SUBSCRIPTION_PAUSED}


@router.handles(SubscriptionRenew)
async def renew(session: AsyncSession, command: SubscriptionRenew) -> Applied[SubscriptionDetails]:
    changed = await renewals.renew_subscription(session, command, await _now(session, command.id))
    (subscription,) = await subscription_reads.details(session, [changed.subscription])
    resource = subscription.model_dump(mode="json")
    event = _RENEWAL_EVENT.get(subscription.status, SUBSCRIPTION_UPDATED)
    return Applied("subscription", resource, [event.of(resource), *await change_events(session, changed)])


@router.handles(SubscriptionExpireIncomplete)
async def expire_incomplete(
    session: AsyncSession, command: SubscriptionExpireIncomplete
) -> Applied[SubscriptionDetails]:
    changed, expired = await renewals.expire_incomplete(session, command, await _now(session, command.id))
    (subscription,) = await subscription_reads.details(session, [changed.subscription])
    resource = subscription.model_dump(mode="json")
    if not expired:
        return Applied("subscription", resource)  # paid since, or expired before: nothing happened
    return Applied(
        "subscription", resource, [SUBSCRIPTION_DELETED.of(resource), *await change_events(session, changed)]
    )


@router.handles(SubscriptionNotifyTrialEnding)
async def notify_trial_ending(
    session: AsyncSession, command: SubscriptionNotifyTrialEnding
) -> Applied[SubscriptionDetails]:
    row, told = await renewals.notify_trial_ending(session, command, await _now(session, command.id))
    (subscription,) = await subscription_reads.details(session, [row])
    resource = subscription.model_dump(mode="json")
    return Applied("subscription", resource, [SUBSCRIPTION_TRIAL_WILL_END.of(resource)] if told else [])


@router.handles(SubscriptionResume)
async def resume(session: AsyncSession, command: SubscriptionResume) -> Applied[SubscriptionDetails]:
    changed = await renewals.resume_subscription(session, command, await _now(session, command.id))
    (subscription,) = await subscription_reads.details(session, [changed.subscription])
    resource = subscription.model_dump(mode="json")
    return Applied(
        "subscription", resource, [SUBSCRIPTION_RESUMED.of(resource), *await change_events(session, changed)]
    )


@router.handles(SubscriptionCancel)
async def cancel(session: AsyncSession, command: SubscriptionCancel) -> Applied[SubscriptionDetails]:
    changed = await service.cancel_subscription(session, command, await _now(session, command.id))
    (subscription,) = await subscription_reads.details(session, [changed.subscription])
    resource = subscription.model_dump(mode="json")
    return Applied(
        "subscription", resource, [SUBSCRIPTION_DELETED.of(resource), *await change_events(session, changed)]
    )
