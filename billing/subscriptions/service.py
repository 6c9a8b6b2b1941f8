"""Subscription writes, called by the command consumer inside a command's transaction;
never commits, never calls a payment gateway (a charge is the payment worker's, after
commit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.invoices import service as invoices
from billing.invoices.collection import billing_currency, check_collection
from billing.invoices.lines import (
    DraftLine,
    advance_line,
    item_line,
    proration_draft_lines,
    trial_line,
)
from billing.invoices.status import InvoiceAction, after
from billing.models import (
    Customer,
    Invoice,
    InvoiceItem,
    InvoiceLineItem,
    Payment,
    Price,
    Subscription,
    SubscriptionItem,
    SubscriptionTaxRate,
    TaxRate,
)
from billing.payments import attempts
from billing.payments.repository import get_live_customer, get_payment_method
from billing.requests.patch import merge_metadata, parse_changes
from billing.subscriptions import changes as changes_
from billing.subscriptions.ending import end_canceled
from billing.subscriptions.pause import PauseBehavior, paused_behavior
from billing.subscriptions.periods import Interval, InvalidPeriod, Period, first_period, period_at
from billing.subscriptions.status import INITIAL, check_update
from billing.tax_rates.repository import usable_tax_rates
from contracts.enums import (
    CollectionMethod,
    InvoiceStatus,
    ProrationBehavior,
    SubscriptionStatus,
)
from contracts.json_shapes import PauseCollection, ScheduledChange, ScheduledItemChange
from contracts.subscriptions import PauseCollectionRequest, SubscriptionCancel, SubscriptionCreate, SubscriptionUpdate


@dataclass(frozen=True)
class CreatedSubscription:
    subscription: Subscription
    items: list[SubscriptionItem]
    invoice: Invoice
    invoice_lines: list[InvoiceLineItem]
    payment: Payment | None  # the first invoice's charge, for the payment worker


async def item_prices(session: AsyncSession, price_ids: Sequence[str], items_param: str = "items") -> list[Price]:
    """The prices of a subscription's items (`{items_param}[i][price]` in errors): this
    organization's, active, recurring, each once, one interval."""
    prices: list[Price] = []
    for index, price_id in enumerate(price_ids):
        param = f"{items_param}[{index}][price]"
        price = await changes_.usable_price(session, price_id, param)
        if any(earlier.id == price.id for earlier in prices):
            raise InvalidRequest(
                f"The price {price.id} is on the subscription twice; set its quantity instead.",
                code="parameter_invalid",
                param=param,
            )
        if prices and changes_.price_interval(price) != changes_.price_interval(prices[0]):
            raise InvalidRequest(
                "Every item of a subscription must bill at the same interval: "
                f"{prices[0].id} is every {changes_.interval_label(changes_.price_interval(prices[0]))}, "
                f"{price.id} every {changes_.interval_label(changes_.price_interval(price))}.",
                code="price_interval_mismatch",
                param=param,
            )
        prices.append(price)
    return prices


def _tax_rate_rows(
    organization_id: str, subscription_id: str, item_id: str | None, rates: list[TaxRate]
) -> list[SubscriptionTaxRate]:
    return [
        SubscriptionTaxRate(
            id=new_id("subscription_tax_rate"),
            organization_id=organization_id,
            subscription_id=subscription_id,
            subscription_item_id=item_id,
            tax_rate_id=rate.id,
            position=position,
        )
        for position, rate in enumerate(rates)
    ]


