from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.credit_notes.amounts import (
    CreditableLine,
    check_allocation,
    credit_invoice_line,
    credit_note_totals,
    custom_line,
    requested_lines,
)
from billing.errors import InvalidRequest
from billing.invoices.totals import TaxRateTerms, line_taxes
from contracts.credit_notes import CreditNoteLineCreate
from contracts.enums import CreditNoteLineType, CreditNoteType

pytestmark = pytest.mark.unit

SALES_8_875 = TaxRateTerms("txr_nyc", Decimal("8.875"), inclusive=False)
VAT_20_INCLUSIVE = TaxRateTerms("txr_vat", Decimal(20), inclusive=True)

rates = st.builds(
    TaxRateTerms,
    id=st.sampled_from([f"txr_{n}" for n in range(4)]),
    percentage=st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False),
    inclusive=st.booleans(),
)


def invoice_line(amount: int, tax_rates: list[TaxRateTerms], quantity: int = 1) -> CreditableLine:
    taxes = line_taxes(amount, tax_rates).taxes
    return CreditableLine("il_1", "Pro plan", quantity, None, amount, taxes, credited=0)


def test_a_quantity_credits_its_share_and_the_taxes_follow() -> None:
    line = invoice_line(30_000, [SALES_8_875], quantity=3)  # tax 2662.5 -> 2663
    credited = credit_invoice_line(line, amount=None, quantity=1, param="lines[0]")
    assert credited.amount == 10_000
    # 2663 * 10000 / 30000 = 887.67 -> 888
    assert [(tax.taxable_amount, tax.amount) for tax in credited.taxes] == [(10_000, 888)]
    totals = credit_note_totals([credited], amount_remaining=0, creditable=32_663)
    assert (totals.subtotal, totals.tax, totals.total) == (10_000, 888, 10_888)
    assert (totals.pre_payment_amount, totals.post_payment_amount, totals.type) == (0, 10_888, "post_payment")


def test_an_inclusive_tax_stays_inside_the_amount() -> None:
    line = invoice_line(12_000, [VAT_20_INCLUSIVE])
    credited = credit_invoice_line(line, amount=6_000, quantity=None, param="lines[0]")
    assert [(tax.taxable_amount, tax.amount) for tax in credited.taxes] == [(5_000, 1_000)]
    totals = credit_note_totals([credited], amount_remaining=12_000, creditable=12_000)
    assert (totals.total, totals.tax, totals.type) == (6_000, 1_000, "pre_payment")


@given(
    amount=st.integers(min_value=1, max_value=10**10),
    tax_rates=st.lists(rates, max_size=3, unique_by=lambda rate: rate.id),
    cuts=st.lists(st.integers(min_value=1, max_value=10**10), min_size=1, max_size=6),
)
def test_credits_that_use_up_a_line_give_back_exactly_its_amount_and_taxes(
    amount: int, tax_rates: list[TaxRateTerms], cuts: list[int]
) -> None:
    """However a line is split between credit notes, together they credit its amount and
    each of its taxes to the minor unit (the taxes are rounded cumulatively)."""
    line = invoice_line(amount, tax_rates)
    pieces, left = [], amount
    for cut in cuts:
        if left == 0:
            break
        piece = min(cut, left)
        pieces.append(piece)
        left -= piece
    if left:
        pieces.append(left)
    credited_taxes = [0] * len(line.taxes)
    credited_taxable = [0] * len(line.taxes)
    done = 0
    for piece in pieces:
        credited = credit_invoice_line(replace(line, credited=done), amount=piece, quantity=None, param="lines[0]")
        done += credited.amount
        for index, tax in enumerate(credited.taxes):
            credited_taxes[index] += tax.amount
            credited_taxable[index] += tax.taxable_amount
    assert done == amount
    assert credited_taxes == [tax.amount for tax in line.taxes]
    assert credited_taxable == [tax.taxable_amount for tax in line.taxes]
    with pytest.raises(InvalidRequest) as refused:  # nothing left to credit
        credit_invoice_line(replace(line, credited=done), amount=1, quantity=None, param="lines[0]")
    assert refused.value.code == "amount_too_large"


