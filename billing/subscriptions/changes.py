"""Plan changes: a subscription's items changed inside its period, prorated.

`plan_change` only reads: it prices the items before and after the change and computes
the proration lines (billing.invoices.lines). The update applies that plan, and the
upcoming-invoice preview shows what the plan would invoice, from the same plan and the
same line functions, so the preview and the invoice agree to the minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.pricing import UnsupportedCurrency
from billing.catalog.repository import get_price, get_product, price_terms
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.invoices.lines import DraftLine, ItemToBill, advance_line, amount_per_interval, proration_draft_lines
from billing.models import InvoiceItem, Price, Subscription, SubscriptionItem
from billing.organizations.billing_settings import change_rules, get_billing_settings
from billing.subscriptions.change_rules import ChangeDecision, ChangeTiming, decide_change
from billing.subscriptions.periods import Interval, InvalidPeriod, Period, first_period, next_period, utc
from billing.subscriptions.proration import remaining_share
from contracts.enums import PriceType, ProrationBehavior, RecurringInterval, SubscriptionStatus, UsageType
from contracts.subscriptions import SubscriptionItemChange, SubscriptionItemChanges


@dataclass(frozen=True)
class BilledItem:
    item: ItemToBill
    licensed: bool
    interval: Interval


@dataclass(frozen=True)
class PlannedChange:
    subscription: Subscription
    before: list[BilledItem]
    after: list[BilledItem]
    removed: list[str]  # ids of items that go
    period: Period
    at: datetime
    behavior: ProrationBehavior
    prorations: list[DraftLine]  # empty unless the behaviour prorates
    # an interval change (Stripe's rule): a new cycle from `at`, its first period invoiced now
    new_period: Period | None = None
    new_period_lines: list[DraftLine] = field(default_factory=list)


def interval_label(interval: Interval) -> str:
    return str(interval.unit) if interval.count == 1 else f"{interval.count} {interval.unit}s"


def price_interval(price: Price) -> Interval:
    assert price.recurring_interval is not None  # a recurring price has one
    return Interval(RecurringInterval(price.recurring_interval), price.recurring_interval_count or 1)


async def billed_item(session: AsyncSession, key: str, price: Price, quantity: int) -> BilledItem:
    product = await get_product(session, price.product_id)
    assert product is not None  # a price's product is kept while prices refer to it
    interval = price_interval(price)
    item = ItemToBill(key, price.id, product.name, quantity, price_terms(price), interval_label(interval))
    return BilledItem(item, price.recurring_usage_type is not UsageType.metered, interval)


async def current_items(session: AsyncSession, subscription: Subscription) -> list[BilledItem]:
    rows = (
        await session.scalars(
            select(SubscriptionItem)
            .where(SubscriptionItem.subscription_id == subscription.id)
            .order_by(SubscriptionItem.position, SubscriptionItem.created_at, SubscriptionItem.id)
        )
    ).all()
    billed = []
    for row in rows:
        price = await get_price(session, row.price_id)
        assert price is not None  # an item's price is kept (Restrict)
        billed.append(await billed_item(session, row.id, price, row.quantity))
    return billed


def check_price_currency(price: Price, currency: str, param: str) -> None:
    """A subscription charges a price's own amounts in its currency, never a conversion."""
    try:
        price_terms(price).terms_in(currency)
    except UnsupportedCurrency as error:
        raise InvalidRequest(error.message, code="currency_not_supported", param=param) from None


# what takes a price of each type, and the code refusing the other type (Stripe's)
_TAKERS = {PriceType.recurring: "a subscription item", PriceType.one_time: "an invoice item"}
_WRONG_TYPE = {PriceType.recurring: "price_not_recurring", PriceType.one_time: "price_not_one_time"}


async def usable_price(
    session: AsyncSession, price_id: str, param: str, price_type: PriceType = PriceType.recurring
) -> Price:
    """A price a subscription item (recurring) or an invoice item (one_time) may take:
    this organization's, active, of that type."""
    price = await get_price(session, price_id)
    if price is None:
        raise ResourceMissing("price", price_id, param=param)
    taker = _TAKERS[price_type]
    if not price.active:
        raise InvalidRequest(
            f"The price {price.id} is archived; {taker} cannot take it.", code="price_inactive", param=param
        )
    if price.type is not price_type:
        raise InvalidRequest(
            f"The price {price.id} is a {price.type} price; {taker} needs a {price_type} price.",
            code=_WRONG_TYPE[price_type],
            param=param,
        )
    return price


