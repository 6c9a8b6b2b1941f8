"""The upcoming invoice: what a subscription's next renewal, or a plan change made now,
would invoice. Reads only, and computes with the same plan and line functions the change
and the renewal use (billing.subscriptions.changes), so preview and invoice agree to the
minor unit. A renewal's metered lines show the usage counted so far in the period (the
renewal bills what is counted when its draft is finalized)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.repository import get_price
from billing.db.sessions import get_one
from billing.errors import InvalidRequest, ResourceMissing, ServiceUnavailable
from billing.invoices.lines import DraftLine, billable_quantity, item_line, usage_line
from billing.invoices.service import drafted_taxes, tax_amounts
from billing.invoices.totals import LineTaxes, invoice_totals
from billing.meters.repository import get_meter
from billing.meters.usage import MeterTotal
from billing.models import Customer, Subscription
from billing.subscriptions import changes
from billing.subscriptions.periods import Period, next_period
from billing.subscriptions.status import check_update
from billing.tax_rates.repository import subscription_tax_rates
from contracts.enums import ProrationBehavior, SubscriptionStatus
from contracts.invoices import InvoicePreview, InvoicePreviewLine, UpcomingInvoiceRequest
from contracts.resources import Meter as MeterResource
from contracts.subscriptions import SubscriptionItemChanges


def _preview_line(line: DraftLine, taxes: LineTaxes) -> InvoicePreviewLine:
    return InvoicePreviewLine(
        description=line.description,
        amount=line.amount,
        quantity=line.quantity,
        priceId=line.price_id,
        subscriptionItemId=line.subscription_item_id,
        unitAmountDecimal=line.unit_amount_decimal,
        proration=line.proration,
        periodStart=line.period.start,
        periodEnd=line.period.end,
        taxAmounts=tax_amounts(taxes),
    )


async def _usage_so_far(
    session: AsyncSession, subscription: Subscription, period: Period, now: datetime, meter_total: MeterTotal | None
) -> list[DraftLine]:
    """The metered items' lines of the period's renewal, at the usage counted by `now`
    (none in a trial, as the renewal bills none)."""
    if subscription.status is SubscriptionStatus.trialing:
        return []
    lines = []
    for billed in await changes.current_items(session, subscription):
        if billed.licensed:
            continue
        price = await get_price(session, billed.item.price_id)
        meter = await get_meter(session, price.meter_id) if price is not None and price.meter_id else None
        total = None
        if meter is not None:
            if meter_total is None:
                raise ServiceUnavailable(
                    "This subscription has metered items and their usage is not readable here (ClickHouse).",
                    code="analytics_unavailable",
                )
            counted = Period(period.start, max(period.start, min(now, period.end)))
            total = await meter_total(
                subscription.organization_id, MeterResource.model_validate(meter), subscription.customer_id, counted
            )
        lines.append(usage_line(billed.item, subscription.currency, period, billable_quantity(total)))
    return lines


async def upcoming_invoice(
    session: AsyncSession, request: UpcomingInvoiceRequest, now: datetime, meter_total: MeterTotal | None = None
) -> InvoicePreview:
    """`meter_total` reads a metered item's usage (ClickHouse); needed only when the
    subscription has one."""
    subscription = await get_one(session, Subscription, Subscription.id, request.subscription)
    if subscription is None or subscription.customer_id != request.customer:
        raise ResourceMissing("subscription", request.subscription, param="subscription")
    customer = await get_one(session, Customer, Customer.id, subscription.customer_id)
    assert customer is not None  # a subscription's customer is kept (Restrict)
    check_update(subscription.status, frozenset({"items"} if request.subscriptionItems is not None else ()))
    proposed = SubscriptionItemChanges(
        items=request.subscriptionItems,
        prorationBehavior=request.subscriptionProrationBehavior,
        prorationDate=request.subscriptionProrationDate,
    )
    # what the update would do: the organization's rules decide when the change is made
    # (one kept for the period's end shows on the renewal) and how it is prorated
    made_now = request.subscriptionItems is not None
    scheduled = await changes.scheduled_plan(session, subscription, now)
    if request.subscriptionItems is not None:
        ruled = await changes.ruled_plan(session, subscription, proposed, now)
        plan = ruled.plan
        if ruled.deferred is not None:
            plan = await changes.deferred_plan(session, subscription, request.subscriptionItems, now)
            made_now = False
    elif scheduled is not None:
        plan = scheduled  # the renewal makes the change kept for it, then bills the next period
    else:
        plan = await changes.plan_change(session, subscription, proposed, now)
    pending = [item_line(item) for item in await changes.pending_items(session, subscription)]
    now_lines = changes.invoiced_now(plan, pending) if made_now else None
    if now_lines is not None:
        lines, period, reason = now_lines, changes.change_period(plan), "subscription_update"
    else:
        if subscription.cancel_at_period_end:
            raise InvalidRequest(
                "This subscription ends at the period's end: it has no upcoming invoice.", code="invoice_upcoming_none"
            )
        prorations = plan.prorations if plan.behavior is ProrationBehavior.create_prorations else []
        renewal = changes.renewal_lines(
            plan.after, subscription.currency, plan.period, subscription.billing_cycle_anchor
        )
        # what waits for the renewal has lost its link to the items the change removes, whose
        # usage the renewal no longer bills
        arrears = await _usage_so_far(session, subscription, plan.period, now, meter_total)
        kept = [line for line in arrears if line.subscription_item_id not in plan.removed]
        lines = [*changes.unlinked([*pending, *prorations], plan.removed), *kept, *renewal]
        period = next_period(plan.period, subscription.billing_cycle_anchor, plan.after[0].interval)
        reason = "subscription_cycle"
    taxes = drafted_taxes(lines, await subscription_tax_rates(session, subscription.id))
    totals = invoice_totals(taxes, customer_balance=customer.balance)
    # an invoice made now is taxed before the change deletes its removed items, then its
    # lines' links to them are gone
    lines = changes.unlinked(lines, plan.removed)
    return InvoicePreview(
        customerId=customer.id,
        subscriptionId=subscription.id,
        currency=subscription.currency,
        billingReason=reason,
        periodStart=period.start,
        periodEnd=period.end,
        lines=[_preview_line(line, line_tax) for line, line_tax in zip(lines, taxes, strict=True)],
        subtotal=totals.subtotal,
        tax=totals.tax,
        total=totals.total,
        startingBalance=totals.starting_balance,
        endingBalance=totals.ending_balance,
        amountDue=totals.amount_due,
    )
