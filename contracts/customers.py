"""Customer requests: the API's request bodies and the payloads of the customer commands.

The resource that comes back is `contracts.resources.Customer`, generated from Prisma.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import EmailStr, Field

from contracts.commands import Command
from contracts.common import Address, Metadata, MetadataUpdate, RequestModel, Shipping
from contracts.resources import Customer

INVOICE_PREFIX_PATTERN = r"^[A-Z0-9]{3,12}$"
# a BCP 47 language tag as Stripe takes them: "en", "de-DE", "zh-Hant-TW"
LocaleTag = Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$", max_length=35)]
PreferredLocales = Annotated[list[LocaleTag], Field(max_length=10)]


class InvoiceSettings(RequestModel):
    defaultPaymentMethod: str | None = Field(default=None, max_length=64)
    footer: str | None = Field(default=None, max_length=5000)


class CustomerCreate(Command[Customer]):
    command_type: ClassVar[str] = "customer.create"

    email: EmailStr | None = Field(default=None, max_length=512)
    name: str | None = Field(default=None, max_length=256)
    phone: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=1000)
    address: Address | None = None
    shipping: Shipping | None = None
    metadata: Metadata = Field(default_factory=dict)
    balance: int = Field(default=0, ge=-(10**15), le=10**15, description="Minor units")
    invoicePrefix: str | None = Field(default=None, pattern=INVOICE_PREFIX_PATTERN)
    invoiceSettings: InvoiceSettings | None = None
    preferredLocales: PreferredLocales = Field(default_factory=list)
    testClock: str | None = Field(
        default=None, max_length=64, description="a test clock whose time is the customer's now (test mode)"
    )


class CustomerUpdate(RequestModel):
    """PATCH: a field left out is unchanged; a field sent as null is cleared."""

    email: EmailStr | None = Field(default=None, max_length=512)
    name: str | None = Field(default=None, max_length=256)
    phone: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=1000)
    address: Address | None = None
    shipping: Shipping | None = None
    metadata: MetadataUpdate | None = None
    balance: int | None = Field(default=None, ge=-(10**15), le=10**15)
    invoicePrefix: str | None = Field(default=None, pattern=INVOICE_PREFIX_PATTERN)
    invoiceSettings: InvoiceSettings | None = None
    preferredLocales: PreferredLocales | None = Field(default=None, description="null clears")


class CustomerUpdateCommand(Command[Customer]):
    command_type: ClassVar[str] = "customer.update"

    id: str = Field(max_length=64)
    changes: dict[str, Any] = Field(description="Only the fields the client sent (CustomerUpdate, exclude_unset)")


class CustomerDeleteCommand(Command[Customer]):
    command_type: ClassVar[str] = "customer.delete"

    id: str = Field(max_length=64)
