"""Tenant-scoped payment method and payment reads, for the API and for the services' checks.

Every function takes a tenant session (`billing.db.sessions.tenant_session`), which adds the
organization filter to each query: another tenant's customer or payment method is simply
not found.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import tenant_of
from billing.models import Customer, CustomerPaymentMethod, Payment, ProcessedCommand, Subscription
from contracts.enums import CommandStatus, PaymentMethodType, SubscriptionStatus

# Subscriptions that still bill the customer: everything but the ended ones.
LIVE_SUBSCRIPTION_STATUSES = frozenset(SubscriptionStatus) - {
    SubscriptionStatus.canceled,
    SubscriptionStatus.incomplete_expired,
}


async def get_live_customer(session: AsyncSession, customer_id: str, *, for_update: bool = False) -> Customer | None:
    """A customer of this tenant that is not deleted, or None."""
    tenant_of(session)
    statement = select(Customer).where(Customer.id == customer_id, Customer.deleted.is_(False))
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def get_payment_method(
    session: AsyncSession, customer_id: str, payment_method_id: str, *, for_update: bool = False
) -> CustomerPaymentMethod | None:
    """One of the customer's payment methods (another customer's is not found)."""
    tenant_of(session)
    statement = select(CustomerPaymentMethod).where(
        CustomerPaymentMethod.id == payment_method_id, CustomerPaymentMethod.customer_id == customer_id
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def list_payment_methods(
    session: AsyncSession, customer_id: str, page: PageRequest, *, type: PaymentMethodType | None = None
) -> Page[CustomerPaymentMethod]:
    tenant_of(session)
    statement = select(CustomerPaymentMethod).where(CustomerPaymentMethod.customer_id == customer_id)
    if type is not None:
        statement = statement.where(CustomerPaymentMethod.type == type)
    return await paginate(session, statement, CustomerPaymentMethod, page, "payment_method")


async def find_by_gateway_id(
    session: AsyncSession, gateway_payment_method_id: str, gateway: str = "stripe", *, for_update: bool = False
) -> CustomerPaymentMethod | None:
    """The tenant's payment method for a gateway token (unique per organization and gateway)."""
    tenant_of(session)
    statement = select(CustomerPaymentMethod).where(
        CustomerPaymentMethod.gateway == gateway,
        CustomerPaymentMethod.gateway_payment_method_id == gateway_payment_method_id,
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def find_by_fingerprint(
    session: AsyncSession, customer_id: str, fingerprint: str | None, gateway: str = "stripe"
) -> CustomerPaymentMethod | None:
    """The customer's payment method with this fingerprint (the same card), oldest first."""
    if not fingerprint:
        return None
    tenant_of(session)
    statement = (
        select(CustomerPaymentMethod)
        .where(
            CustomerPaymentMethod.customer_id == customer_id,
            CustomerPaymentMethod.fingerprint == fingerprint,
            CustomerPaymentMethod.gateway == gateway,
        )
        .order_by(CustomerPaymentMethod.created_at, CustomerPaymentMethod.id)
        .limit(1)
    )
    return (await session.scalars(statement)).first()


async def find_customer_by_gateway_id(session: AsyncSession, gateway_customer_id: str | None) -> Customer | None:
    """Our live customer for a Stripe customer id (webhooks name only Stripe's ids)."""
    if not gateway_customer_id:
        return None
    tenant_of(session)
    statement = (
        select(Customer)
        .where(Customer.gateway_customer_id == gateway_customer_id, Customer.deleted.is_(False))
        .order_by(Customer.created_at, Customer.id)
        .limit(1)
    )
    return (await session.scalars(statement)).first()


async def live_subscription_ids(
    session: AsyncSession, customer_id: str, *, using_payment_method: str | None = None
) -> list[str]:
    """Ids of the customer's subscriptions that still bill (all, or those whose own default
    payment method is `using_payment_method`)."""
    tenant_of(session)
    statement = select(Subscription.id).where(
        Subscription.customer_id == customer_id, Subscription.status.in_(LIVE_SUBSCRIPTION_STATUSES)
    )
    if using_payment_method is not None:
        statement = statement.where(Subscription.default_payment_method_id == using_payment_method)
    return list((await session.scalars(statement.order_by(Subscription.created_at, Subscription.id).limit(10))).all())


async def recorded_gateway_events(
    session: AsyncSession, command_types: Collection[str], gateway_payment_method_id: str
) -> list[ProcessedCommand]:
    """The succeeded commands of these types that name this gateway payment method in their
    result: how a webhook learns that a payment method was detached (for good: Stripe never
    re-attaches a detached PaymentMethod) or synced from a newer event.

    Scans the organization's processed commands of those types (there is no index on the
    result's JSON); bounded by how many payment method commands one organization has."""
    tenant_of(session)
    statement = select(ProcessedCommand).where(
        ProcessedCommand.type.in_(list(command_types)),
        ProcessedCommand.status == CommandStatus.succeeded,
        ProcessedCommand.result["gatewayPaymentMethodId"].astext == gateway_payment_method_id,
    )
    return list((await session.scalars(statement)).all())


async def latest_attempt(session: AsyncSession, invoice_id: str) -> Payment | None:
    """The invoice's newest payment attempt (the first one, for a new subscription's invoice)."""
    tenant_of(session)
    return (
        await session.scalars(
            select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.attempt_number.desc()).limit(1)
        )
    ).one_or_none()
