"""/v1/subscription-schedules: create, retrieve, list, update, release, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import CustomerFilter, IdempotencyKey
from api.responses import list_response, run_command
from billing.db.pagination import PageRequest
from billing.errors import ResourceMissing
from billing.subscription_schedules.repository import get_schedule, list_schedules
from contracts.enums import SubscriptionScheduleStatus
from contracts.subscription_schedules import (
    SubscriptionScheduleCancel,
    SubscriptionScheduleCreate,
    SubscriptionScheduleDetails,
    SubscriptionScheduleRelease,
    SubscriptionScheduleUpdate,
    SubscriptionScheduleUpdateCommand,
)


class SubscriptionScheduleController(Controller):
    path = "/v1/subscription-schedules"
    tags = ["subscription schedules"]

    @post(
        "/",
        summary="Create a subscription schedule",
        description=(
            "A customer and phases (each with its items, and an endDate or iterations), starting at startDate "
            "(now: the subscription is created at once), or fromSubscription: one phase wrapping that "
            "subscription's items to its period's end. The phases then follow one another at their "
            "boundaries; after the last, endBehavior releases the subscription or cancels it."
        ),
        status_code=201,
    )
    async def create(
        self, data: SubscriptionScheduleCreate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[SubscriptionScheduleDetails]:
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/{subscription_schedule_id:str}", summary="Retrieve a subscription schedule with its phases")
    async def retrieve(self, subscription_schedule_id: str, db: AsyncSession) -> SubscriptionScheduleDetails:
        schedule = await get_schedule(db, subscription_schedule_id)
        if schedule is None:
            raise ResourceMissing("subscription_schedule", subscription_schedule_id)
        return schedule

    @get("/", summary="List subscription schedules, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        customer: CustomerFilter = None,
        status: Annotated[SubscriptionScheduleStatus | None, Parameter(query="status", required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_schedules(db, page_request, customer=customer, status=status)
        return list_response(page, SubscriptionScheduleDetails, self.path)

    @post(
        "/{subscription_schedule_id:str}",
        summary="Update a subscription schedule (absent fields unchanged)",
        description=(
            "phases replaces the phases: the ones that ended must be sent as they are and the current one keeps "
            "its startDate; a change to the current phase's items applies to the subscription now."
        ),
        status_code=200,
    )
    async def update(
        self,
        subscription_schedule_id: str,
        data: SubscriptionScheduleUpdate,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SubscriptionScheduleDetails]:
        command = SubscriptionScheduleUpdateCommand(
            id=subscription_schedule_id, changes=data.model_dump(mode="json", exclude_unset=True)
        )
        return await run_command(bus, caller, command, idempotency_key)

    @post(
        "/{subscription_schedule_id:str}/release",
        summary="Release a subscription schedule: its subscription goes on as it is",
        status_code=200,
    )
    async def release(
        self, subscription_schedule_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[SubscriptionScheduleDetails]:
        return await run_command(bus, caller, SubscriptionScheduleRelease(id=subscription_schedule_id), idempotency_key)

    @post(
        "/{subscription_schedule_id:str}/cancel",
        summary="Cancel a subscription schedule and its subscription now",
        status_code=200,
    )
    async def cancel(
        self, subscription_schedule_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[SubscriptionScheduleDetails]:
        return await run_command(bus, caller, SubscriptionScheduleCancel(id=subscription_schedule_id), idempotency_key)
