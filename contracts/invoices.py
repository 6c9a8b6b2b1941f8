"""Invoices as the API answers them (the generated `Invoice` with its lines), and the
command that applies a payment attempt's outcome to its invoice."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, Field, StrictInt

from contracts.commands import Command
from contracts.common import Metadata, RequestModel
from contracts.decimals import PlainDecimal
from contracts.enums import CollectionMethod, ProrationBehavior
from contracts.json_shapes import TaxAmount
from contracts.resources import Invoice, InvoiceLineItem, Payment
from contracts.subscriptions import MAX_ITEMS, SubscriptionItemChange


class InvoiceDetails(Invoice):
    lines: list[InvoiceLineItem]


class InvoiceRetryPayment(Command[InvoiceDetails]):
    """The dunning schedule's retry of a subscription invoice, due at `nextPaymentAttempt`
    (published by the scheduler): a new attempt with the subscription's payment method. One
    for an invoice paid, retried or rescheduled since changes nothing; none is made once
    the subscription has ended."""

    command_type: ClassVar[str] = "invoice.retry_payment"

    id: str = Field(max_length=64)
    nextPaymentAttempt: AwareDatetime


class MeteredUsage(BaseModel):
    """The billable quantity of one metered line: its meter's total for the customer over the
    line's period, read from ClickHouse by the scheduler, rounded up to a whole unit."""

    line: str = Field(max_length=64)
    quantity: StrictInt = Field(ge=0)


class InvoiceFinalizeDraft(Command[InvoiceDetails]):
    """The scheduler's finalization of a renewal's draft at `automaticallyFinalizesAt` (the
    organization's draft period after the renewal): its metered lines priced at `usage`,
    then finalized and charged as the subscription's invoices are. One for a draft finalized,
    deleted or rescheduled since changes nothing."""

    command_type: ClassVar[str] = "invoice.finalize_draft"

    id: str = Field(max_length=64)
    automaticallyFinalizesAt: AwareDatetime
    usage: list[MeteredUsage] = Field(default_factory=list, max_length=MAX_ITEMS)


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


class UpcomingInvoiceRequest(RequestModel):
    """`POST /v1/invoices/upcoming`: the invoice a subscription's next renewal would be,
    or, with `subscriptionItems` and `subscriptionProrationBehavior: always_invoice`, the
    invoice that change would create now."""

    customer: str = Field(max_length=64)
    subscription: str = Field(max_length=64)
    subscriptionItems: list[SubscriptionItemChange] | None = Field(default=None, max_length=MAX_ITEMS)
    subscriptionProrationBehavior: ProrationBehavior | None = None
    subscriptionProrationDate: AwareDatetime | None = None


class InvoicePreviewLine(BaseModel):
    description: str
    amount: int = Field(description="Minor units, rounded once")
    quantity: int
    priceId: str | None
    subscriptionItemId: str | None
    unitAmountDecimal: PlainDecimal | None
    proration: bool
    periodStart: datetime
    periodEnd: datetime
    taxAmounts: list[TaxAmount] = Field(description="Each tax rate's tax on this line, rounded once")


class InvoicePreview(BaseModel):
    object: Literal["invoice_preview"] = "invoice_preview"
    customerId: str
    subscriptionId: str
    currency: str
    billingReason: Literal["subscription_update", "subscription_cycle"]
    periodStart: datetime
    periodEnd: datetime
    lines: list[InvoicePreviewLine]
    subtotal: int
    tax: int
    total: int
    startingBalance: int
    endingBalance: int
    amountDue: int


class InvoiceCreate(Command[InvoiceDetails]):
    """A one-off draft invoice of the customer's pending invoice items (those of no
    subscription: a subscription's wait for its own next invoice), in the customer's
    currency; finalize it to number it and, with charge_automatically, to charge it."""

    command_type: ClassVar[str] = "invoice.create"

    customer: str = Field(max_length=64)
    collectionMethod: CollectionMethod = CollectionMethod.charge_automatically
    daysUntilDue: StrictInt | None = Field(default=None, ge=0, le=365, description="Required with send_invoice")
    metadata: Metadata = Field(default_factory=dict)


class InvoiceActionCommand(Command[InvoiceDetails]):
    id: str = Field(max_length=64)


class InvoiceFinalize(InvoiceActionCommand):
    """draft -> open with the next number; one with nothing to pay is paid at once, a
    charge_automatically one is charged (a payment attempt for the worker)."""

    command_type: ClassVar[str] = "invoice.finalize"


class InvoiceVoid(InvoiceActionCommand):
    """open or uncollectible -> void: nothing more is owed."""

    command_type: ClassVar[str] = "invoice.void"


class InvoiceMarkUncollectible(InvoiceActionCommand):
    """open -> uncollectible: written off, yet it can still be paid."""

    command_type: ClassVar[str] = "invoice.mark_uncollectible"


class InvoiceDelete(InvoiceActionCommand):
    """Only a draft is deleted; its invoice items are pending again."""

    command_type: ClassVar[str] = "invoice.delete"
