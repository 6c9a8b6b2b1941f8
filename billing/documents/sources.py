"""Invoices and credit notes as `Document`s for the PDF renderer: read in a tenant
session (the invoice or credit note, its lines, customer, organization and tax rates),
then laid out by pure functions. Labels are English; amounts and dates follow the
customer's preferred locales (billing.documents.formatting.document_locale)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.credit_notes.repository import credit_note_lines
from billing.db.sessions import get_one
from billing.documents.formatting import document_locale, format_money
from billing.documents.pdf import Document, DocumentLine
from billing.invoices.repository import invoice_lines
from billing.models import (
    CreditNote,
    Customer,
    Invoice,
    Organization,
    TaxRate,
)
from billing.organizations.service import own_column
from contracts.enums import InvoiceStatus


def bill_to(customer: Customer) -> list[str]:
    """Name, email and the address as a letter shows it (empty parts left out)."""
    address: Mapping[str, str] = customer.address or {}
    city_line = " ".join(part for part in (address.get("postalCode"), address.get("city")) if part)
    parts = [
        customer.name,
        customer.email,
        address.get("line1"),
        address.get("line2"),
        city_line,
        address.get("state"),
        address.get("country"),
    ]
    return [part for part in parts if part]


def _percentage(rate: TaxRate) -> str:
    text = format(Decimal(rate.percentage).normalize(), "f")
    return f"{text} %{' incl.' if rate.inclusive else ''}"


def tax_totals(
    lines_taxes: Iterable[Sequence[Mapping[str, Any]]], rates: Mapping[str, TaxRate]
) -> list[tuple[str, int]]:
    """One total per tax rate, in the order the rates first appear on the lines."""
    sums: dict[str, int] = {}
    for taxes in lines_taxes:
        for tax in taxes:
            sums[tax["taxRateId"]] = sums.get(tax["taxRateId"], 0) + tax["amount"]
    return [
        (f"{rates[rate_id].display_name} {_percentage(rates[rate_id])}" if rate_id in rates else "Tax", amount)
        for rate_id, amount in sums.items()
    ]


async def _tax_rates(session: AsyncSession, lines_taxes: Iterable[Sequence[Mapping[str, Any]]]) -> dict[str, TaxRate]:
    ids = {tax["taxRateId"] for taxes in lines_taxes for tax in taxes}
    if not ids:
        return {}
    return {rate.id: rate for rate in (await session.scalars(select(TaxRate).where(TaxRate.id.in_(ids)))).all()}


async def _customer(session: AsyncSession, customer_id: str) -> Customer:
    customer = await get_one(session, Customer, Customer.id, customer_id)
    assert customer is not None  # an invoice's customer is kept (Restrict), deleted ones too
    return customer


def _footer(customer: Customer) -> list[str]:
    footer = (customer.invoice_settings or {}).get("footer")
    return [footer] if footer else []


async def invoice_document(session: AsyncSession, invoice_id: str) -> Document | None:
    invoice = await get_one(session, Invoice, Invoice.id, invoice_id)
    if invoice is None:
        return None
    lines = await invoice_lines(session, invoice.id)
    customer = await _customer(session, invoice.customer_id)
    rates = await _tax_rates(session, (line.tax_amounts for line in lines))
    locale = document_locale(customer.preferred_locales or [], currency=invoice.currency)
    return Document(
        title="Invoice",
        number=invoice.number,
        issuer=await own_column(session, Organization.name),
        bill_to=bill_to(customer),
        facts=invoice_facts(invoice),
        currency=invoice.currency,
        locale=locale,
        lines=[
            DocumentLine(
                description=line.description,
                amount=line.amount,
                quantity=line.quantity,
                unit_amount=line.unit_amount_decimal,
                period=(line.period_start, line.period_end),
            )
            for line in lines
        ],
        totals=invoice_total_rows(invoice, tax_totals((line.tax_amounts for line in lines), rates)),
        created_at=invoice.finalized_at or invoice.created_at,
        notes=_footer(customer),
    )


def invoice_facts(invoice: Invoice) -> list[tuple[str, Any]]:
    facts: list[tuple[str, Any]] = [("Invoice number", invoice.number or "Draft")]
    facts.append(("Date of issue", invoice.finalized_at or invoice.created_at))
    if invoice.status is InvoiceStatus.paid and invoice.paid_at is not None:
        facts.append(("Paid on", invoice.paid_at))
    elif invoice.due_date is not None:
        facts.append(("Date due", invoice.due_date))
    if invoice.status in (InvoiceStatus.void, InvoiceStatus.uncollectible):
        facts.append(("Status", "Void" if invoice.status is InvoiceStatus.void else "Uncollectible"))
    return facts


def invoice_total_rows(invoice: Invoice, taxes: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Stripe's order: subtotal, each tax, total, what credit notes and the balance took
    off, what was paid; the amount still due last."""
    totals = [("Subtotal", invoice.subtotal), *taxes, ("Total", invoice.total)]
    if invoice.pre_payment_credit_notes_amount:
        totals.append(("Credit notes", -invoice.pre_payment_credit_notes_amount))
    applied = (invoice.ending_balance or 0) - invoice.starting_balance if invoice.ending_balance is not None else 0
    if applied:
        totals.append(("Applied balance", -applied))
    if invoice.amount_paid:
        totals.append(("Amount paid", invoice.amount_paid))
    totals.append(("Amount remaining" if invoice.amount_paid else "Amount due", invoice.amount_remaining))
    return totals


