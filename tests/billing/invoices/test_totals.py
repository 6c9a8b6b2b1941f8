from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.invoices.totals import InvalidTaxRate, TaxRateTerms, invoice_totals, line_taxes
from tests.billing.money.test_amounts import half_up_oracle

pytestmark = pytest.mark.unit

VAT_20_INCLUSIVE = TaxRateTerms("txr_vat", Decimal(20), inclusive=True)
SALES_8_875 = TaxRateTerms("txr_nyc", Decimal("8.875"), inclusive=False)

rates = st.builds(
    TaxRateTerms,
    id=st.sampled_from([f"txr_{n}" for n in range(5)]),
    percentage=st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False),
    inclusive=st.booleans(),
)
lines = st.tuples(
    st.integers(min_value=-(10**12), max_value=10**12), st.lists(rates, max_size=3, unique_by=lambda rate: rate.id)
)


def test_exclusive_tax_is_added_and_rounded_once() -> None:
    line = line_taxes(10_000, [SALES_8_875])
    assert [(tax.taxable_amount, tax.amount) for tax in line.taxes] == [(10_000, 888)]  # 887.5 -> 888
    totals = invoice_totals([line])
    assert (totals.subtotal, totals.tax, totals.total, totals.total_excluding_tax) == (10_000, 888, 10_888, 10_000)


def test_inclusive_tax_is_part_of_the_amount() -> None:
    line = line_taxes(12_000, [VAT_20_INCLUSIVE])
    assert [(tax.taxable_amount, tax.amount) for tax in line.taxes] == [(10_000, 2_000)]
    totals = invoice_totals([line])
    assert (totals.subtotal, totals.tax, totals.total, totals.total_excluding_tax) == (12_000, 2_000, 12_000, 10_000)


def test_a_credit_balance_reduces_the_amount_due_and_the_rest_stays() -> None:
    line = line_taxes(3_000, [])
    credit = invoice_totals([line], customer_balance=-5_000)
    assert (credit.amount_due, credit.ending_balance, credit.amount_remaining) == (0, -2_000, 0)
    debt = invoice_totals([line], customer_balance=400)
    assert (debt.amount_due, debt.ending_balance) == (3_400, 0)
    paid = invoice_totals([line], amount_paid=1_000)
    assert (paid.amount_due, paid.amount_paid, paid.amount_remaining) == (3_000, 1_000, 2_000)
    # A credit-heavy proration invoice leaves its negative total as the customer's credit.
    refund_like = invoice_totals([line_taxes(-1_500, [])])
    assert (refund_like.total, refund_like.amount_due, refund_like.ending_balance) == (-1_500, 0, -1_500)


def test_bad_rates_and_payments_are_refused() -> None:
    with pytest.raises(InvalidTaxRate, match="between 0 and 100"):
        TaxRateTerms("txr", Decimal("100.01"), inclusive=False)
    with pytest.raises(InvalidTaxRate, match="at most 4 decimal places"):
        TaxRateTerms("txr", Decimal("1.00001"), inclusive=False)
    with pytest.raises(TypeError):
        TaxRateTerms("txr", 19.6, inclusive=False)  # type: ignore[arg-type]
    with pytest.raises(InvalidTaxRate, match="once"):
        line_taxes(100, [SALES_8_875, SALES_8_875])
    with pytest.raises(ValueError, match="between 0 and the amount due"):
        invoice_totals([line_taxes(100, [])], amount_paid=101)


@given(st.lists(lines, max_size=6), st.integers(min_value=-(10**9), max_value=10**9))
def test_the_total_is_the_lines_plus_their_exclusive_tax(
    drafts: list[tuple[int, list[TaxRateTerms]]], balance: int
) -> None:
    taxed = [line_taxes(amount, rates) for amount, rates in drafts]
    totals = invoice_totals(taxed, customer_balance=balance)
    exclusive = sum(tax.amount for line in taxed for tax in line.taxes if not tax.inclusive)
    assert totals.total == sum(amount for amount, _ in drafts) + exclusive
    assert totals.tax == sum(tax.amount for line in taxed for tax in line.taxes)
    assert totals.amount_due == max(totals.total + balance, 0) and totals.amount_due >= 0
    assert totals.ending_balance <= 0 and totals.amount_due + totals.ending_balance == totals.total + balance


@given(lines)
def test_each_tax_is_the_exact_share_rounded_once(draft: tuple[int, list[TaxRateTerms]]) -> None:
    amount, rates = draft
    inclusive = sum((rate.percentage for rate in rates if rate.inclusive), Decimal(0))
    net = Fraction(amount) / (1 + Fraction(inclusive) / 100)
    line = line_taxes(amount, rates)
    for rate, tax in zip(rates, line.taxes, strict=True):
        assert tax.amount == half_up_oracle(net * Fraction(rate.percentage) / 100)
        assert tax.taxable_amount == half_up_oracle(net)
