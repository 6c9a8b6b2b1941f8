"""/v1/invoices"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.responses import list_response
from billing.db.pagination import CreatedRange, PageRequest
from billing.errors import ResourceMissing
from billing.invoices.repository import get_invoice, list_invoices
from contracts.enums import InvoiceStatus
from contracts.invoices import InvoiceDetails


class InvoiceController(Controller):
    path = "/v1/invoices"
    tags = ["invoices"]

    @get("/{invoice_id:str}", summary="Retrieve an invoice with its lines")
    async def retrieve(self, invoice_id: str, db: AsyncSession) -> InvoiceDetails:
        invoice = await get_invoice(db, invoice_id)
        if invoice is None:
            raise ResourceMissing("invoice", invoice_id)
        return invoice

    @get("/", summary="List invoices, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        created: CreatedRange,
        customer: Annotated[str | None, Parameter(query="customer", max_length=64, required=False)] = None,
        subscription: Annotated[str | None, Parameter(query="subscription", max_length=64, required=False)] = None,
        status: Annotated[InvoiceStatus | None, Parameter(query="status", required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_invoices(
            db, page_request, customer=customer, subscription=subscription, status=status, created=created
        )
        return list_response(page, InvoiceDetails, self.path)
