"""Credit notes: the request, the command that issues one (with the gateway's refund, when
part of it is refunded: the API refunds at Stripe first, outside any transaction), voiding,
and the credit note as the API answers it (the generated `CreditNote` with its lines)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field, StrictInt

from contracts.commands import Command
from contracts.common import Metadata, RequestModel
from contracts.enums import CreditNoteLineType
from contracts.resources import CreditNote, CreditNoteLineItem

CreditNoteReason = Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory"]
MAX_LINES = 250


class CreditNoteDetails(CreditNote):
    lines: list[CreditNoteLineItem]


class CreditNoteLineCreate(RequestModel):
    """One line: part of an invoice line (`invoiceLineItem` with `amount` or `quantity`),
    or a custom line (`description`, `quantity` x `unitAmount`)."""

    type: CreditNoteLineType
    invoiceLineItem: str | None = Field(default=None, max_length=64, description="With type invoice_line_item")
    amount: StrictInt | None = Field(
        default=None, ge=1, description="Minor units of the invoice line to credit (its taxes follow in proportion)"
    )
    quantity: StrictInt | None = Field(default=None, ge=1)
    unitAmount: StrictInt | None = Field(default=None, ge=1, description="With type custom_line_item, minor units")
    description: str | None = Field(default=None, min_length=1, max_length=500, description="A custom line's")


class CreditNoteCreate(RequestModel):
    """`POST /v1/credit-notes`: adjust a finalized (open, uncollectible or paid) invoice.
    The credit first reduces what is left to pay; what goes beyond it is split between
    `refundAmount` (refunded at Stripe), `creditAmount` (the customer's balance) and
    `outOfBandAmount`, which must add up to that part exactly."""

    invoice: str = Field(max_length=64)
    lines: list[CreditNoteLineCreate] | None = Field(default=None, min_length=1, max_length=MAX_LINES)
    amount: StrictInt | None = Field(
        default=None, ge=1, description="The credit note's total without lines (one custom line), or the lines' total"
    )
    refundAmount: StrictInt = Field(default=0, ge=0)
    creditAmount: StrictInt = Field(default=0, ge=0)
    outOfBandAmount: StrictInt = Field(default=0, ge=0)
    reason: CreditNoteReason | None = None
    memo: str | None = Field(default=None, max_length=5000)
    metadata: Metadata = Field(default_factory=dict)


class GatewayRefund(BaseModel):
    """What Stripe answered for the refund part, made before the command was published."""

    paymentId: str = Field(max_length=64)
    amount: StrictInt = Field(ge=1)
    status: Literal["pending", "requires_action", "succeeded", "failed", "canceled"]
    gatewayRefundId: str = Field(max_length=255)
    failureReason: str | None = Field(default=None, max_length=255)


class CreditNoteIssue(CreditNoteCreate, Command[CreditNoteDetails]):
    """Issues the credit note: numbered after its invoice, the invoice's amounts, the
    customer's balance and the refund (recorded once, by the gateway's refund id) together."""

    command_type: ClassVar[str] = "credit_note.issue"

    refund: GatewayRefund | None = None


class CreditNoteVoid(Command[CreditNoteDetails]):
    """issued -> void, its effect undone: the invoice's amount due back, the customer's
    credit taken back. Only a credit note that refunded nothing can be voided."""

    command_type: ClassVar[str] = "credit_note.void"

    id: str = Field(max_length=64)
