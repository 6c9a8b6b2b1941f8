"""/v1/credit-notes: adjust a finalized invoice. A credit note with a refund part refunds
at Stripe first (outside any transaction, after every rule was checked), then issues the
credit note with Stripe's answer by a command."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from api.bus import CommandBus
from api.controllers.payment_methods import gateway_key, organization_gateway, ours
from api.params import CustomerFilter, IdempotencyKey
from api.responses import list_response, pdf_response, replayed_write, run_command
from billing.credit_notes import repository, service
from billing.db.pagination import PageRequest
from billing.db.sessions import tenant_session
from billing.documents.sources import credit_note_document
from billing.errors import ResourceMissing
from billing.payments.gateway import GatewayError
from billing.payments.stripe_gateway import StripeGatewayPool
from contracts.credit_notes import CreditNoteCreate, CreditNoteDetails, CreditNoteIssue, CreditNoteVoid, GatewayRefund


class CreditNoteController(Controller):
    path = "/v1/credit-notes"
    tags = ["invoices"]

    @post(
        "/",
        summary="Issue a credit note for a finalized invoice",
        description=(
            "Credits invoice lines (by amount or quantity, their taxes in proportion) or custom lines, or an "
            "amount. The credit first reduces what is left to pay; the rest gives back what was paid, split "
            "exactly between refundAmount (refunded at Stripe), creditAmount (the customer's balance) and "
            "outOfBandAmount. Numbered after the invoice (INV-0001-CN-01)."
        ),
        status_code=201,
    )
    async def create(
        self,
        data: CreditNoteCreate,
        caller: Caller,
        bus: CommandBus,
        sessions: async_sessionmaker[AsyncSession],
        gateways: StripeGatewayPool,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[CreditNoteDetails]:
        command = CreditNoteIssue(**data.model_dump(exclude_unset=True))
        if not data.refundAmount:  # nothing to ask Stripe: the command checks and issues it
            return await run_command(bus, caller, command, idempotency_key, created=True)
        earlier = await bus.earlier(caller.organization_id, idempotency_key)
        replayed = replayed_write(
            earlier, CreditNoteIssue.command_type, idempotency_key, lambda first: service.answers(data, first)
        )
        if replayed is not None:  # refunded and issued: its answer, without a second refund
            return replayed
        # every rule checked in a transaction of its own that ends before Stripe is called
        async with tenant_session(sessions, caller.organization_id) as session:
            plan = await service.plan_credit_note(session, data, for_update=False)
            gateway = await organization_gateway(sessions, gateways, session)
        payment = plan.payment
        assert payment is not None and payment.gateway_payment_intent_id is not None  # refundAmount: checked
        try:
            made = await gateway.refund(
                payment.gateway_payment_intent_id,
                data.refundAmount,
                gateway_key(caller, idempotency_key, "credit_note_refund"),
            )
        except GatewayError as error:
            raise ours(error) from None
        # a refund Stripe did not make is refused by the command (billing.credit_notes.service)
        command.refund = GatewayRefund(
            paymentId=payment.id,
            amount=made.amount,
            status=made.status or "pending",
            gatewayRefundId=made.id,
            failureReason=made.failure_reason,
        )
        return await run_command(bus, caller, command, idempotency_key, created=True, earlier=earlier)

    @get("/{credit_note_id:str}", summary="Retrieve a credit note with its lines")
    async def retrieve(self, credit_note_id: str, db: AsyncSession) -> CreditNoteDetails:
        note = await repository.get_credit_note(db, credit_note_id)
        if note is None:
            raise ResourceMissing("credit_note", credit_note_id)
        return note

    @get(
        "/{credit_note_id:str}/pdf",
        summary="The credit note as a PDF",
        description="Amounts and dates in the customer's first preferred locale the PDF can print (else en-US).",
        media_type="application/pdf",
    )
    async def pdf(self, credit_note_id: str, db: AsyncSession) -> Response[bytes]:
        return await pdf_response(await credit_note_document(db, credit_note_id), "credit_note", credit_note_id)

    @get("/", summary="List credit notes, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        customer: CustomerFilter = None,
        invoice: Annotated[str | None, Parameter(query="invoice", max_length=64, required=False)] = None,
    ) -> dict[str, Any]:
        page = await repository.list_credit_notes(db, page_request, invoice=invoice, customer=customer)
        return list_response(page, CreditNoteDetails, self.path)

    @post(
        "/{credit_note_id:str}/void",
        summary="Void a credit note that refunded nothing (its effect undone)",
        status_code=200,
    )
    async def void(
        self, credit_note_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[CreditNoteDetails]:
        return await run_command(bus, caller, CreditNoteVoid(id=credit_note_id), idempotency_key)
