"""A metered item's line in arrears: the meter's total as a whole quantity, priced by the
item's price for the period that ended."""

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.invoices.lines import ItemToBill, billable_quantity, usage_line
from billing.subscriptions.periods import Period
from tests.billing.catalog.test_pricing import tiered

pytestmark = pytest.mark.unit


def test_nothing_counted_is_zero_and_a_used_fraction_is_a_unit() -> None:
    assert [billable_quantity(total) for total in (None, Decimal(0), Decimal("0.001"), Decimal(9), Decimal("9.5"))] == [
        0,
        0,
        1,
        9,
        10,
    ]


@given(st.decimals(min_value=0, max_value=10**12, places=6, allow_nan=False, allow_infinity=False))
def test_the_quantity_is_the_least_whole_number_not_below_the_total(total: Decimal) -> None:
    quantity = billable_quantity(total)
    assert quantity >= Fraction(total) > quantity - 1 or quantity == total == 0


def test_the_line_covers_the_ended_period_at_the_price_of_its_quantity() -> None:
    terms = tiered("graduated", [{"upTo": 10, "unitAmount": 5}, {"upTo": "inf", "unitAmount": 2}])
    item = ItemToBill("si_1", "price_1", "API calls", 1, terms, "month")
    ended = Period(datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
    line = usage_line(item, "usd", ended, 25)
    assert (line.quantity, line.amount, line.period, line.proration) == (25, 10 * 5 + 15 * 2, ended, False)
    assert line.description == "25 × API calls"  # tiers: no one unit amount to name
