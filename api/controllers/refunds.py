"""/v1/refunds: refund a paid invoice's payment at Stripe, then record Stripe's answer."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from api.bus import CommandBus
from api.controllers.payment_methods import gateway_key, organization_gateway, ours
from api.params import IdempotencyKey
from api.responses import list_response, replayed_write, run_command
from billing.db.pagination import PageRequest
from billing.db.sessions import tenant_session
from billing.errors import ResourceMissing
from billing.payments import refunds
from billing.payments.gateway import GatewayError
from billing.payments.stripe_gateway import StripeGatewayPool
from contracts.refunds import RefundCreate, RefundRecord
from contracts.resources import Refund


class RefundController(Controller):
    path = "/v1/refunds"
    tags = ["invoices"]

    @post(
        "/",
        summary="Refund a payment, all that is left of it or part",
        description=(
            "Names a paid invoice (its succeeded payment) or a payment. Stripe is called first, outside any "
            "transaction, with an idempotency key from the request's Idempotency-Key; its answer is then "
            "recorded. A retry with the same key answers the first refund."
        ),
        status_code=201,
    )
    async def create(
        self,
        data: RefundCreate,
        caller: Caller,
        bus: CommandBus,
        sessions: async_sessionmaker[AsyncSession],
        gateways: StripeGatewayPool,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Refund]:
        earlier = await bus.earlier(caller.organization_id, idempotency_key)
        replayed = replayed_write(
            earlier, RefundRecord.command_type, idempotency_key, lambda first: refunds.asks_for(data, first)
        )
        if replayed is not None:
            return replayed
        # what to refund, read in a transaction of its own that ends before Stripe is called
        async with tenant_session(sessions, caller.organization_id) as session:
            payment, amount = await refunds.payment_to_refund(session, data)
            gateway = await organization_gateway(sessions, gateways, session)
        assert payment.gateway_payment_intent_id is not None  # a succeeded payment has one (checked)
        try:
            made = await gateway.refund(
                payment.gateway_payment_intent_id, amount, gateway_key(caller, idempotency_key, "refund")
            )
        except GatewayError as error:
            raise ours(error) from None
        command = RefundRecord(
            paymentId=payment.id,
            amount=made.amount,
            status=made.status or "pending",
            gatewayRefundId=made.id,
            failureReason=made.failure_reason,
            reason=data.reason,
            metadata=data.metadata,
        )
        return await run_command(bus, caller, command, idempotency_key, created=True, earlier=earlier)

    @get("/{refund_id:str}", summary="Retrieve a refund")
    async def retrieve(self, refund_id: str, db: AsyncSession) -> Refund:
        refund = await refunds.get_refund(db, refund_id)
        if refund is None:
            raise ResourceMissing("refund", refund_id)
        return Refund.model_validate(refund)

    @get("/", summary="List refunds, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        payment: Annotated[str | None, Parameter(query="payment", max_length=64, required=False)] = None,
        invoice: Annotated[str | None, Parameter(query="invoice", max_length=64, required=False)] = None,
    ) -> dict[str, Any]:
        page = await refunds.list_refunds(db, page_request, payment=payment, invoice=invoice)
        return list_response(page, Refund, self.path)