async def plan_change(
    session: AsyncSession, subscription: Subscription, changes: SubscriptionItemChanges, now: datetime
) -> PlannedChange:
    """The items after `changes.items` and the proration lines for the change (no writes)."""
    before = await current_items(session, subscription)
    after = {billed.item.key: billed for billed in before}
    removed: list[str] = []
    for index, change in enumerate(changes.items or []):
        param = f"items[{index}]"
        if change.id is None:
            if change.price is None or change.deleted:
                raise InvalidRequest("A new item needs a price.", code="parameter_missing", param=f"{param}[price]")
            price = await usable_price(session, change.price, f"{param}[price]")
            check_price_currency(price, subscription.currency, f"{param}[price]")
            if any(billed.item.price_id == price.id for billed in after.values()):
                raise InvalidRequest(
                    f"The price {price.id} is on the subscription already; change that item's quantity.",
                    code="parameter_invalid",
                    param=f"{param}[price]",
                )
            key = new_id("subscription_item")
            after[key] = await billed_item(session, key, price, 1 if change.quantity is None else change.quantity)
            continue
        if change.id not in after:
            raise ResourceMissing("subscription_item", change.id, param=f"{param}[id]")
        if change.deleted:
            del after[change.id]
            removed.append(change.id)
            continue
        current = after[change.id]
        quantity = current.item.quantity if change.quantity is None else change.quantity
        if change.price is not None and change.price != current.item.price_id:
            price = await usable_price(session, change.price, f"{param}[price]")
            check_price_currency(price, subscription.currency, f"{param}[price]")
        else:
            kept = await get_price(session, current.item.price_id)
            assert kept is not None  # an item's price is kept (Restrict)
            price = kept
        after[change.id] = await billed_item(session, change.id, price, quantity)
    if not after:
        raise InvalidRequest("A subscription needs at least one item.", code="parameter_invalid", param="items")
    intervals = {billed.interval for billed in after.values()}
    if len(intervals) != 1:
        raise InvalidRequest(
            "Every item of a subscription must have the same interval.", code="price_interval_mismatch", param="items"
        )
    (interval,) = intervals
    interval_changes = interval != before[0].interval
    if interval_changes and subscription.status is SubscriptionStatus.trialing:
        raise InvalidRequest(
            "The interval cannot change during a trial: end the trial or change it once the trial is over.",
            code="price_interval_mismatch",
            param="items",
        )
    period = Period(subscription.current_period_start, subscription.current_period_end)
    at = utc(changes.prorationDate or now, "prorationDate")
    try:
        remaining_share(period, at)
    except InvalidPeriod as error:
        if changes.items is not None:
            raise InvalidRequest(str(error), code="parameter_invalid", param="prorationDate") from None
        at = period.end  # no change: the preview of a renewal that is due now
    behavior = changes.prorationBehavior or ProrationBehavior.create_prorations
    if subscription.status is SubscriptionStatus.trialing or changes.items is None:
        # nothing is charged during a trial, and no change has nothing to prorate
        behavior = ProrationBehavior.none
    items_after = list(after.values())
    licensed_before = [b.item for b in before if b.licensed]
    licensed_after = [b.item for b in items_after if b.licensed]
    if interval_changes:
        # Stripe's rule: the cycle restarts now, the unused time is credited (unless
        # prorationBehavior none) and the new interval's first period is invoiced at once
        new_period = first_period(at, interval)
        credits = (
            []
            if behavior is ProrationBehavior.none
            else proration_draft_lines(licensed_before, [], subscription.currency, period, at)
        )
        charges = [advance_line(item, subscription.currency, new_period, new_period) for item in licensed_after]
        return PlannedChange(
            subscription, before, items_after, removed, period, at, behavior, credits, new_period, charges
        )
    prorations = (
        []
        if behavior is ProrationBehavior.none
        else proration_draft_lines(licensed_before, licensed_after, subscription.currency, period, at)
    )
    return PlannedChange(subscription, before, items_after, removed, period, at, behavior, prorations)


@dataclass(frozen=True)
class RuledChange:
    plan: PlannedChange  # with the proration behaviour the rule gives
    deferred: ChangeDecision | None  # the rule keeps the change for the period's end


