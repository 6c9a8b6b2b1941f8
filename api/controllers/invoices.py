"""/v1/invoices: subscription and one-off invoices, their actions, and the preview."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Response, delete, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.queries import meter_total
from api.auth import Caller
from api.bus import CommandBus
from api.controllers.analytics import AnalyticsStores
from api.params import CustomerFilter, IdempotencyKey
from api.responses import list_response, pdf_response, run_command
from billing.clocks import service as clocks
from billing.db.pagination import CreatedRange, PageRequest
from billing.documents.sources import invoice_document
from billing.errors import ResourceMissing
from billing.invoices.preview import upcoming_invoice
from billing.invoices.repository import get_invoice, list_invoices
from billing.subscriptions.periods import Period
from contracts.enums import InvoiceStatus
from contracts.invoices import (
    InvoiceCreate,
    InvoiceDelete,
    InvoiceDetails,
    InvoiceFinalize,
    InvoiceMarkUncollectible,
    InvoicePay,
    InvoicePayRequest,
    InvoicePreview,
    InvoiceVoid,
    UpcomingInvoiceRequest,
)
from contracts.resources import Meter


class InvoiceController(Controller):
    path = "/v1/invoices"
    tags = ["invoices"]

    @post(
        "/upcoming",
        summary="Preview the next invoice of a subscription, or of a plan change",
        description=(
            "Without subscriptionItems: the next renewal's invoice (pending invoice items first). With them: "
            "always_invoice previews the invoice the change creates now; create_prorations shows the renewal "
            "with the change's prorations on it; none the renewal at the new prices. A renewal's metered items "
            "show the usage counted so far in the period (503 analytics_unavailable where ClickHouse is not "
            "readable). Nothing is written."
        ),
        status_code=200,
    )
    async def upcoming(
        self, data: UpcomingInvoiceRequest, db: AsyncSession, analytics: AnalyticsStores
    ) -> InvoicePreview:
        async def usage_total(organization_id: str, meter: Meter, customer_id: str, period: Period) -> Decimal | None:
            store = await analytics.get()
            return await meter_total(store, organization_id, meter, customer_id, period.start, period.end)

        return await upcoming_invoice(db, data, await clocks.now_for_customer(db, data.customer), usage_total)

    @get("/{invoice_id:str}", summary="Retrieve an invoice with its lines")
    async def retrieve(self, invoice_id: str, db: AsyncSession) -> InvoiceDetails:
        invoice = await get_invoice(db, invoice_id)
        if invoice is None:
            raise ResourceMissing("invoice", invoice_id)
        return invoice

    @get(
        "/{invoice_id:str}/pdf",
        summary="The invoice as a PDF",
        description="Amounts and dates in the customer's first preferred locale the PDF can print (else en-US).",
        media_type="application/pdf",
    )
    async def pdf(self, invoice_id: str, db: AsyncSession) -> Response[bytes]:
        return await pdf_response(await invoice_document(db, invoice_id), "invoice", invoice_id)

    @get("/", summary="List invoices, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        created: CreatedRange,
        customer: CustomerFilter = None,
        subscription: Annotated[str | None, Parameter(query="subscription", max_length=64, required=False)] = None,
        status: Annotated[InvoiceStatus | None, Parameter(query="status", required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_invoices(
            db, page_request, customer=customer, subscription=subscription, status=status, created=created
        )
        return list_response(page, InvoiceDetails, self.path)

    @post(
        "/{invoice_id:str}/pay",
        summary="Collect an open invoice now",
        description=(
            "Records a new payment attempt, charged off session by the payment worker with paymentMethod, "
            "else the subscription's default, else the customer's. The answer is the invoice as it stands; "
            "the outcome follows (invoice.paid or invoice.payment_failed; GET the invoice for its status)."
        ),
        status_code=200,
    )
    async def pay(
        self,
        invoice_id: str,
        caller: Caller,
        bus: CommandBus,
        data: InvoicePayRequest | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[InvoiceDetails]:
        request = data or InvoicePayRequest()
        command = InvoicePay(id=invoice_id, **request.model_dump(exclude_unset=True))
        return await run_command(bus, caller, command, idempotency_key)

    @post(
        "/",
        summary="Create a one-off draft invoice of the customer's pending invoice items",
        status_code=201,
    )
    async def create(
        self, data: InvoiceCreate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[InvoiceDetails]:
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @post(
        "/{invoice_id:str}/finalize",
        summary="Finalize a draft: numbered and open (charged, with charge_automatically), or paid if nothing is due",
        status_code=200,
    )
    async def finalize(
        self, invoice_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[InvoiceDetails]:
        return await run_command(bus, caller, InvoiceFinalize(id=invoice_id), idempotency_key)

    @post("/{invoice_id:str}/void", summary="Void an open or uncollectible invoice", status_code=200)
    async def void(
        self, invoice_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[InvoiceDetails]:
        return await run_command(bus, caller, InvoiceVoid(id=invoice_id), idempotency_key)

    @post(
        "/{invoice_id:str}/mark-uncollectible",
        summary="Mark an open invoice uncollectible (it can still be paid)",
        status_code=200,
    )
    async def mark_uncollectible(
        self, invoice_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[InvoiceDetails]:
        return await run_command(bus, caller, InvoiceMarkUncollectible(id=invoice_id), idempotency_key)

    @delete(
        "/{invoice_id:str}",
        summary="Delete a draft invoice (its invoice items are pending again)",
        status_code=200,
    )
    async def remove(
        self, invoice_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[InvoiceDetails]:
        return await run_command(bus, caller, InvoiceDelete(id=invoice_id), idempotency_key)
