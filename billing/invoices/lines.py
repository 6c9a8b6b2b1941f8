"""The lines of an invoice: a subscription's from the pricing engine, a waiting invoice
item's as it was made. Pure, no I/O.

One function decides what an item costs on an invoice, so the invoice a subscription
creates and the preview of it are the same computation. Licensed items are billed in
advance for the period; a period shorter than the item's full interval (a later billing
cycle anchor) is prorated from the full-period amount, rounded once; a trial bills every
item at zero. Metered items are billed in arrears: a renewal's invoice has a line for the
period that ended, priced at the usage its meter counted (a whole quantity: a fractional
total is rounded up, as a partly used unit is a used one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from billing.catalog.pricing import PriceTerms, Quote, quote
from billing.models import InvoiceItem
from billing.money.amounts import format_amount
from billing.subscriptions.periods import Period
from billing.subscriptions.proration import ItemAmount, ProrationKind, prorate, proration_lines


@dataclass(frozen=True, slots=True)
class ItemToBill:
    """One subscription item: `key` is its id, `product_name` what the line says."""

    key: str
    price_id: str
    product_name: str
    quantity: int
    terms: PriceTerms
    interval_label: str  # "month", "3 months", "year"


@dataclass(frozen=True, slots=True)
class DraftLine:
    subscription_item_id: str | None
    price_id: str | None
    description: str
    quantity: int
    unit_amount_decimal: Decimal | None
    amount: int
    period: Period
    proration: bool = False
    breakdown: list[dict[str, Any]] = field(default_factory=list)


def _breakdown(priced: Quote) -> list[dict[str, Any]]:
    return [
        {
            "tierIndex": line.tier_index,
            "quantity": line.quantity,
            "unitAmountDecimal": str(line.unit_amount),
            "flatAmountDecimal": str(line.flat_amount),
            "amount": line.amount,
        }
        for line in priced.lines
    ]


def _unit_amount(priced: Quote) -> Decimal | None:
    """The unit amount of a single-line quote (per unit, or one volume tier without a flat fee)."""
    if len(priced.lines) == 1 and priced.lines[0].flat_amount == 0:
        return priced.lines[0].unit_amount
    return None


def _description(item: ItemToBill, unit: Decimal | None, currency: str, per: str | None = None) -> str:
    """ "2 × Seats (at 10.00 USD / month)"; `per` says what the unit amount is for instead."""
    described = f"{item.quantity} × {item.product_name}"
    if unit is not None and unit == unit.to_integral_value():
        each = per or f"/ {item.interval_label}"
        return f"{described} (at {format_amount(int(unit), currency)} {currency.upper()} {each})"
    return described


def advance_line(item: ItemToBill, currency: str, period: Period, full_period: Period) -> DraftLine:
    """A licensed item billed in advance for `period`, which lies inside `full_period` (the
    item's whole interval); a shorter period is prorated from the full amount."""
    priced = quote(item.terms, item.quantity, currency)
    unit = _unit_amount(priced)
    if period == full_period:
        return DraftLine(
            item.key,
            item.price_id,
            _description(item, unit, currency),
            item.quantity,
            unit,
            priced.total,
            period,
            breakdown=_breakdown(priced),
        )
    return DraftLine(
        item.key,
        item.price_id,
        f"Remaining time on {item.quantity} × {item.product_name} after {period.start:%d %b %Y}",
        item.quantity,
        unit,
        prorate(priced.total, full_period, period.start),
        period,
        proration=True,
        breakdown=_breakdown(priced),
    )


def billable_quantity(total: Decimal | None) -> int:
    """A meter's total over a period as the quantity billed: none counted is zero, a fraction rounds up."""
    if total is None or total <= 0:
        return 0
    return int(total.to_integral_value(rounding=ROUND_CEILING))


def usage_line(item: ItemToBill, currency: str, period: Period, quantity: int) -> DraftLine:
    """A metered item in arrears: `quantity` used over `period`, priced by the item's price."""
    used = dataclasses.replace(item, quantity=quantity)
    line = advance_line(used, currency, period, period)
    # the period is the line's own (the PDF prints it under the description)
    return dataclasses.replace(line, description=_description(used, line.unit_amount_decimal, currency, per="each"))


def item_line(item: InvoiceItem) -> DraftLine:
    """A waiting invoice item (a proration, a one-off charge) as a line of the invoice that takes it."""
    return DraftLine(
        item.subscription_item_id,
        item.price_id,
        item.description,
        item.quantity,
        item.unit_amount_decimal,
        item.amount,
        Period(item.period_start, item.period_end),
        proration=item.proration,
    )


def trial_line(item: ItemToBill, period: Period) -> DraftLine:
    return DraftLine(
        item.key, item.price_id, f"Trial period for {item.product_name}", item.quantity, Decimal(0), 0, period
    )


def proration_draft_lines(
    before: Sequence[ItemToBill], after: Sequence[ItemToBill], currency: str, period: Period, at: datetime
) -> list[DraftLine]:
    """Credit lines for the unused time of what changes or goes, charge lines for the
    remaining time of what changes or comes (billing.subscriptions.proration, one rounding
    per line from each item's full-period amount)."""
    priced = {("before", item.key): (item, quote(item.terms, item.quantity, currency)) for item in before}
    priced |= {("after", item.key): (item, quote(item.terms, item.quantity, currency)) for item in after}

    def amounts(side: str, items: Sequence[ItemToBill]) -> list[ItemAmount]:
        return [ItemAmount(i.key, i.price_id, i.quantity, priced[(side, i.key)][1].total) for i in items]

    drafts = []
    for line in proration_lines(amounts("before", before), amounts("after", after), period, at):
        side = "before" if line.kind is ProrationKind.credit else "after"
        item, quoted = priced[(side, line.key)]
        what = "Unused" if line.kind is ProrationKind.credit else "Remaining"
        drafts.append(
            DraftLine(
                item.key,
                item.price_id,
                f"{what} time on {item.quantity} × {item.product_name} after {at:%d %b %Y}",
                item.quantity,
                _unit_amount(quoted),
                line.amount,
                line.period,
                proration=True,
                breakdown=_breakdown(quoted),
            )
        )
    return drafts


def amount_per_interval(items: Sequence[ItemToBill], currency: str) -> int:
    """What `items` charge each full billing period: how a plan change's direction is
    measured (billing.subscriptions.change_rules)."""
    return sum(quote(item.terms, item.quantity, currency).total for item in items)
