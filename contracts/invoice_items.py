"""Invoice item requests: a charge (or, negative, a credit) waiting for a customer's next
one-off invoice. Either `amount` in minor units, or a one_time `price` with a `quantity`
quoted by the pricing engine in the item's currency. The resource that comes back is the
generated `contracts.resources.InvoiceItem`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field, StrictInt

from contracts.commands import Command
from contracts.common import Metadata
from contracts.resources import InvoiceItem

MAX_ITEM_AMOUNT = 10**12  # minor units, either way: the money module's line limit is far above


class InvoiceItemCreate(Command[InvoiceItem]):
    command_type: ClassVar[str] = "invoice_item.create"

    customer: str = Field(max_length=64)
    amount: StrictInt | None = Field(
        default=None, ge=-MAX_ITEM_AMOUNT, le=MAX_ITEM_AMOUNT, description="Minor units; negative: a credit"
    )
    price: str | None = Field(default=None, max_length=64, description="A one_time price, instead of amount")
    quantity: StrictInt = Field(default=1, ge=1, le=10**9)
    currency: str | None = Field(
        default=None, min_length=3, max_length=3, description="Default: the customer's, else the price's"
    )
    description: str | None = Field(default=None, min_length=1, max_length=500)
    periodStart: AwareDatetime | None = Field(default=None, description="Default: now")
    periodEnd: AwareDatetime | None = Field(default=None, description="Default: the moment periodStart (1 ms later)")
    metadata: Metadata = Field(default_factory=dict)


class InvoiceItemDelete(Command[InvoiceItem]):
    """Only a pending item (on no invoice, or on a draft) can be deleted."""

    command_type: ClassVar[str] = "invoice_item.delete"

    id: str = Field(max_length=64)
