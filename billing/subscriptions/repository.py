"""Tenant-scoped subscription reads (the tenant session adds the filter), answered as
`SubscriptionDetails`: the subscription with its items and its latest invoice."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import CreatedRange, Page, PageRequest, paginate
from billing.db.search import Clause, SearchQuery, combined, text_condition
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest
from billing.models import Invoice, Subscription, SubscriptionItem, SubscriptionTaxRate
from contracts.enums import SubscriptionStatus
from contracts.resources import Subscription as SubscriptionResource
from contracts.resources import SubscriptionItem as SubscriptionItemResource
from contracts.subscriptions import SubscriptionDetails, SubscriptionItemDetails

# Stripe's subscription search fields (but created, which takes comparisons)
SEARCHABLE_FIELDS = {"status", "metadata"}


async def details(session: AsyncSession, subscriptions: Sequence[Subscription]) -> list[SubscriptionDetails]:
    """Each subscription with its items (oldest first), its tax rates and its latest
    invoice's id: three queries for the lot."""
    ids = [subscription.id for subscription in subscriptions]
    items = (
        await session.scalars(
            select(SubscriptionItem)
            .where(SubscriptionItem.subscription_id.in_(ids))
            .order_by(SubscriptionItem.position, SubscriptionItem.created_at, SubscriptionItem.id)
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


def _clause_condition(clause: Clause) -> ColumnElement[bool]:
    if clause.field == "status":
        if clause.op != ":" or clause.value not in SubscriptionStatus.__members__:
            raise InvalidRequest(
                f"Search status:'<status>' with one of {', '.join(SubscriptionStatus.__members__)}.",
                code="invalid_search_query",
                param="query",
            )
        return Subscription.status == SubscriptionStatus(clause.value)
    return text_condition(Subscription.metadata_[clause.key].astext, clause)


async def search_subscriptions(
    session: AsyncSession, query: SearchQuery, page: PageRequest
) -> Page[SubscriptionDetails]:
    """Newest first; canceled ones too (unlike the list, a search says what it wants)."""
    tenant_of(session)
    conditions = [_clause_condition(clause) for clause in query.clauses]
    found = await paginate(
        session, select(Subscription).where(combined(query, conditions)), Subscription, page, "subscription"
    )
    return Page(await details(session, found.items), found.has_more)