async def _replace_default_tax_rates(session: AsyncSession, subscription: Subscription, rates: list[TaxRate]) -> None:
    """The defaults for the invoices to come; invoices made already keep their taxes."""
    await session.execute(
        delete(SubscriptionTaxRate).where(
            SubscriptionTaxRate.subscription_id == subscription.id, SubscriptionTaxRate.subscription_item_id.is_(None)
        )
    )
    session.add_all(_tax_rate_rows(tenant_of(session), subscription.id, None, rates))
    await session.flush()


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
    check_collection(command.collectionMethod, command.daysUntilDue)
    customer = await get_live_customer(session, command.customer, for_update=True)
    if customer is None:
        raise ResourceMissing("customer", command.customer, param="customer")
    if (
        command.defaultPaymentMethod is not None
        and await get_payment_method(session, customer.id, command.defaultPaymentMethod) is None
    ):
        raise ResourceMissing("payment_method", command.defaultPaymentMethod, param="defaultPaymentMethod")
    prices = await item_prices(session, [item.price for item in command.items])
    default_tax_rates = await usable_tax_rates(session, command.defaultTaxRates, "defaultTaxRates")
    item_tax_rates = [
        await usable_tax_rates(session, item.taxRates, f"items[{index}][taxRates]")
        for index, item in enumerate(command.items)
    ]
    currency = billing_currency(customer.currency, command.currency, prices[0].currency, what="a subscription")
    interval = changes_.price_interval(prices[0])
    to_bill: list[changes_.BilledItem] = []
    subscription_id = new_id("subscription")
    items: list[SubscriptionItem] = []
    for index, (request, price) in enumerate(zip(command.items, prices, strict=True)):
        changes_.check_price_currency(price, currency, f"items[{index}][price]")
        billed = await changes_.billed_item(session, new_id("subscription_item"), price, request.quantity)
        items.append(
            SubscriptionItem(
                id=billed.item.key,
                organization_id=organization_id,
                subscription_id=subscription_id,
                price_id=price.id,
                quantity=request.quantity,
                position=index,
                metadata_=request.metadata,
            )
        )
        to_bill.append(billed)

    trial_end = _trial_end(command, now)
    period = _first_period(command, now, interval, trial_end)
    if trial_end is not None:
        anchor = trial_end
        lines: list[DraftLine] = [trial_line(b.item, period) for b in to_bill if b.licensed]
    else:
        # a later anchor makes a short first period, prorated within the cycle's full period
        anchor = command.billingCycleAnchor or now
        full_period = period_at(anchor, interval, now) if command.billingCycleAnchor is not None else period
        lines = [advance_line(b.item, currency, period, full_period) for b in to_bill if b.licensed]

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
        trial_settings=command.trialSettings.model_dump(mode="json"),
        metadata_=command.metadata,
    )
    session.add(subscription)
    await session.flush()
    session.add_all(items)
    await session.flush()
    session.add_all(_tax_rate_rows(organization_id, subscription_id, None, default_tax_rates))
    for item, rates in zip(items, item_tax_rates, strict=True):
        session.add_all(_tax_rate_rows(organization_id, subscription_id, item.id, rates))
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
    if subscription.status is SubscriptionStatus.incomplete and command.paymentBehavior != "default_incomplete":
        method = await attempts.payment_method_for(session, customer, subscription)
        if method is not None:
            payment = await attempts.record_attempt(session, invoice, method)
        elif command.paymentBehavior == "error_if_incomplete":  # it could only fail: nothing is written
            raise InvalidRequest(
                "error_if_incomplete charges the first invoice now, and the customer has no default payment "
                "method: pass defaultPaymentMethod, or use default_incomplete.",
                code="invoice_no_payment_method",
                param="defaultPaymentMethod",
            )
        # allow_incomplete without one: the invoice waits, open, for a payment method
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
    invoice: Invoice | None = None  # made by the change (always_invoice, cancel with prorate)
    invoice_lines: list[InvoiceLineItem] | None = None
    payment: Payment | None = None  # the attempt to charge that invoice
    voided: Invoice | None = None  # the open invoice the change voided (an incomplete one canceled)


async def update_subscription(
    session: AsyncSession, subscription_id: str, changes: dict[str, Any], now: datetime
) -> ChangedSubscription:
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
        elif field == "pauseCollection":
            subscription.pause_collection = _pause_collection(update.pauseCollection, now)
        elif field == "defaultTaxRates":
            rates = await usable_tax_rates(session, update.defaultTaxRates or [], field)
            await _replace_default_tax_rates(session, subscription, rates)
    if update.items is None:
        await session.flush()
        return ChangedSubscription(subscription)
    ruled = await changes_.ruled_plan(session, subscription, update, now)
    if ruled.deferred is not None:  # kept for the renewal, which makes it
        subscription.scheduled_change = ScheduledChange(
            items=[cast(ScheduledItemChange, c.model_dump(mode="json", exclude_unset=True)) for c in update.items],
            effectiveAt=subscription.current_period_end.isoformat(),
            direction=ruled.deferred.direction.value,
        )
        await session.flush()
        return ChangedSubscription(subscription)
    subscription.scheduled_change = None  # a change made now replaces one kept for later
    return await apply_plan(session, ruled.plan, now)


async def apply_plan(session: AsyncSession, plan: changes_.PlannedChange, now: datetime) -> ChangedSubscription:
    """Writes the planned items, then what the proration behaviour asks: pending invoice
    items (create_prorations), an invoice charged now (always_invoice), or nothing (none).
    The items that go are deleted last: the change's credit lines for them refer to them
    and are taxed by their tax rates."""
    changed = await _write_plan(session, plan, now)
    # what still waits for an invoice (a create_prorations change's lines) stops referring
    # to the items that go, as an invoice line would (changes.unlinked): else the next
    # invoice could not take it (its line's foreign key to the deleted item)
    await session.execute(
        update(InvoiceItem)
        .where(InvoiceItem.subscription_item_id.in_(plan.removed), InvoiceItem.invoice_id.is_(None))
        .values(subscription_item_id=None)
    )
    for item_id in plan.removed:
        await session.delete(await session.get_one(SubscriptionItem, item_id))
    await session.flush()
    return changed