async def _decide(session: AsyncSession, plan: PlannedChange, requested: ProrationBehavior | None) -> ChangeDecision:
    """The organization's rule for this change, by its direction (the amount per interval
    before and after) and whether it touches a credit product."""
    rules, credit_products = change_rules((await get_billing_settings(session)).changeRules)
    currency = plan.subscription.currency
    before = {b.item.key: b.item for b in plan.before}
    after = {b.item.key: b.item for b in plan.after}
    touched = [
        item for key, item in [*before.items(), *after.items()] if (before.get(key), after.get(key)) != (item, item)
    ]
    involves_credit = False
    for item in touched:
        price = await get_price(session, item.price_id)
        involves_credit = involves_credit or (price is not None and price.product_id in credit_products)
    return decide_change(
        rules,
        amount_per_interval([b.item for b in plan.before if b.licensed], currency),
        amount_per_interval([b.item for b in plan.after if b.licensed], currency),
        requested,
        involves_credit_product=involves_credit,
    )


async def ruled_plan(
    session: AsyncSession, subscription: Subscription, changes: SubscriptionItemChanges, now: datetime
) -> RuledChange:
    """`changes` as the organization's change rules have them made: at once with the rule's
    proration behaviour, or kept for the period's end. An interval change restarts the
    cycle now (Stripe's rule), whatever the timing rule says."""
    plan = await plan_change(session, subscription, changes, now)
    decision = await _decide(session, plan, changes.prorationBehavior)
    if decision.timing is ChangeTiming.period_end and plan.new_period is None:
        return RuledChange(plan, decision)
    if decision.proration_behavior is not plan.behavior:
        ruled = changes.model_copy(update={"prorationBehavior": decision.proration_behavior})
        plan = await plan_change(session, subscription, ruled, now)
    return RuledChange(plan, None)


async def deferred_plan(
    session: AsyncSession, subscription: Subscription, items: list[SubscriptionItemChange], now: datetime
) -> PlannedChange:
    """A change kept for the period's end, planned against the current items without
    proration (it starts with the next period)."""
    changes = SubscriptionItemChanges(
        items=items, prorationBehavior=ProrationBehavior.none, prorationDate=subscription.current_period_start
    )
    return await plan_change(session, subscription, changes, now)


async def scheduled_plan(session: AsyncSession, subscription: Subscription, now: datetime) -> PlannedChange | None:
    """The change the organization's rules kept for the period's end; None without one."""
    if subscription.scheduled_change is None:
        return None
    items = [SubscriptionItemChange(**change) for change in subscription.scheduled_change["items"]]
    return await deferred_plan(session, subscription, items, now)


async def pending_items(session: AsyncSession, subscription: Subscription) -> list[InvoiceItem]:
    """The subscription's invoice items not on an invoice yet, oldest first."""
    return list(
        (
            await session.scalars(
                select(InvoiceItem)
                .where(InvoiceItem.subscription_id == subscription.id, InvoiceItem.invoice_id.is_(None))
                .order_by(InvoiceItem.created_at, InvoiceItem.position, InvoiceItem.id)
            )
        ).all()
    )


def renewal_lines(plan_items: list[BilledItem], currency: str, period: Period, anchor: datetime) -> list[DraftLine]:
    """The next period's advance lines for the licensed items (what a renewal bills)."""
    upcoming = next_period(period, anchor, plan_items[0].interval)
    return [advance_line(b.item, currency, upcoming, upcoming) for b in plan_items if b.licensed]


def unlinked(lines: list[DraftLine], removed: list[str]) -> list[DraftLine]:
    """`lines` with no link to the items in `removed`, as they are once the change has
    deleted those: an invoice line may only refer to a live item (its foreign key sets the
    link null), and so may a waiting invoice item (apply_plan unlinks it), which the next
    invoice then taxes by the subscription's default rates."""
    return [
        replace(line, subscription_item_id=None) if line.subscription_item_id in removed else line for line in lines
    ]


def invoiced_now(plan: PlannedChange, pending: list[DraftLine]) -> list[DraftLine] | None:
    """The lines a change invoices at once: always_invoice's (what was pending, then the
    change's prorations) and an interval change's (those, then the new first period), or
    None when the change invoices nothing now."""
    if plan.new_period is not None:
        return [*pending, *plan.prorations, *plan.new_period_lines]
    if plan.behavior is not ProrationBehavior.always_invoice:
        return None
    return [*pending, *plan.prorations]


def change_period(plan: PlannedChange) -> Period:
    """The span an invoice made by the change covers: from the change to the period's end
    (an interval change's: its new first period)."""
    return plan.new_period or Period(plan.at, plan.period.end)