async def credit_note_document(session: AsyncSession, credit_note_id: str) -> Document | None:
    note = await get_one(session, CreditNote, CreditNote.id, credit_note_id)
    if note is None:
        return None
    invoice = await get_one(session, Invoice, Invoice.id, note.invoice_id)
    assert invoice is not None  # a credit note's invoice is kept (Restrict)
    lines = await credit_note_lines(session, note.id)
    customer = await _customer(session, note.customer_id)
    rates = await _tax_rates(session, (line.tax_amounts for line in lines))
    locale = document_locale(customer.preferred_locales or [], currency=note.currency)
    facts: list[tuple[str, Any]] = [
        ("Credit note number", note.number),
        ("Invoice", invoice.number or invoice.id),
        ("Date of issue", note.created_at),
    ]
    if note.reason:
        facts.append(("Reason", note.reason.replace("_", " ").capitalize()))
    if note.voided_at is not None:
        facts.append(("Status", "Void"))
    taxes = tax_totals((line.tax_amounts for line in lines), rates)
    return Document(
        title="Credit note",
        number=note.number,
        issuer=await own_column(session, Organization.name),
        bill_to=bill_to(customer),
        facts=facts,
        currency=note.currency,
        locale=locale,
        lines=[
            DocumentLine(
                description=line.description,
                amount=line.amount,
                quantity=line.quantity,
                unit_amount=line.unit_amount_decimal,
            )
            for line in lines
        ],
        totals=[("Subtotal", note.subtotal), *taxes, ("Total credited", note.total)],
        created_at=note.created_at,
        notes=[*([note.memo] if note.memo else []), *credit_note_split(note, invoice, locale)],
    )


def credit_note_split(note: CreditNote, invoice: Invoice, locale: str) -> list[str]:
    """Where the credit went, one sentence per part."""
    invoice_name = invoice.number or invoice.id
    parts = [
        (note.pre_payment_amount, f"taken off the amount due on invoice {invoice_name}"),
        (note.refund_amount, "refunded to the original payment method"),
        (note.credit_amount, "credited to your balance, applied to your next invoices"),
        (note.out_of_band_amount, "credited outside this system"),
    ]
    return [f"{format_money(amount, note.currency, locale)} {what}." for amount, what in parts if amount]
