"""Payment commands: payment methods, the organization's Stripe account, Stripe webhooks.

Database-only: the API has already called Stripe and each command carries the answer.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.organizations import stripe_account
from billing.payments import service
from billing.payments.service import EventReceipt
from billing.payments.webhooks import (
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    SETUP_SUCCEEDED,
    SYNC_ATTACHED,
    SYNC_DETACHED,
    SYNC_UPDATED,
)
from consumers.registry import Applied, CommandRouter
from contracts.payments import (
    AttachPaymentMethodCommand,
    ConnectStripeAccountCommand,
    DetachPaymentMethodCommand,
    DisconnectStripeAccountCommand,
    SetDefaultPaymentMethodCommand,
    SetGatewayCustomerCommand,
    StripePaymentEvent,
    StripePaymentMethodEvent,
    StripeSetupIntentEvent,
)
from contracts.resources import Customer

router = CommandRouter()


def _customer(customer: object) -> dict:  # type: ignore[type-arg]
    return Customer.model_validate(customer).model_dump(mode="json")


@router.command(service.SET_GATEWAY_CUSTOMER, SetGatewayCustomerCommand)
async def set_gateway_customer(session: AsyncSession, payload: SetGatewayCustomerCommand) -> Applied:
    customer, changed = await service.set_gateway_customer(session, payload.customerId, payload.gatewayCustomerId)
    resource = _customer(customer)
    return Applied("customer", resource, [("customer.updated", resource)] if changed else [])


@router.command(service.ATTACH, AttachPaymentMethodCommand)
async def attach(session: AsyncSession, payload: AttachPaymentMethodCommand) -> Applied:
    result = await service.attach_payment_method(session, payload.customerId, payload.gatewayCustomerId, payload.method)
    resource = service.resource(result.method)
    return Applied("payment_method", resource, [("payment_method.attached", resource)] if result.created else [])


@router.command(service.DETACH, DetachPaymentMethodCommand)
async def detach(session: AsyncSession, payload: DetachPaymentMethodCommand) -> Applied:
    resource = await service.detach_payment_method(session, payload.customerId, payload.paymentMethodId)
    return Applied("payment_method", resource, [("payment_method.detached", resource)])


@router.command(service.SET_DEFAULT, SetDefaultPaymentMethodCommand)
async def set_default(session: AsyncSession, payload: SetDefaultPaymentMethodCommand) -> Applied:
    resource = _customer(await service.set_default_payment_method(session, payload.customerId, payload.paymentMethodId))
    return Applied("customer", resource, [("customer.updated", resource)])


@router.command(stripe_account.CONNECT, ConnectStripeAccountCommand)
async def connect(session: AsyncSession, payload: ConnectStripeAccountCommand) -> Applied:
    organization_id = await stripe_account.connect(session, payload)
    view = stripe_account.view_of_command(organization_id, payload).model_dump(mode="json")
    return Applied("stripe_account", {"id": organization_id, **view}, [("stripe_account.connected", view)])


@router.command(stripe_account.DISCONNECT, DisconnectStripeAccountCommand)
async def disconnect(session: AsyncSession, payload: DisconnectStripeAccountCommand) -> Applied:
    organization_id = await stripe_account.disconnect(session)
    view = stripe_account.view_of_command(organization_id, None).model_dump(mode="json")
    return Applied("stripe_account", {"id": organization_id, **view}, [("stripe_account.disconnected", view)])


# -- Stripe webhooks (the API verified the signature and mapped the event)


def _receipt(outcome: EventReceipt) -> Applied:
    return Applied("stripe_event", outcome.receipt, outcome.events)


def _sync(command_type: str):  # type: ignore[no-untyped-def]
    async def handle(session: AsyncSession, payload: StripePaymentMethodEvent) -> Applied:
        return _receipt(await service.sync_payment_method(session, command_type, payload))

    return handle


for _type in (SYNC_ATTACHED, SYNC_UPDATED, SYNC_DETACHED):
    router.command(_type, StripePaymentMethodEvent)(_sync(_type))


@router.command(SETUP_SUCCEEDED, StripeSetupIntentEvent)
async def setup_succeeded(session: AsyncSession, payload: StripeSetupIntentEvent) -> Applied:
    return _receipt(await service.record_setup_intent(session, SETUP_SUCCEEDED, payload))


@router.command(PAYMENT_SUCCEEDED, StripePaymentEvent)
async def payment_succeeded(session: AsyncSession, payload: StripePaymentEvent) -> Applied:
    return _receipt(await service.record_payment(session, PAYMENT_SUCCEEDED, payload))


@router.command(PAYMENT_FAILED, StripePaymentEvent)
async def payment_failed(session: AsyncSession, payload: StripePaymentEvent) -> Applied:
    return _receipt(await service.record_payment(session, PAYMENT_FAILED, payload))
