"""Subscription writes, called by the command consumer inside a command's transaction;
never commits, never calls a payment gateway (a charge is the payment worker's, after
commit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.pricing import UnsupportedCurrency
from billing.catalog.repository import get_price, get_product, price_terms
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.invoices import service as invoices
from billing.invoices.lines import DraftLine, ItemToBill, advance_line, proration_draft_lines, trial_line
from billing.models import Customer, Invoice, InvoiceLineItem, Payment, Price, Subscription, SubscriptionItem
from billing.money.currencies import currency_param
from billing.payments import attempts
from billing.payments.repository import get_live_customer, get_payment_method
from billing.requests.patch import merge_metadata, parse_changes
from billing.subscriptions.periods import Interval, InvalidPeriod, Period, first_period, period_at
from billing.subscriptions.status import INITIAL, SubscriptionEvent, check_update, next_status
from contracts.enums import CollectionMethod, InvoiceStatus, PriceType, RecurringInterval, SubscriptionStatus, UsageType
from contracts.subscriptions import SubscriptionCancel, SubscriptionCreate, SubscriptionUpdate


@dataclass(frozen=True)
class CreatedSubscription:
    subscription: Subscription
    items: list[SubscriptionItem]
    invoice: Invoice
    invoice_lines: list[InvoiceLineItem]
    payment: Payment | None  # the first invoice's charge, for the payment worker


def _interval_label(interval: Interval) -> str:
    return str(interval.unit) if interval.count == 1 else f"{interval.count} {interval.unit}s"


def _price_interval(price: Price) -> Interval:
    assert price.recurring_interval is not None  # a recurring price has one
    return Interval(RecurringInterval(price.recurring_interval), price.recurring_interval_count or 1)


async def _prices(session: AsyncSession, command: SubscriptionCreate) -> list[Price]:
    """The items' prices: this organization's, active, recurring, each once, one interval."""
    prices: list[Price] = []
    for index, item in enumerate(command.items):
        param = f"items[{index}][price]"
        price = await get_price(session, item.price)
        if price is None:
            raise ResourceMissing("price", item.price, param=param)
        if not price.active:
            raise InvalidRequest(
                f"The price {price.id} is archived; a new subscription cannot use it.",
                code="price_inactive",
                param=param,
            )
        if price.type is not PriceType.recurring:
            raise InvalidRequest(
                f"The price {price.id} is a one_time price; a subscription item needs a recurring price.",
                code="price_not_recurring",
                param=param,
            )
        if any(earlier.id == price.id for earlier in prices):
            raise InvalidRequest(
                f"The price {price.id} is on the subscription twice; set its quantity instead.",
                code="parameter_invalid",
                param=param,
            )
        if prices and _price_interval(price) != _price_interval(prices[0]):
            raise InvalidRequest(
                "Every item of a subscription must bill at the same interval: "
                f"{prices[0].id} is every {_interval_label(_price_interval(prices[0]))}, "
                f"{price.id} every {_interval_label(_price_interval(price))}.",
                code="price_interval_mismatch",
                param=param,
            )
        prices.append(price)
    return prices


def _currency(command: SubscriptionCreate, customer: Customer, first_price: Price) -> str:
    """The subscription's currency: as asked, else the customer's, else the first price's.
    A customer bills in one currency: its first subscription fixes it (Stripe's rule)."""
    if command.currency is not None:
        currency = currency_param(command.currency, "currency")
    else:
        currency = customer.currency or first_price.currency
    if customer.currency is not None and customer.currency != currency:
        raise InvalidRequest(
            f"The customer bills in {customer.currency}; a subscription in {currency} cannot be added. "
            "A customer's subscriptions and invoices share one currency.",
            code="currency_mismatch",
            param="currency",
        )
    return currency


def _trial_end(command: SubscriptionCreate, now: datetime) -> datetime | None:
    if command.trialPeriodDays is not None:
        return now + timedelta(days=command.trialPeriodDays)
    if command.trialEnd is not None:
        if command.trialEnd <= now:
            raise InvalidRequest(
                "Invalid trialEnd: it must be in the future.", code="parameter_invalid", param="trialEnd"
            )
        return command.trialEnd
    return None


def _check_collection(command: SubscriptionCreate) -> None:
    if command.collectionMethod is CollectionMethod.send_invoice and command.daysUntilDue is None:
        raise InvalidRequest(
            "daysUntilDue is required when collectionMethod is send_invoice.",
            code="parameter_missing",
            param="daysUntilDue",
        )
    if command.collectionMethod is CollectionMethod.charge_automatically and command.daysUntilDue is not None:
        raise InvalidRequest(
            "daysUntilDue applies only when collectionMethod is send_invoice.",
            code="parameter_invalid",
            param="daysUntilDue",
        )


def _first_period(command: SubscriptionCreate, now: datetime, interval: Interval, trial_end: datetime | None) -> Period:
    if trial_end is not None:
        if command.billingCycleAnchor is not None:
            raise InvalidRequest(
                "billingCycleAnchor cannot be combined with a trial: the trial's end anchors the cycle.",
                code="parameter_invalid",
                param="billingCycleAnchor",
            )
        return Period(now, trial_end)
    try:
        return first_period(now, interval, command.billingCycleAnchor)
    except InvalidPeriod as error:
        raise InvalidRequest(str(error), code="parameter_invalid", param="billingCycleAnchor") from None


async def create_subscription(session: AsyncSession, command: SubscriptionCreate, now: datetime) -> CreatedSubscription:
    """A subscription, its items and its first invoice, finalized.

    Its status follows Stripe: trialing during a trial (the first invoice is for zero and
    paid); active when nothing is due or the invoice is sent (send_invoice); incomplete when
    the first invoice must be charged (charge_automatically): the payment settles it.
    """
    organization_id = tenant_of(session)
    _check_collection(command)
    customer = await get_live_customer(session, command.customer, for_update=True)
    if customer is None:
        raise ResourceMissing("customer", command.customer, param="customer")
    if (
        command.defaultPaymentMethod is not None
        and await get_payment_method(session, customer.id, command.defaultPaymentMethod) is None
    ):
        raise ResourceMissing("payment_method", command.defaultPaymentMethod, param="defaultPaymentMethod")
    prices = await _prices(session, command)
    currency = _currency(command, customer, prices[0])
    interval = _price_interval(prices[0])
    to_bill: list[tuple[ItemToBill, bool]] = []  # (item, licensed)
    subscription_id = new_id("subscription")
    items: list[SubscriptionItem] = []
    for index, (request, price) in enumerate(zip(command.items, prices, strict=True)):
        terms = price_terms(price)
        try:
            terms.terms_in(currency)
        except UnsupportedCurrency as error:
            raise InvalidRequest(error.message, code="currency_not_supported", param=f"items[{index}][price]") from None
        product = await get_product(session, price.product_id)
        assert product is not None  # a price's product is kept while prices refer to it
        item = SubscriptionItem(
            id=new_id("subscription_item"),
            organization_id=organization_id,
            subscription_id=subscription_id,
            price_id=price.id,
            quantity=request.quantity,
            metadata_=request.metadata,
        )
        items.append(item)
        billable = ItemToBill(item.id, price.id, product.name, request.quantity, terms, _interval_label(interval))
        to_bill.append((billable, price.recurring_usage_type is not UsageType.metered))

    trial_end = _trial_end(command, now)
    period = _first_period(command, now, interval, trial_end)
    if trial_end is not None:
        anchor = trial_end
        lines: list[DraftLine] = [trial_line(item, period) for item, licensed in to_bill if licensed]
    else:
        # a later anchor makes a short first period, prorated within the cycle's full period
        anchor = command.billingCycleAnchor or now
        full_period = period_at(anchor, interval, now) if command.billingCycleAnchor is not None else period
        lines = [advance_line(item, currency, period, full_period) for item, licensed in to_bill if licensed]

    customer.currency = currency
    subscription = Subscription(
        id=subscription_id,
        organization_id=organization_id,
        customer_id=customer.id,
        status=SubscriptionStatus.incomplete,  # settled below, once the first invoice is
        currency=currency,
        collection_method=command.collectionMethod,
        days_until_due=command.daysUntilDue,
        default_payment_method_id=command.defaultPaymentMethod,
        start_date=now,
        billing_cycle_anchor=anchor,
        current_period_start=period.start,
        current_period_end=period.end,
        trial_start=now if trial_end is not None else None,
        trial_end=trial_end,
        cancel_at_period_end=command.cancelAtPeriodEnd,
        cancel_at=period.end if command.cancelAtPeriodEnd else None,
        metadata_=command.metadata,
    )
    session.add(subscription)
    await session.flush()
    session.add_all(items)
    await session.flush()

    invoice, invoice_lines = await invoices.create_draft(
        session,
        customer,
        lines,
        currency=currency,
        period=period,
        billing_reason="subscription_create",
        subscription=subscription,
    )
    await invoices.finalize(session, invoice, invoice_lines, customer, now, days_until_due=command.daysUntilDue)
    subscription.status = _initial_status(subscription, invoice)
    payment = None
    if subscription.status is SubscriptionStatus.incomplete:
        method = await attempts.payment_method_for(session, customer, subscription)
        if method is not None:  # without one the invoice waits, open, for a payment method
            payment = await attempts.record_attempt(session, invoice, method)
    await session.flush()
    return CreatedSubscription(subscription, items, invoice, invoice_lines, payment)


def _initial_status(subscription: Subscription, invoice: Invoice) -> SubscriptionStatus:
    if subscription.trial_end is not None:
        status = SubscriptionStatus.trialing
    elif invoice.status is InvoiceStatus.paid or subscription.collection_method is CollectionMethod.send_invoice:
        status = SubscriptionStatus.active
    else:
        status = SubscriptionStatus.incomplete
    assert status in INITIAL
    return status


async def _live_subscription(session: AsyncSession, subscription_id: str) -> Subscription:
    subscription = await get_one(session, Subscription, Subscription.id, subscription_id, for_update=True)
    if subscription is None:
        raise ResourceMissing("subscription", subscription_id)
    return subscription


@dataclass(frozen=True)
class ChangedSubscription:
    subscription: Subscription
    invoice: Invoice | None = None  # a final invoice (cancel with prorate), or a voided one
    invoice_lines: list[InvoiceLineItem] | None = None


async def update_subscription(session: AsyncSession, subscription_id: str, changes: dict[str, Any]) -> Subscription:
    """`changes` holds only the fields the client sent (SubscriptionUpdate)."""
    update = parse_changes(SubscriptionUpdate, changes)
    subscription = await _live_subscription(session, subscription_id)
    check_update(subscription.status, frozenset(update.model_fields_set))
    for field in update.model_fields_set:
        if field == "metadata":
            subscription.metadata_ = merge_metadata(subscription.metadata_, update.metadata)
        elif field == "cancelAtPeriodEnd":
            if update.cancelAtPeriodEnd is None:
                raise InvalidRequest("cancelAtPeriodEnd cannot be null.", code="parameter_invalid", param=field)
            subscription.cancel_at_period_end = update.cancelAtPeriodEnd
            subscription.cancel_at = subscription.current_period_end if update.cancelAtPeriodEnd else None
        elif field == "defaultPaymentMethod":
            method = update.defaultPaymentMethod
            if method is not None and await get_payment_method(session, subscription.customer_id, method) is None:
                raise ResourceMissing("payment_method", method, param="defaultPaymentMethod")
            subscription.default_payment_method_id = method
    await session.flush()
    return subscription


async def _billed_items(session: AsyncSession, subscription: Subscription) -> list[tuple[ItemToBill, bool]]:
    """The subscription's items as the pricing engine bills them: (item, licensed)."""
    rows = (
        await session.scalars(
            select(SubscriptionItem)
            .where(SubscriptionItem.subscription_id == subscription.id)
            .order_by(SubscriptionItem.created_at, SubscriptionItem.id)
        )
    ).all()
    billed = []
    for row in rows:
        price = await get_price(session, row.price_id)
        assert price is not None  # an item's price is kept (Restrict)
        product = await get_product(session, price.product_id)
        assert product is not None
        interval = _price_interval(price)
        item = ItemToBill(row.id, price.id, product.name, row.quantity, price_terms(price), _interval_label(interval))
        billed.append((item, price.recurring_usage_type is not UsageType.metered))
    return billed


async def cancel_subscription(session: AsyncSession, command: SubscriptionCancel, now: datetime) -> ChangedSubscription:
    """Cancel now (Stripe's DELETE /v1/subscriptions/{id})."""
    subscription = await _live_subscription(session, command.id)
    was = subscription.status
    subscription.status = next_status(subscription.status, SubscriptionEvent.canceled)
    subscription.canceled_at = subscription.ended_at = now
    subscription.cancel_at_period_end = False
    subscription.cancel_at = None
    if command.feedback is not None:
        subscription.cancellation_reason = str(command.feedback)
    if subscription.status is SubscriptionStatus.incomplete_expired:
        # the unpaid first invoice is voided, as Stripe does
        voided = await invoices.void_open_invoices(session, subscription, now)
        return ChangedSubscription(subscription, voided)
    period = Period(subscription.current_period_start, subscription.current_period_end)
    # a trial has nothing paid to credit
    if not command.prorate or was is SubscriptionStatus.trialing or now not in period:
        await session.flush()
        return ChangedSubscription(subscription)
    billed = [item for item, licensed in await _billed_items(session, subscription) if licensed]
    lines = proration_draft_lines(billed, [], subscription.currency, period, now)
    customer = await get_live_customer(session, subscription.customer_id, for_update=True)
    if customer is None or not lines:
        await session.flush()
        return ChangedSubscription(subscription)
    invoice, invoice_lines = await invoices.create_draft(
        session,
        customer,
        lines,
        currency=subscription.currency,
        period=Period(now, period.end),
        billing_reason="subscription_cancel",
        subscription=subscription,
    )
    await invoices.finalize(session, invoice, invoice_lines, customer, now)
    return ChangedSubscription(subscription, invoice, invoice_lines)
