"""Payment commands: payment methods, the organization's Stripe account, Stripe webhooks.

Database-only: the API has already called Stripe and each command carries the answer. A
PaymentIntent's webhook that belongs to one of our payment attempts settles it (the same
outcome as the payment worker's, applied once).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clocks import service as clocks
from billing.models import Payment as PaymentRow
from billing.organizations import stripe_account
from billing.payments import attempts, refunds, service
from billing.payments.service import EventReceipt
from consumers.invoices import outcome_events, retried_with_new_default
from consumers.registry import Applied, CommandRouter
from contracts.events import (
    CUSTOMER_UPDATED,
    PAYMENT_METHOD_ATTACHED,
    PAYMENT_METHOD_DETACHED,
    PAYMENT_UPDATED,
    REFUND_CREATED,
    STRIPE_ACCOUNT_CONNECTED,
    STRIPE_ACCOUNT_DISCONNECTED,
)
from contracts.payments import (
    AttachPaymentMethodCommand,
    ConnectStripeAccountCommand,
    DetachPaymentMethodCommand,
    DisconnectStripeAccountCommand,
    RecordPaymentFailed,
    RecordPaymentSucceeded,
    RecordSetupIntentSucceeded,
    SetDefaultPaymentMethodCommand,
    SetGatewayCustomerCommand,
    StripeAccount,
    SyncPaymentMethodAttached,
    SyncPaymentMethodDetached,
    SyncPaymentMethodUpdated,
)
from contracts.refunds import RefundRecord
from contracts.resources import Customer, CustomerPaymentMethod, Payment, Refund

router = CommandRouter()


def _customer(customer: object) -> dict[str, Any]:
    return Customer.model_validate(customer).model_dump(mode="json")


@router.handles(SetGatewayCustomerCommand)
async def set_gateway_customer(session: AsyncSession, command: SetGatewayCustomerCommand) -> Applied[Customer]:
    customer, changed = await service.set_gateway_customer(session, command.customerId, command.gatewayCustomerId)
    resource = _customer(customer)
    return Applied("customer", resource, [CUSTOMER_UPDATED.of(resource)] if changed else [])


@router.handles(AttachPaymentMethodCommand)
async def attach(session: AsyncSession, command: AttachPaymentMethodCommand) -> Applied[CustomerPaymentMethod]:
    result = await service.attach_payment_method(session, command.customerId, command.gatewayCustomerId, command.method)
    resource = service.resource(result.method)
    return Applied("payment_method", resource, [PAYMENT_METHOD_ATTACHED.of(resource)] if result.created else [])


@router.handles(DetachPaymentMethodCommand)
async def detach(session: AsyncSession, command: DetachPaymentMethodCommand) -> Applied[CustomerPaymentMethod]:
    resource = await service.detach_payment_method(session, command.customerId, command.paymentMethodId)
    return Applied("payment_method", resource, [PAYMENT_METHOD_DETACHED.of(resource)])


@router.handles(SetDefaultPaymentMethodCommand)
async def set_default(session: AsyncSession, command: SetDefaultPaymentMethodCommand) -> Applied[Customer]:
    customer = await service.set_default_payment_method(session, command.customerId, command.paymentMethodId)
    resource = _customer(customer)
    return Applied(
        "customer", resource, [CUSTOMER_UPDATED.of(resource), *await retried_with_new_default(session, customer)]
    )


@router.handles(ConnectStripeAccountCommand)
async def connect(session: AsyncSession, command: ConnectStripeAccountCommand) -> Applied[StripeAccount]:
    organization_id = await stripe_account.connect(session, command)
    view = stripe_account.view_of_command(organization_id, command).model_dump(mode="json")
    return Applied("stripe_account", {"id": organization_id, **view}, [STRIPE_ACCOUNT_CONNECTED.of(view)])


@router.handles(DisconnectStripeAccountCommand)
async def disconnect(session: AsyncSession, command: DisconnectStripeAccountCommand) -> Applied[StripeAccount]:
    organization_id = await stripe_account.disconnect(session)
    view = stripe_account.view_of_command(organization_id, None).model_dump(mode="json")
    return Applied("stripe_account", {"id": organization_id, **view}, [STRIPE_ACCOUNT_DISCONNECTED.of(view)])


# -- Stripe webhooks (the API verified the signature and mapped the event)


def _receipt(outcome: EventReceipt) -> Applied[dict[str, Any]]:
    return Applied("stripe_event", outcome.receipt, outcome.events)


async def sync_payment_method(
    session: AsyncSession, command: SyncPaymentMethodAttached | SyncPaymentMethodUpdated | SyncPaymentMethodDetached
) -> Applied[dict[str, Any]]:
    return _receipt(await service.sync_payment_method(session, command))


async def record_payment(
    session: AsyncSession, command: RecordPaymentSucceeded | RecordPaymentFailed
) -> Applied[dict[str, Any]]:
    """Recorded; when the PaymentIntent is one of our attempts, its outcome is applied too,
    once, whether the payment worker's answer came first or comes later."""
    receipt = await service.record_payment(session, command)
    payment = await attempts.attempt_for_gateway_payment(
        session, command.metadata.get("payment"), command.gatewayPaymentIntentId
    )
    events = list(receipt.events)
    if payment is not None:
        applied = await attempts.apply_outcome(
            session,
            attempts.webhook_outcome(payment.id, command),
            await clocks.now_for(session, PaymentRow, payment.id),
        )
        events += await outcome_events(session, applied)
    return Applied("stripe_event", receipt.receipt, events)


for _sync in (SyncPaymentMethodAttached, SyncPaymentMethodUpdated, SyncPaymentMethodDetached):
    router.handles(_sync)(sync_payment_method)
for _payment in (RecordPaymentSucceeded, RecordPaymentFailed):
    router.handles(_payment)(record_payment)


@router.handles(RecordSetupIntentSucceeded)
async def setup_succeeded(session: AsyncSession, command: RecordSetupIntentSucceeded) -> Applied[dict[str, Any]]:
    return _receipt(await service.record_setup_intent(session, command))


@router.handles(RefundRecord)
async def record_refund(session: AsyncSession, command: RefundRecord) -> Applied[Refund]:
    refund, payment, recorded = await refunds.record_refund(session, command)
    resource = Refund.model_validate(refund).model_dump(mode="json")
    if not recorded:
        return Applied("refund", resource)
    payment_resource = Payment.model_validate(payment).model_dump(mode="json")
    return Applied("refund", resource, [REFUND_CREATED.of(resource), PAYMENT_UPDATED.of(payment_resource)])
