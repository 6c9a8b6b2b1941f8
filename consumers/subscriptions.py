"""Subscription commands: parse, call billing.subscriptions.service, report what happened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing import clock
from billing.invoices import repository as invoice_reads
from billing.subscriptions import repository as subscription_reads
from billing.subscriptions import service
from consumers.registry import Applied, CommandRouter
from contracts.enums import InvoiceStatus
from contracts.events import (
    INVOICE_CREATED,
    INVOICE_FINALIZED,
    INVOICE_PAID,
    INVOICE_VOIDED,
    PAYMENT_CREATED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_DELETED,
    SUBSCRIPTION_UPDATED,
    DomainEvent,
)
from contracts.invoices import InvoiceDetails
from contracts.resources import Payment
from contracts.subscriptions import (
    SubscriptionCancel,
    SubscriptionCreate,
    SubscriptionDetails,
    SubscriptionUpdateCommand,
)

router = CommandRouter()


def new_invoice_events(invoice: InvoiceDetails) -> list[DomainEvent]:
    """A new invoice, finalized at once: created, finalized, and paid when nothing was due."""
    data = invoice.model_dump(mode="json")
    events = [INVOICE_CREATED.of(data), INVOICE_FINALIZED.of(data)]
    if invoice.status is InvoiceStatus.paid:
        events.append(INVOICE_PAID.of(data))
    return events


@router.handles(SubscriptionCreate)
async def create(session: AsyncSession, command: SubscriptionCreate) -> Applied[SubscriptionDetails]:
    created = await service.create_subscription(session, command, clock.now())
    (subscription,) = await subscription_reads.details(session, [created.subscription])
    (invoice,) = await invoice_reads.details(session, [created.invoice])
    resource = subscription.model_dump(mode="json")
    events = [SUBSCRIPTION_CREATED.of(resource), *new_invoice_events(invoice)]
    if created.payment is not None:
        events.append(PAYMENT_CREATED.of(Payment.model_validate(created.payment).model_dump(mode="json")))
    return Applied("subscription", resource, events)


@router.handles(SubscriptionUpdateCommand)
async def update(session: AsyncSession, command: SubscriptionUpdateCommand) -> Applied[SubscriptionDetails]:
    changed = await service.update_subscription(session, command.id, command.changes)
    (subscription,) = await subscription_reads.details(session, [changed])
    resource = subscription.model_dump(mode="json")
    return Applied("subscription", resource, [SUBSCRIPTION_UPDATED.of(resource)])


@router.handles(SubscriptionCancel)
async def cancel(session: AsyncSession, command: SubscriptionCancel) -> Applied[SubscriptionDetails]:
    changed = await service.cancel_subscription(session, command, clock.now())
    (subscription,) = await subscription_reads.details(session, [changed.subscription])
    resource = subscription.model_dump(mode="json")
    events = [SUBSCRIPTION_DELETED.of(resource)]
    if changed.invoice is not None:
        (invoice,) = await invoice_reads.details(session, [changed.invoice])
        if invoice.status is InvoiceStatus.void:
            events.append(INVOICE_VOIDED.of(invoice.model_dump(mode="json")))
        else:
            events.extend(new_invoice_events(invoice))
    return Applied("subscription", resource, events)
