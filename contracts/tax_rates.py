"""Tax rate requests: the API's request bodies and the payloads of the tax rate commands.

As in Stripe, `percentage` and `inclusive` are fixed once a rate is created (an invoice
line taxed by it keeps its meaning); what describes the rate can change, and a rate no
longer to be used is archived with `active: false`. The resource that comes back is
`contracts.resources.TaxRate`, generated from Prisma.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field

from contracts.commands import Command
from contracts.common import Metadata, MetadataUpdate, RequestModel
from contracts.resources import TaxRate

# Stripe's tax_type values
TaxType = Literal[
    "amusement_tax",
    "communications_tax",
    "gst",
    "hst",
    "igst",
    "jct",
    "lease_tax",
    "pst",
    "qst",
    "retail_delivery_fee",
    "rst",
    "sales_tax",
    "service_tax",
    "vat",
]
# Stripe's percentages carry at most four decimal places (8.8750)
MAX_PERCENTAGE_PLACES: Final = 4
Percentage = Annotated[Decimal, Field(ge=0, le=100, decimal_places=MAX_PERCENTAGE_PLACES)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]


class TaxRateCreate(Command[TaxRate]):
    command_type: ClassVar[str] = "tax_rate.create"

    displayName: str = Field(min_length=1, max_length=50, description="What the invoice line says, e.g. VAT")
    percentage: Percentage = Field(description="0 to 100, at most four decimal places (8.875)")
    inclusive: bool = Field(description="true: part of the price; false: added to it")
    description: str | None = Field(default=None, max_length=500)
    jurisdiction: str | None = Field(default=None, max_length=50)
    country: Country | None = None
    state: str | None = Field(default=None, max_length=50)
    taxType: TaxType | None = None
    active: bool = True
    metadata: Metadata = Field(default_factory=dict)


class TaxRateUpdate(RequestModel):
    """PATCH: a field left out is unchanged; null clears an optional one."""

    displayName: str | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    jurisdiction: str | None = Field(default=None, max_length=50)
    country: Country | None = None
    state: str | None = Field(default=None, max_length=50)
    taxType: TaxType | None = None
    active: bool | None = None
    metadata: MetadataUpdate | None = None


class TaxRateUpdateCommand(Command[TaxRate]):
    command_type: ClassVar[str] = "tax_rate.update"

    id: str = Field(max_length=64)
    changes: dict[str, Any] = Field(description="Only the fields the client sent (TaxRateUpdate, exclude_unset)")