async def _write_plan(session: AsyncSession, plan: changes_.PlannedChange, now: datetime) -> ChangedSubscription:
    subscription = plan.subscription
    organization_id = tenant_of(session)
    rows = {
        row.id: row
        for row in (
            await session.scalars(select(SubscriptionItem).where(SubscriptionItem.subscription_id == subscription.id))
        ).all()
    }
    next_position = max((row.position for row in rows.values()), default=-1) + 1  # an added item goes last
    for billed in plan.after:
        row = rows.get(billed.item.key)
        if row is None:
            session.add(
                SubscriptionItem(
                    id=billed.item.key,
                    organization_id=organization_id,
                    subscription_id=subscription.id,
                    price_id=billed.item.price_id,
                    quantity=billed.item.quantity,
                    position=next_position,
                )
            )
            next_position += 1
        else:
            row.price_id, row.quantity = billed.item.price_id, billed.item.quantity
    if plan.new_period is not None:  # the cycle restarts at the change
        subscription.billing_cycle_anchor = plan.at
        subscription.current_period_start, subscription.current_period_end = plan.new_period.start, plan.new_period.end
        if subscription.cancel_at_period_end:
            subscription.cancel_at = plan.new_period.end
    await session.flush()
    if plan.behavior is ProrationBehavior.create_prorations and plan.new_period is None:
        session.add_all(
            InvoiceItem(
                id=new_id("invoice_item"),
                organization_id=organization_id,
                customer_id=subscription.customer_id,
                subscription_id=subscription.id,
                subscription_item_id=line.subscription_item_id,
                price_id=line.price_id,
                position=position,
                description=line.description,
                quantity=line.quantity,
                unit_amount_decimal=line.unit_amount_decimal,
                amount=line.amount,
                currency=subscription.currency,
                period_start=line.period.start,
                period_end=line.period.end,
                proration=True,
            )
            for position, line in enumerate(plan.prorations)
        )
        await session.flush()
        return ChangedSubscription(subscription)
    pending = await changes_.pending_items(session, subscription)
    lines = changes_.invoiced_now(plan, [item_line(item) for item in pending])
    if not lines:
        await session.flush()
        return ChangedSubscription(subscription)
    customer = await get_live_customer(session, subscription.customer_id, for_update=True)
    assert customer is not None  # a live subscription's customer is live
    invoice, invoice_lines = await invoices.create_draft(
        session,
        customer,
        lines,
        currency=subscription.currency,
        period=changes_.change_period(plan),
        billing_reason="subscription_update",
        subscription=subscription,
    )
    for item in pending:
        item.invoice_id = invoice.id
    payment = await collect(session, subscription, invoice, invoice_lines, customer, now)
    return ChangedSubscription(subscription, invoice, invoice_lines, payment)


def _pause_collection(request: PauseCollectionRequest | None, now: datetime) -> PauseCollection | None:
    if request is None:
        return None  # resumed
    if request.resumesAt is not None and request.resumesAt <= now:
        raise InvalidRequest(
            "pauseCollection[resumesAt] must be in the future.",
            code="parameter_invalid",
            param="pauseCollection[resumesAt]",
        )
    return PauseCollection(
        behavior=request.behavior, resumesAt=request.resumesAt.isoformat() if request.resumesAt else None
    )


async def collect(
    session: AsyncSession,
    subscription: Subscription,
    invoice: Invoice,
    lines: list[InvoiceLineItem],
    customer: Customer,
    now: datetime,
) -> Payment | None:
    """A new invoice of the subscription, finalized and charged (charge_automatically), or,
    while its collection is paused, handled as the pause says: left a draft, or finalized
    and then marked uncollectible or voided, with no charge."""
    behavior = paused_behavior(subscription.pause_collection, now)
    if behavior is PauseBehavior.keep_as_draft:
        await session.flush()
        return None
    await invoices.finalize(session, invoice, lines, customer, now, days_until_due=subscription.days_until_due)
    if invoice.status is InvoiceStatus.open and behavior is PauseBehavior.mark_uncollectible:
        invoice.status = after(invoice.status, InvoiceAction.mark_uncollectible)
    elif invoice.status is InvoiceStatus.open and behavior is PauseBehavior.void:
        invoice.status = after(invoice.status, InvoiceAction.void)
        invoice.voided_at = now
    payment = None
    if invoice.status is InvoiceStatus.open and subscription.collection_method is CollectionMethod.charge_automatically:
        method = await attempts.payment_method_for(session, customer, subscription)
        if method is not None:
            payment = await attempts.record_attempt(session, invoice, method)
    await session.flush()
    return payment


async def cancel_subscription(session: AsyncSession, command: SubscriptionCancel, now: datetime) -> ChangedSubscription:
    """Cancel now (Stripe's DELETE /v1/subscriptions/{id})."""
    subscription = await _live_subscription(session, command.id)
    was = subscription.status
    end_canceled(subscription, now, str(command.feedback) if command.feedback is not None else None)
    if subscription.status is SubscriptionStatus.incomplete_expired:
        # the unpaid first invoice is voided, as Stripe does
        voided = await invoices.void_open_invoices(session, subscription, now)
        return ChangedSubscription(subscription, voided=voided)
    period = Period(subscription.current_period_start, subscription.current_period_end)
    # a trial has nothing paid to credit
    if not command.prorate or was is SubscriptionStatus.trialing or now not in period:
        await session.flush()
        return ChangedSubscription(subscription)
    billed = [billed.item for billed in await changes_.current_items(session, subscription) if billed.licensed]
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
