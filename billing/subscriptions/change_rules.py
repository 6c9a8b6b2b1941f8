"""An organization's rules for when a plan change takes effect and how it is prorated.

Stripe applies every change at once with the proration behaviour the request names. Polar
and Lago users ask for more (polar#6610, #10298, #6448): upgrades at once with proration,
downgrades at the end of the period, no proration for credit-type products. The rules here
decide that from the direction of the change, and the direction is decided by the amount
per interval (what the customer pays each billing period, before and after), not per day:
$10 a month to $100 a year is an upgrade although it costs less per day. Pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from contracts.enums import ProrationBehavior


class ChangeDirection(StrEnum):
    upgrade = "upgrade"
    downgrade = "downgrade"
    lateral = "lateral"  # the same amount per interval (a quantity swap, a renamed price)


class ChangeTiming(StrEnum):
    immediately = "immediately"
    period_end = "period_end"


@dataclass(frozen=True, slots=True)
class ChangeRule:
    """What to do with changes of one direction. `proration_behavior` None keeps the
    behaviour the request asked for (Stripe's default: create_prorations)."""

    timing: ChangeTiming = ChangeTiming.immediately
    proration_behavior: ProrationBehavior | None = None


@dataclass(frozen=True, slots=True)
class ChangeRules:
    """An organization's rules; the defaults are Stripe's behaviour."""

    upgrade: ChangeRule = ChangeRule()
    downgrade: ChangeRule = ChangeRule()
    lateral: ChangeRule = ChangeRule()
    # Credit-type products (prepaid credits, seats bought as credit) are never prorated.
    no_proration_for_credit_products: bool = False

    def for_direction(self, direction: ChangeDirection) -> ChangeRule:
        return {
            ChangeDirection.upgrade: self.upgrade,
            ChangeDirection.downgrade: self.downgrade,
            ChangeDirection.lateral: self.lateral,
        }[direction]


@dataclass(frozen=True, slots=True)
class ChangeDecision:
    direction: ChangeDirection
    timing: ChangeTiming
    proration_behavior: ProrationBehavior


def change_direction(amount_per_interval_before: int, amount_per_interval_after: int) -> ChangeDirection:
    """Upgrade when the customer pays more per billing period after the change."""
    if amount_per_interval_after > amount_per_interval_before:
        return ChangeDirection.upgrade
    if amount_per_interval_after < amount_per_interval_before:
        return ChangeDirection.downgrade
    return ChangeDirection.lateral


def decide_change(
    rules: ChangeRules,
    amount_per_interval_before: int,
    amount_per_interval_after: int,
    requested: ProrationBehavior | None,
    *,
    involves_credit_product: bool = False,
) -> ChangeDecision:
    """When the change applies and with which proration behaviour.

    A change deferred to the period end is never prorated: it starts with the next period.
    """
    direction = change_direction(amount_per_interval_before, amount_per_interval_after)
    rule = rules.for_direction(direction)
    if rule.timing is ChangeTiming.period_end:
        return ChangeDecision(direction, rule.timing, ProrationBehavior.none)
    if rules.no_proration_for_credit_products and involves_credit_product:
        return ChangeDecision(direction, rule.timing, ProrationBehavior.none)
    behavior = rule.proration_behavior or requested or ProrationBehavior.create_prorations
    return ChangeDecision(direction, rule.timing, behavior)