@given(
    lines=st.lists(
        st.tuples(st.integers(min_value=1, max_value=10**9), st.lists(rates, max_size=2, unique_by=lambda r: r.id)),
        min_size=1,
        max_size=5,
    ),
    amount_remaining=st.integers(min_value=0, max_value=10**10),
)
def test_a_total_is_its_lines_plus_exclusive_tax_split_before_and_after_payment(
    lines: list[tuple[int, list[TaxRateTerms]]], amount_remaining: int
) -> None:
    credited = [
        credit_invoice_line(invoice_line(amount, tax_rates), amount=amount, quantity=None, param="lines[0]")
        for amount, tax_rates in lines
    ]
    expected = sum(line.amount + line.exclusive_tax for line in credited)
    totals = credit_note_totals(credited, amount_remaining=amount_remaining, creditable=expected)
    assert totals.total == expected == totals.subtotal + sum(line.exclusive_tax for line in credited)
    assert totals.pre_payment_amount == min(expected, amount_remaining)
    assert totals.pre_payment_amount + totals.post_payment_amount == totals.total
    with pytest.raises(InvalidRequest) as refused:
        credit_note_totals(credited, amount_remaining=amount_remaining, creditable=expected - 1)
    assert refused.value.code == "amount_too_large"


def test_the_part_after_payment_must_be_allocated_exactly() -> None:
    totals = credit_note_totals([custom_line("Goodwill", 1, 5_000)], amount_remaining=2_000, creditable=10_000)
    assert (totals.pre_payment_amount, totals.post_payment_amount, totals.type) == (2_000, 3_000, CreditNoteType.mixed)
    check_allocation(totals, refund=1_000, credit=1_500, out_of_band=500)
    with pytest.raises(InvalidRequest) as short:
        check_allocation(totals, refund=1_000, credit=1_500, out_of_band=0)
    assert (short.value.code, short.value.param) == ("parameter_invalid", "refundAmount")
    before_payment = credit_note_totals([custom_line("Goodwill", 1, 500)], amount_remaining=2_000, creditable=10_000)
    with pytest.raises(InvalidRequest) as nothing_paid:
        check_allocation(before_payment, refund=0, credit=500, out_of_band=0)
    assert "nothing was paid" in nothing_paid.value.message


def test_request_lines_are_checked_and_one_invoice_line_credited_twice_counts_both() -> None:
    line = invoice_line(10_000, [])
    half = CreditNoteLineCreate(type=CreditNoteLineType.invoice_line_item, invoiceLineItem="il_1", amount=6_000)
    with pytest.raises(InvalidRequest) as twice:
        requested_lines([half, half], [line])
    assert (twice.value.code, twice.value.param) == ("amount_too_large", "lines[1][amount]")
    bad = [
        (CreditNoteLineCreate(type=CreditNoteLineType.invoice_line_item, amount=1), "lines[0][invoiceLineItem]"),
        (CreditNoteLineCreate(type=CreditNoteLineType.invoice_line_item, invoiceLineItem="il_x", amount=1), None),
        (CreditNoteLineCreate(type=CreditNoteLineType.invoice_line_item, invoiceLineItem="il_1"), None),
        (CreditNoteLineCreate(type=CreditNoteLineType.custom_line_item, unitAmount=5), "lines[0][description]"),
        (
            CreditNoteLineCreate(type=CreditNoteLineType.custom_line_item, invoiceLineItem="il_1", unitAmount=5),
            "lines[0][invoiceLineItem]",
        ),
        (
            CreditNoteLineCreate(type=CreditNoteLineType.invoice_line_item, invoiceLineItem="il_1", quantity=2),
            "lines[0][quantity]",
        ),
    ]
    for request, param in bad:
        with pytest.raises(InvalidRequest) as refused:
            requested_lines([request], [line])
        assert refused.value.param == (param or refused.value.param)
        assert refused.value.param is not None and refused.value.param.startswith("lines[0][")
    (custom,) = requested_lines(
        [CreditNoteLineCreate(type=CreditNoteLineType.custom_line_item, description="Late", quantity=3, unitAmount=7)],
        [line],
    )
    assert (custom.amount, custom.taxes, custom.invoice_line_item_id) == (21, (), None)
