"""/v1/test-clocks: Stripe's test clocks, a frozen time for the customers created on one
(`POST /v1/customers` with `testClock`), advanced on request. Test mode only: while the
organization has no Stripe account connected, or a test key."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, delete, get, post
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import list_response, run_command
from billing.clocks.repository import get_test_clock, list_test_clocks
from billing.db.pagination import PageRequest
from billing.errors import InvalidRequest, ResourceMissing
from billing.organizations import stripe_account
from billing.secrets.encryption import Keyring
from contracts.resources import TestClock
from contracts.test_clocks import TestClockAdvance, TestClockAdvanceRequest, TestClockCreate, TestClockDelete


async def _require_test_mode(sessions: async_sessionmaker[AsyncSession], keyring: Keyring, caller: Caller) -> None:
    organization = await stripe_account.organization_with_secrets(sessions, caller.organization_id)
    if stripe_account.account_view(organization, keyring).mode == "live":
        raise InvalidRequest(
            "Test clocks exist only in test mode, and this organization's Stripe account is connected with a live "
            "key: use an organization with a test key (sk_test_...) or none.",
            code="test_mode_only",
        )


class TestClockController(Controller):
    path = "/v1/test-clocks"
    tags = ["test clocks"]

    @post("/", summary="Create a test clock at a frozen time (test mode only)", status_code=201)
    async def create(
        self,
        data: TestClockCreate,
        caller: Caller,
        bus: CommandBus,
        sessions: async_sessionmaker[AsyncSession],
        keyring: Keyring,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TestClock]:
        await _require_test_mode(sessions, keyring, caller)
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/{test_clock_id:str}", summary="Retrieve a test clock")
    async def retrieve(self, test_clock_id: str, db: AsyncSession) -> TestClock:
        test_clock = await get_test_clock(db, test_clock_id)
        if test_clock is None:
            raise ResourceMissing("test_clock", test_clock_id)
        return TestClock.model_validate(test_clock)

    @get("/", summary="List test clocks, newest first")
    async def index(self, db: AsyncSession, page_request: PageRequest) -> dict[str, Any]:
        return list_response(await list_test_clocks(db, page_request), TestClock, self.path)

    @post(
        "/{test_clock_id:str}/advance",
        summary="Advance a test clock (forward only): advancing, then ready once its customers' work is done",
        status_code=200,
    )
    async def advance(
        self,
        test_clock_id: str,
        data: TestClockAdvanceRequest,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TestClock]:
        command = TestClockAdvance(id=test_clock_id, frozenTime=data.frozenTime)
        return await run_command(bus, caller, command, idempotency_key)

    @delete("/{test_clock_id:str}", summary="Delete a test clock with its customers and their objects", status_code=200)
    async def remove(
        self, test_clock_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[TestClock]:
        return await run_command(bus, caller, TestClockDelete(id=test_clock_id), idempotency_key)
