"""/v1/subscriptions: create, retrieve, list, search, update, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from api.bus import CommandBus
from api.first_payment import settled_or_refused
from api.params import CustomerFilter, IdempotencyKey, Limit, SearchPage, SearchQuery
from api.responses import list_response, run_command, search_response
from billing.db.pagination import CreatedRange, PageRequest
from billing.db.search import parse_search_query
from billing.errors import ResourceMissing
from billing.subscriptions.repository import (
    SEARCHABLE_FIELDS,
    get_subscription,
    list_subscriptions,
    search_subscriptions,
)
from contracts.enums import SubscriptionStatus
from contracts.settings import Settings
from contracts.subscriptions import (
    CancellationFeedback,
    SubscriptionCancel,
    SubscriptionCreate,
    SubscriptionDetails,
    SubscriptionResume,
    SubscriptionUpdate,
    SubscriptionUpdateCommand,
)

# how many command timeouts error_if_incomplete waits for the first payment's outcome
FIRST_PAYMENT_WAIT_COMMANDS = 4


class SubscriptionController(Controller):
    path = "/v1/subscriptions"
    tags = ["subscriptions"]

    @post(
        "/",
        summary="Create a subscription and its first invoice",
        description=(
            "The first invoice is created and finalized at once. With a trial it is for zero and the "
            "subscription is trialing; with collectionMethod send_invoice the subscription is active and "
            "the invoice open until its due date; with charge_automatically and an amount due the "
            "subscription is incomplete until the invoice is paid (paymentBehavior: charged now, left for "
            "POST /v1/invoices/{id}/pay, or charged now and refused with a 402 unless paid)."
        ),
        status_code=201,
    )
    async def create(
        self,
        data: SubscriptionCreate,
        caller: Caller,
        bus: CommandBus,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubscriptionDetails]:
        response = await run_command(bus, caller, data, idempotency_key, created=True)
        if data.paymentBehavior != "error_if_incomplete" or response.status_code != 201:
            return response
        # the charge is the payment worker's, after the command: a few command round trips
        wait = FIRST_PAYMENT_WAIT_COMMANDS * settings.command_timeout_seconds
        return await settled_or_refused(response, caller, bus, sessions, wait)

    @get("/search", summary="Search subscriptions: status:'active' AND metadata['plan']:'pro'")
    async def search(
        self,
        db: AsyncSession,
        search_query: SearchQuery,
        limit: Limit = 10,
        page: SearchPage = None,
    ) -> dict[str, Any]:
        parsed = parse_search_query(search_query, SEARCHABLE_FIELDS)
        result = await search_subscriptions(db, parsed, PageRequest.search(limit, page))
        return search_response(result, SubscriptionDetails, f"{self.path}/search")

    @get("/{subscription_id:str}", summary="Retrieve a subscription with its items")
    async def retrieve(self, subscription_id: str, db: AsyncSession) -> SubscriptionDetails:
        subscription = await get_subscription(db, subscription_id)
        if subscription is None:
            raise ResourceMissing("subscription", subscription_id)
        return subscription

    @get("/", summary="List subscriptions, newest first (canceled ones only when asked by status)")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        created: CreatedRange,
        customer: CustomerFilter = None,
        price: Annotated[str | None, Parameter(query="price", max_length=64, required=False)] = None,
        status: Annotated[SubscriptionStatus | None, Parameter(query="status", required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_subscriptions(
            db, page_request, customer=customer, price=price, status=status, created=created
        )
        return list_response(page, SubscriptionDetails, self.path)

    @patch(
        "/{subscription_id:str}",
        summary="Update a subscription (absent fields unchanged): metadata, cancelAtPeriodEnd, defaultPaymentMethod",
    )
    async def update(
        self,
        subscription_id: str,
        data: SubscriptionUpdate,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubscriptionDetails]:
        command = SubscriptionUpdateCommand(
            id=subscription_id, changes=data.model_dump(mode="json", exclude_unset=True)
        )
        return await run_command(bus, caller, command, idempotency_key)

    @post(
        "/{subscription_id:str}/resume",
        summary="Resume a paused subscription",
        description=(
            "A new cycle from now, its first period invoiced and charged; with charge_automatically the "
            "customer needs a payment method first."
        ),
        status_code=200,
    )
    async def resume(
        self, subscription_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[SubscriptionDetails]:
        return await run_command(bus, caller, SubscriptionResume(id=subscription_id), idempotency_key)

    @delete(
        "/{subscription_id:str}",
        summary="Cancel a subscription now",
        description=(
            "prorate=true credits the unused time of the current period on a final invoice (the credit "
            "goes to the customer's balance); an incomplete subscription ends incomplete_expired and its "
            "open invoice is voided. To cancel at the period's end instead, PATCH cancelAtPeriodEnd."
        ),
        status_code=200,
    )
    async def cancel(
        self,
        subscription_id: str,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
        invoice_now: Annotated[bool, Parameter(query="invoiceNow")] = False,
        prorate: Annotated[bool, Parameter(query="prorate")] = False,
        feedback: Annotated[CancellationFeedback | None, Parameter(query="feedback", required=False)] = None,
    ) -> Response[SubscriptionDetails]:
        command = SubscriptionCancel(id=subscription_id, invoiceNow=invoice_now, prorate=prorate, feedback=feedback)
        return await run_command(bus, caller, command, idempotency_key)
