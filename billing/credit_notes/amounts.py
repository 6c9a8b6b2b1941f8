"""What a credit note credits, in integer minor units. Pure, no I/O.

A line of type invoice_line_item credits part of an invoice line, by amount or by quantity
(quantity q of a line of quantity Q and amount A credits A * q / Q, rounded once), never
more than what earlier credit notes left of it. Its taxes follow in proportion and are
rounded cumulatively: the credit that brings a line's credited amount from c to c + a
credits round(T * (c + a) / A) - round(T * c / A) of a tax T, so the credit notes that use
up a line give back exactly its taxes, however the line was split. A custom line is
quantity x unit amount, untaxed.

Totals follow the invoice's rule (billing.invoices.totals): subtotal is the lines'
amounts, total adds the exclusive taxes. The total first reduces what is left to pay on
the invoice (pre-payment), the rest gives back what was paid (post-payment), which the
refund, the customer-balance credit and the out-of-band amount must add up to exactly
(Stripe's rule since 2019-12-03).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from billing.errors import InvalidRequest
from billing.invoices.totals import TaxLine
from billing.money.amounts import check_line_amount, round_ratio_to_minor
from contracts.credit_notes import CreditNoteLineCreate
from contracts.enums import CreditNoteLineType, CreditNoteType


@dataclass(frozen=True, slots=True)
class CreditableLine:
    """An invoice line as a credit note sees it: its amount, taxes and what is credited."""

    id: str
    description: str
    quantity: int
    unit_amount_decimal: Decimal | None
    amount: int
    taxes: tuple[TaxLine, ...]
    credited: int  # by issued credit notes before this one


@dataclass(frozen=True, slots=True)
class CreditedLine:
    type: CreditNoteLineType
    invoice_line_item_id: str | None
    description: str
    quantity: int | None
    unit_amount_decimal: Decimal | None
    amount: int
    taxes: tuple[TaxLine, ...]

    @property
    def exclusive_tax(self) -> int:
        return sum(tax.amount for tax in self.taxes if not tax.inclusive)


@dataclass(frozen=True, slots=True)
class CreditNoteTotals:
    subtotal: int
    tax: int
    total: int
    pre_payment_amount: int
    post_payment_amount: int

    @property
    def type(self) -> CreditNoteType:
        if self.post_payment_amount == 0:
            return CreditNoteType.pre_payment
        return CreditNoteType.post_payment if self.pre_payment_amount == 0 else CreditNoteType.mixed


def _cumulative_share(whole: int, before: int, credited: int, line_amount: int) -> int:
    """What crediting `credited` after `before` of a line of `line_amount` gives back of `whole`."""
    return round_ratio_to_minor(whole, before + credited, line_amount) - round_ratio_to_minor(
        whole, before, line_amount
    )


def credit_invoice_line(line: CreditableLine, *, amount: int | None, quantity: int | None, param: str) -> CreditedLine:
    """Part of `line` by `amount` or by `quantity` (exactly one), its taxes in proportion."""
    if (amount is None) == (quantity is None):
        raise InvalidRequest(
            "An invoice_line_item line takes exactly one of amount or quantity.",
            code="parameter_missing" if amount is None else "parameter_invalid",
            param=f"{param}[amount]",
        )
    if line.amount <= 0:
        raise InvalidRequest(
            f"The invoice line {line.id} charges nothing ({line.amount}); only a charge can be credited.",
            code="parameter_invalid",
            param=f"{param}[invoiceLineItem]",
        )
    if quantity is not None:
        if quantity > line.quantity:
            raise InvalidRequest(
                f"The quantity to credit ({quantity}) is more than the invoice line's ({line.quantity}).",
                code="parameter_invalid",
                param=f"{param}[quantity]",
            )
        amount = round_ratio_to_minor(line.amount, quantity, line.quantity)
    assert amount is not None
    left = line.amount - line.credited
    if amount > left:
        raise InvalidRequest(
            f"The credit ({amount}) is more than what is left to credit of the invoice line {line.id} ({left}).",
            code="amount_too_large",
            param=f"{param}[{'amount' if quantity is None else 'quantity'}]",
        )
    taxes = tuple(
        TaxLine(
            tax.tax_rate_id,
            tax.inclusive,
            _cumulative_share(tax.taxable_amount, line.credited, amount, line.amount),
            _cumulative_share(tax.amount, line.credited, amount, line.amount),
        )
        for tax in line.taxes
    )
    return CreditedLine(
        CreditNoteLineType.invoice_line_item,
        line.id,
        line.description,
        quantity,
        line.unit_amount_decimal,
        amount,
        taxes,
    )


def custom_line(description: str, quantity: int, unit_amount: int) -> CreditedLine:
    amount = check_line_amount(quantity * unit_amount, "credit note line amount")
    return CreditedLine(
        CreditNoteLineType.custom_line_item, None, description, quantity, Decimal(unit_amount), amount, ()
    )


def requested_lines(
    requested: Sequence[CreditNoteLineCreate], invoice_lines: Sequence[CreditableLine]
) -> list[CreditedLine]:
    """The request's lines against the invoice's; an invoice line credited twice in one
    credit note counts its first credit before the second."""
    by_id = {line.id: line for line in invoice_lines}
    credited_here: dict[str, int] = {}
    lines = []
    for index, line in enumerate(requested):
        param = f"lines[{index}]"
        if line.type is CreditNoteLineType.custom_line_item:
            if line.invoiceLineItem is not None or line.amount is not None:
                raise InvalidRequest(
                    "A custom_line_item line takes description, quantity and unitAmount, not an invoice line.",
                    code="parameter_unknown",
                    param=f"{param}[{'invoiceLineItem' if line.invoiceLineItem is not None else 'amount'}]",
                )
            for field, value in (("description", line.description), ("unitAmount", line.unitAmount)):
                if value is None:
                    raise InvalidRequest(
                        f"A custom_line_item line needs {field}.", code="parameter_missing", param=f"{param}[{field}]"
                    )
            assert line.description is not None and line.unitAmount is not None
            lines.append(custom_line(line.description, line.quantity or 1, line.unitAmount))
            continue
        if line.unitAmount is not None or line.description is not None:
            raise InvalidRequest(
                "An invoice_line_item line credits its invoice line: no unitAmount or description.",
                code="parameter_unknown",
                param=f"{param}[{'unitAmount' if line.unitAmount is not None else 'description'}]",
            )
        if line.invoiceLineItem is None:
            raise InvalidRequest(
                "An invoice_line_item line needs invoiceLineItem.",
                code="parameter_missing",
                param=f"{param}[invoiceLineItem]",
            )
        found = by_id.get(line.invoiceLineItem)
        if found is None:
            raise InvalidRequest(
                f"The invoice has no line '{line.invoiceLineItem}'.",
                code="resource_missing",
                param=f"{param}[invoiceLineItem]",
            )
        before = found.credited + credited_here.get(found.id, 0)
        credited = credit_invoice_line(
            replace(found, credited=before),
            amount=line.amount,
            quantity=line.quantity,
            param=param,
        )
        credited_here[found.id] = credited_here.get(found.id, 0) + credited.amount
        lines.append(credited)
    return lines


def credit_note_totals(
    lines: Sequence[CreditedLine],
    *,
    amount_remaining: int,
    creditable: int,
    asked_total: int | None = None,
    param: str = "lines",
) -> CreditNoteTotals:
    """The lines' totals, split into what reduces `amount_remaining` and what gives back
    what was paid; never more than `creditable` (what is left to pay plus what was paid
    and not given back yet)."""
    subtotal = check_line_amount(sum(line.amount for line in lines), "credit note subtotal")
    tax = sum(tax.amount for line in lines for tax in line.taxes)
    total = check_line_amount(subtotal + sum(line.exclusive_tax for line in lines), "credit note total")
    if asked_total is not None and asked_total != total:
        raise InvalidRequest(
            f"amount ({asked_total}) is not the lines' total ({total}); give one or make them agree.",
            code="parameter_invalid",
            param="amount",
        )
    if total <= 0:
        raise InvalidRequest("A credit note must credit something.", code="parameter_invalid", param=param)
    if total > creditable:
        raise InvalidRequest(
            f"The credit note ({total}) is more than the invoice can still be credited ({creditable}: "
            "what is left to pay plus what was paid and not given back yet).",
            code="amount_too_large",
            param=param,
        )
    pre_payment = min(total, max(amount_remaining, 0))
    return CreditNoteTotals(subtotal, tax, total, pre_payment, total - pre_payment)


def check_allocation(totals: CreditNoteTotals, *, refund: int, credit: int, out_of_band: int) -> None:
    """The post-payment part is refunded, credited and credited out of band, exactly."""
    allocated = refund + credit + out_of_band
    if allocated != totals.post_payment_amount:
        if totals.post_payment_amount == 0:
            message = (
                f"The whole credit note ({totals.total}) reduces what is left to pay on the invoice: nothing "
                "was paid to refund, credit or give back out of band."
            )
        else:
            message = (
                f"refundAmount + creditAmount + outOfBandAmount ({allocated}) must equal the part of the credit "
                f"note beyond what is left to pay ({totals.post_payment_amount} of {totals.total})."
            )
        param = "refundAmount" if refund else "creditAmount" if credit else "outOfBandAmount"
        raise InvalidRequest(message, code="parameter_invalid", param=param)
