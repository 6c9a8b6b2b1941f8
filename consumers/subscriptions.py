"""Subscription commands: parse, call billing.subscriptions.service, report what happened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing import clock
from billing.invoices import repository as invoice_reads
from billing.subscriptions import repository as subscription_reads
from billing.subscriptions import service
from consumers.registry import Applied, CommandRouter
from contracts.enums import InvoiceStatus
from contracts.events import INVOICE_CREATED, INVOICE_FINALIZED, INVOICE_PAID, PAYMENT_CREATED, SUBSCRIPTION_CREATED
from contracts.resources import Payment
from contracts.subscriptions import SubscriptionCreate, SubscriptionDetails

router = CommandRouter()


@router.handles(SubscriptionCreate)
async def create(session: AsyncSession, command: SubscriptionCreate) -> Applied[SubscriptionDetails]:
    created = await service.create_subscription(session, command, clock.now())
    (subscription,) = await subscription_reads.details(session, [created.subscription])
    (invoice,) = await invoice_reads.details(session, [created.invoice])
    resource, invoice_data = subscription.model_dump(mode="json"), invoice.model_dump(mode="json")
    events = [SUBSCRIPTION_CREATED.of(resource), INVOICE_CREATED.of(invoice_data), INVOICE_FINALIZED.of(invoice_data)]
    if invoice.status is InvoiceStatus.paid:
        events.append(INVOICE_PAID.of(invoice_data))
    if created.payment is not None:
        events.append(PAYMENT_CREATED.of(Payment.model_validate(created.payment).model_dump(mode="json")))
    return Applied("subscription", resource, events)
