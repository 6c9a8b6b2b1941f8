"""/v1/invoiceitems: charges and credits waiting for a customer's next one-off invoice."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import CustomerFilter, IdempotencyKey
from api.responses import list_response, run_command
from billing.db.pagination import PageRequest
from billing.errors import ResourceMissing
from billing.invoices.items import get_invoice_item, list_invoice_items
from contracts.invoice_items import InvoiceItemCreate, InvoiceItemDelete
from contracts.resources import InvoiceItem


class InvoiceItemController(Controller):
    path = "/v1/invoiceitems"
    tags = ["invoices"]

    @post("/", summary="Create an invoice item (amount, or a one_time price and quantity)", status_code=201)
    async def create(
        self, data: InvoiceItemCreate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[InvoiceItem]:
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/{invoice_item_id:str}", summary="Retrieve an invoice item")
    async def retrieve(self, invoice_item_id: str, db: AsyncSession) -> InvoiceItem:
        item = await get_invoice_item(db, invoice_item_id)
        if item is None:
            raise ResourceMissing("invoice_item", invoice_item_id)
        return InvoiceItem.model_validate(item)

    @delete("/{invoice_item_id:str}", summary="Delete a pending invoice item", status_code=200)
    async def remove(
        self, invoice_item_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[InvoiceItem]:
        return await run_command(bus, caller, InvoiceItemDelete(id=invoice_item_id), idempotency_key)

    @get("/", summary="List invoice items, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        customer: CustomerFilter = None,
        invoice: Annotated[str | None, Parameter(query="invoice", max_length=64, required=False)] = None,
        pending: Annotated[bool | None, Parameter(query="pending", required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_invoice_items(db, page_request, customer=customer, invoice=invoice, pending=pending)
        return list_response(page, InvoiceItem, self.path)
