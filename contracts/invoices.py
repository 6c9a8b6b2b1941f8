"""Invoices as the API answers them (the generated `Invoice` with its lines), and the
command that applies a payment attempt's outcome to its invoice."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from contracts.commands import Command
from contracts.common import RequestModel
from contracts.resources import Invoice, InvoiceLineItem, Payment


class InvoiceDetails(Invoice):
    lines: list[InvoiceLineItem]


class PaymentOutcome(Command[Payment]):
    """What the gateway answered for a payment attempt, applied once (the payment worker
    publishes it with a command id derived from the payment, so a repeat is a duplicate)."""

    command_type: ClassVar[str] = "payment.apply_outcome"

    payment: str = Field(max_length=64)
    status: Literal["processing", "requires_action", "succeeded", "failed"]
    gatewayPaymentIntentId: str | None = Field(default=None, max_length=255)
    failureCode: str | None = Field(default=None, max_length=100)
    declineCode: str | None = Field(default=None, max_length=100)
    failureMessage: str | None = Field(default=None, max_length=1000)
    nextActionUrl: str | None = Field(default=None, max_length=2048)


class InvoicePayRequest(RequestModel):
    paymentMethod: str | None = Field(
        default=None,
        max_length=64,
        description="One of the customer's; default: the subscription's, else the customer's",
    )


class InvoicePay(InvoicePayRequest, Command[InvoiceDetails]):
    """Collect an open (or uncollectible) invoice now: a new attempt, charged off session
    by the payment worker. The answer is the invoice with the attempt recorded; the
    outcome follows as invoice.paid / invoice.payment_failed."""

    command_type: ClassVar[str] = "invoice.pay"

    id: str = Field(max_length=64)
