"""An invoice's taxes and totals, in integer minor units. Pure, no I/O.

Tax is computed per line and per rate, each rounded once by the money module's rule. A
line's amount is what its price charges; an inclusive rate is part of that amount, an
exclusive rate is added to it. With inclusive rates I1..In and exclusive rates E1..Em on
a line of amount A, the line's amount before tax is A / (1 + sum(I)), and each rate's tax
is that net amount times the rate: A * r / (1 + sum(I)), computed exactly, rounded once.

Totals follow Stripe: subtotal is the sum of the lines' amounts; total adds the exclusive
taxes; tax is every rate's tax. The customer's balance (Stripe's sign: negative is credit
the customer holds, positive is owed) is applied to the total: a credit reduces the
amount due down to zero and what is left of it stays as the customer's balance; a debt is
added to the amount due.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from billing.money.amounts import check_line_amount, decimal_places, require_decimal, require_int, round_ratio_to_minor
from contracts.tax_rates import MAX_PERCENTAGE_PLACES

_PERCENT_SCALE: Final = 100 * 10**MAX_PERCENTAGE_PLACES  # 100% in units of 0.0001%


class InvalidTaxRate(ValueError):
    """A percentage outside 0..100 or with more than four decimal places."""


@dataclass(frozen=True, slots=True)
class TaxRateTerms:
    """What a tax rate charges: `percentage` (Decimal, 0..100), inclusive or exclusive."""

    id: str
    percentage: Decimal
    inclusive: bool

    def __post_init__(self) -> None:
        percentage = require_decimal(self.percentage, "percentage")
        if not Decimal(0) <= percentage <= Decimal(100):
            raise InvalidTaxRate(f"percentage must be between 0 and 100, got {percentage}.")
        if decimal_places(percentage) > MAX_PERCENTAGE_PLACES:
            raise InvalidTaxRate(
                f"percentage may have at most {MAX_PERCENTAGE_PLACES} decimal places, got {percentage}."
            )

    @property
    def scaled(self) -> int:
        """The percentage in units of 0.0001 % (8.875 % -> 88750), exact."""
        return int(self.percentage.scaleb(MAX_PERCENTAGE_PLACES))


@dataclass(frozen=True, slots=True)
class LineTaxRates:
    """Which rates tax which line of a subscription's invoice (Stripe's rule): an item's
    own rates when it has any, else the subscription's defaults; a line of no item (or of
    an item since removed) gets the defaults."""

    defaults: tuple[TaxRateTerms, ...] = ()
    by_item: Mapping[str, tuple[TaxRateTerms, ...]] = field(default_factory=dict)

    def for_item(self, subscription_item_id: str | None) -> tuple[TaxRateTerms, ...]:
        if subscription_item_id is not None and subscription_item_id in self.by_item:
            return self.by_item[subscription_item_id]
        return self.defaults


@dataclass(frozen=True, slots=True)
class TaxLine:
    tax_rate_id: str
    inclusive: bool
    taxable_amount: int  # the line's amount before any tax, rounded once
    amount: int


@dataclass(frozen=True, slots=True)
class LineTaxes:
    amount: int  # the line's amount as charged (inclusive taxes within it)
    taxes: tuple[TaxLine, ...]

    @property
    def exclusive_tax(self) -> int:
        return sum(tax.amount for tax in self.taxes if not tax.inclusive)


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: int
    tax: int
    total: int
    total_excluding_tax: int
    starting_balance: int
    ending_balance: int
    amount_due: int
    amount_paid: int
    amount_remaining: int


def line_taxes(amount: int, tax_rates: Sequence[TaxRateTerms]) -> LineTaxes:
    """The taxes of one line of `amount` minor units under `tax_rates`, each rounded once."""
    check_line_amount(amount, "line amount")
    if len({rate.id for rate in tax_rates}) != len(tax_rates):
        raise InvalidTaxRate("a tax rate may apply to a line once.")
    inclusive_scaled = sum(rate.scaled for rate in tax_rates if rate.inclusive)
    denominator = _PERCENT_SCALE + inclusive_scaled
    taxable = round_ratio_to_minor(amount, _PERCENT_SCALE, denominator)
    taxes = tuple(
        TaxLine(rate.id, rate.inclusive, taxable, round_ratio_to_minor(amount, rate.scaled, denominator))
        for rate in tax_rates
    )
    return LineTaxes(amount, taxes)


def invoice_totals(lines: Sequence[LineTaxes], customer_balance: int = 0, amount_paid: int = 0) -> Totals:
    """Totals of an invoice with `lines`, applying `customer_balance` (negative: credit)."""
    require_int(customer_balance, "customer balance")
    require_int(amount_paid, "amount paid")
    subtotal = check_line_amount(sum(line.amount for line in lines), "subtotal")
    tax = check_line_amount(sum(tax.amount for line in lines for tax in line.taxes), "tax")
    total = check_line_amount(subtotal + sum(line.exclusive_tax for line in lines), "total")
    owed = total + customer_balance
    amount_due = max(owed, 0)
    if not 0 <= amount_paid <= amount_due:
        raise ValueError(f"amount paid {amount_paid} must be between 0 and the amount due {amount_due}.")
    return Totals(
        subtotal=subtotal,
        tax=tax,
        total=total,
        total_excluding_tax=total - tax,
        starting_balance=customer_balance,
        ending_balance=min(owed, 0),
        amount_due=amount_due,
        amount_paid=amount_paid,
        amount_remaining=amount_due - amount_paid,
    )
