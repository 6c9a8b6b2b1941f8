"""Time-based proration of a change inside a billing period. Pure, no I/O.

When a subscription's items change at `at` inside `period`, every item that goes away or
changes is credited for the unused time on its old terms, and every item that arrives or
changes is charged for the remaining time on its new terms. The share of the period left
is exact (milliseconds left / milliseconds in the period), and each line is rounded once
from the item's full-period amount (what a whole period of it costs, from the pricing
engine), so a change at the start of a period charges exactly the full difference, and a
change and its reverse at the same instant net to zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from billing.money.amounts import check_line_amount, require_int, round_ratio_to_minor
from billing.subscriptions.periods import InvalidPeriod, Period, milliseconds_between, utc


class ProrationKind(StrEnum):
    credit = "credit"  # unused time on the old terms: a negative line
    charge = "charge"  # remaining time on the new terms: a positive line


@dataclass(frozen=True, slots=True)
class ItemAmount:
    """One subscription item as billed for a whole period.

    `key` identifies the item across the change (the subscription item's id; a new item's
    own id), `amount` is a whole period of it in minor units, as the pricing engine quotes
    `quantity` of `price_id`.
    """

    key: str
    price_id: str
    quantity: int
    amount: int

    def __post_init__(self) -> None:
        require_int(self.quantity, "quantity")
        check_line_amount(self.amount, "amount")

    def same_terms(self, other: ItemAmount) -> bool:
        return (self.price_id, self.quantity, self.amount) == (other.price_id, other.quantity, other.amount)


@dataclass(frozen=True, slots=True)
class ProrationLine:
    kind: ProrationKind
    key: str
    price_id: str
    quantity: int
    amount: int  # minor units, negative for a credit
    period: Period  # the part of the billing period the line covers: [at, period end)


def remaining_share(period: Period, at: datetime) -> tuple[int, int]:
    """(milliseconds left, milliseconds in the period) at `at`; the change must fall inside
    the period, its start included (a change at the end belongs to the next period)."""
    moment = utc(at, "prorationDate")
    if moment not in period:
        raise InvalidPeriod(
            f"prorationDate {moment.isoformat()} is outside the current period "
            f"({period.start.isoformat()} .. {period.end.isoformat()})."
        )
    return milliseconds_between(moment, period.end), period.length_ms


def prorate(amount: int, period: Period, at: datetime) -> int:
    """A whole period's `amount` for the time left in `period` at `at`, rounded once."""
    left, whole = remaining_share(period, at)
    return round_ratio_to_minor(check_line_amount(amount), left, whole)


def proration_lines(
    before: Sequence[ItemAmount], after: Sequence[ItemAmount], period: Period, at: datetime
) -> list[ProrationLine]:
    """Credit and charge lines for changing the items `before` into `after` at `at`.

    Items whose price, quantity and amount are unchanged get no line. Credits come first, in
    the order of `before`, then charges in the order of `after`.
    """
    left, whole = remaining_share(period, at)
    covered = Period(utc(at, "prorationDate"), period.end)
    old = {item.key: item for item in before}
    new = {item.key: item for item in after}
    if len(old) != len(before) or len(new) != len(after):
        raise ValueError("each item key may appear once on each side of a change.")

    def line(kind: ProrationKind, item: ItemAmount, sign: int) -> ProrationLine:
        amount = sign * round_ratio_to_minor(item.amount, left, whole)
        return ProrationLine(kind, item.key, item.price_id, item.quantity, amount, covered)

    credits = [
        line(ProrationKind.credit, item, -1)
        for item in before
        if item.key not in new or not item.same_terms(new[item.key])
    ]
    charges = [
        line(ProrationKind.charge, item, 1)
        for item in after
        if item.key not in old or not item.same_terms(old[item.key])
    ]
    return credits + charges
