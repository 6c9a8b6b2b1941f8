"""Subscription writes, called by the command consumer inside a command's transaction;
never commits, never calls a payment gateway (a charge is the payment worker's, after
commit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.pricing import UnsupportedCurrency
from billing.catalog.repository import get_price, get_product, price_terms
from billing.db.sessions import tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.invoices import service as invoices
from billing.invoices.lines import DraftLine, ItemToBill, advance_line, trial_line
from billing.models import Customer, Invoice, InvoiceLineItem, Payment, Price, Subscription, SubscriptionItem
from billing.money.currencies import currency_param
from billing.payments import attempts
from billing.payments.repository import get_live_customer, get_payment_method
from billing.subscriptions.periods import Interval, InvalidPeriod, Period, first_period, period_at
from billing.subscriptions.status import INITIAL
from contracts.enums import CollectionMethod, InvoiceStatus, PriceType, RecurringInterval, SubscriptionStatus, UsageType
from contracts.subscriptions import SubscriptionCreate


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
