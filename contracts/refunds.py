"""Refund requests. The API refunds at Stripe first (never inside a transaction), then
records Stripe's answer with `RefundRecord`; the resource that comes back is the generated
`contracts.resources.Refund`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, StrictInt

from contracts.commands import Command
from contracts.common import Metadata, RequestModel
from contracts.resources import Refund

RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]


class RefundCreate(RequestModel):
    """`POST /v1/refunds`: refund a paid invoice's payment (`invoice`) or a payment
    (`payment`), all that is left of it or `amount` minor units of it."""

    invoice: str | None = Field(default=None, max_length=64)
    payment: str | None = Field(default=None, max_length=64)
    amount: StrictInt | None = Field(default=None, ge=1, description="Default: all that is not refunded yet")
    reason: RefundReason | None = None
    metadata: Metadata = Field(default_factory=dict)


class RefundRecord(Command[Refund]):
    """Stripe's answer to a refund, recorded once (the gateway's refund id is unique)."""

    command_type: ClassVar[str] = "refund.record"

    paymentId: str = Field(max_length=64)
    amount: StrictInt = Field(ge=1, description="In the payment's currency, as every refund of it")
    status: Literal["pending", "requires_action", "succeeded", "failed", "canceled"]
    gatewayRefundId: str = Field(max_length=255)
    failureReason: str | None = Field(default=None, max_length=255)
    reason: RefundReason | None = None
    metadata: Metadata = Field(default_factory=dict)
