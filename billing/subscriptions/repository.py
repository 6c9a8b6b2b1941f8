"""Tenant-scoped subscription reads (the tenant session adds the filter), answered as
`SubscriptionDetails`: the subscription with its items and its latest invoice."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import CreatedRange, Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.models import Invoice, Subscription, SubscriptionItem, SubscriptionTaxRate
from contracts.enums import SubscriptionStatus
from contracts.resources import Subscription as SubscriptionResource
from contracts.resources import SubscriptionItem as SubscriptionItemResource
from contracts.subscriptions import SubscriptionDetails, SubscriptionItemDetails


async def details(session: AsyncSession, subscriptions: Sequence[Subscription]) -> list[SubscriptionDetails]:
    """Each subscription with its items (oldest first), its tax rates and its latest
    invoice's id: three queries for the lot."""
    ids = [subscription.id for subscription in subscriptions]
    items = (
        await session.scalars(
            select(SubscriptionItem)
            .where(SubscriptionItem.subscription_id.in_(ids))
            .order_by(SubscriptionItem.created_at, SubscriptionItem.id)
        )
    ).all()
    latest = (
        await session.execute(
            select(Invoice.subscription_id, Invoice.id)
            .where(Invoice.subscription_id.in_(ids))
            .ext(distinct_on(Invoice.subscription_id))
            .order_by(Invoice.subscription_id, Invoice.created_at.desc(), Invoice.id.desc())
        )
    ).all()
    latest_by_subscription = {row.subscription_id: row.id for row in latest}
    tax_rates = (
        await session.scalars(
            select(SubscriptionTaxRate)
            .where(SubscriptionTaxRate.subscription_id.in_(ids))
            .order_by(SubscriptionTaxRate.position, SubscriptionTaxRate.id)
        )
    ).all()
    rates_of: dict[tuple[str, str | None], list[str]] = {}
    for rate in tax_rates:
        rates_of.setdefault((rate.subscription_id, rate.subscription_item_id), []).append(rate.tax_rate_id)
    return [
        SubscriptionDetails(
            **SubscriptionResource.model_validate(subscription).model_dump(),
            items=[
                SubscriptionItemDetails(
                    **SubscriptionItemResource.model_validate(item).model_dump(),
                    taxRates=rates_of.get((subscription.id, item.id), []),
                )
                for item in items
                if item.subscription_id == subscription.id
            ],
            defaultTaxRates=rates_of.get((subscription.id, None), []),
            latestInvoice=latest_by_subscription.get(subscription.id),
        )
        for subscription in subscriptions
    ]


async def get_subscription(session: AsyncSession, subscription_id: str) -> SubscriptionDetails | None:
    subscription = await get_one(session, Subscription, Subscription.id, subscription_id)
    if subscription is None:
        return None
    (found,) = await details(session, [subscription])
    return found


async def list_subscriptions(
    session: AsyncSession,
    page: PageRequest,
    *,
    customer: str | None = None,
    price: str | None = None,
    status: SubscriptionStatus | None = None,
    created: CreatedRange = CreatedRange(),
) -> Page[SubscriptionDetails]:
    """Newest first. Like Stripe, without a status filter canceled subscriptions are left out."""
    tenant_of(session)
    statement = select(Subscription)
    if customer is not None:
        statement = statement.where(Subscription.customer_id == customer)
    if price is not None:
        statement = statement.where(
            Subscription.id.in_(select(SubscriptionItem.subscription_id).where(SubscriptionItem.price_id == price))
        )
    if status is not None:
        statement = statement.where(Subscription.status == status)
    else:
        statement = statement.where(Subscription.status != SubscriptionStatus.canceled)
    statement = created.apply(statement, Subscription.created_at)
    found = await paginate(session, statement, Subscription, page, "subscription")
    return Page(await details(session, found.items), found.has_more)
