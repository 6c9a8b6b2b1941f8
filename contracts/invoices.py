"""Invoices as the API answers them: the generated `Invoice` with its lines."""

from __future__ import annotations

from contracts.resources import Invoice, InvoiceLineItem


class InvoiceDetails(Invoice):
    lines: list[InvoiceLineItem]
