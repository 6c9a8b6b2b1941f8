"""The real API and the real command consumer, in this process, over the stack's Kafka
(topics under this run's prefix) and the test database."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from api.app import create_app
from billing.models import ProcessedCommand
from billing.organizations.service import create_organization
from consumers.app import run_command_consumer
from consumers.notifications import run_notifications
from contracts.api_keys import RecordApiKeyUseCommand
from contracts.settings import Settings, get_settings
from producers.topics import ensure_topics
from tests.conftest import START_HINT


@dataclass(frozen=True)
class Tenant:
    organization_id: str
    api_key_id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@pytest.fixture(scope="session")
async def kafka_topics() -> dict[str, int]:
    settings = get_settings()
    try:
        return await ensure_topics(settings.kafka_bootstrap_servers, timeout=20)
    except Exception as error:  # any failure here means the broker is not usable
        pytest.fail(
            f"Kafka is not reachable at {settings.kafka_bootstrap_servers} ({error!r}): {START_HINT}", pytrace=False
        )


@pytest.fixture(scope="session")
async def command_consumer(database_url: str, kafka_topics: dict[str, int]) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_command_consumer(stop, ready=ready))
    await asyncio.wait_for(ready.wait(), timeout=60)
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=30)


# three days of webhook retries in 2.6 s, five days of failing before an endpoint is disabled in 4.3 s
WEBHOOK_TIME_SCALE = 0.00001


@asynccontextmanager
async def running(
    runner: Callable[[asyncio.Event, Settings, asyncio.Event], Awaitable[None]], settings: Settings
) -> AsyncIterator[None]:
    """A consumer's `run_...(stop, settings, ready)` as `billing consume` runs it, from
    ready until stopped."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(runner(stop, settings, ready))
    await asyncio.wait_for(ready.wait(), timeout=60)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def notifications_running() -> AbstractAsyncContextManager[None]:
    """The notifications consumer (the event recorder and the webhook sender), with webhook
    time compressed. Its sender leases due deliveries of every organization, so it runs
    only where a test wants it."""
    settings = dataclasses.replace(get_settings(), webhook_time_scale=WEBHOOK_TIME_SCALE, webhook_poll_seconds=0.05)
    return running(run_notifications, settings)


@pytest.fixture(scope="module")
async def notifications(command_consumer: None) -> AsyncIterator[None]:
    async with notifications_running():
        yield


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API served by uvicorn on a free port, in this event loop (beside the consumer)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def api(command_consumer: None, stripe_api_base: str) -> AsyncIterator[httpx.AsyncClient]:
    # stripe_api_base: the payment endpoints call stripe-mock; its absence fails here with the fix
    async with serve(get_settings()) as client:
        yield client


async def new_tenant(session_factory, name: str) -> Tenant:  # type: ignore[no-untyped-def]
    async with session_factory() as session, session.begin():
        organization, key = await create_organization(session, name)
    return Tenant(organization.id, key.id, key.secret)


@pytest.fixture(scope="session")
async def tenant(session_factory) -> Tenant:  # type: ignore[no-untyped-def]
    return await new_tenant(session_factory, "Tenant A")


@pytest.fixture(scope="session")
async def other_tenant(session_factory) -> Tenant:  # type: ignore[no-untyped-def]
    return await new_tenant(session_factory, "Tenant B")


class TenantClient:
    """The API as one organization: its key goes with every request."""

    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant

    async def request(self, method: str, url: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {**self.tenant.headers, **kwargs.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, **kwargs):  # type: ignore[no-untyped-def]
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs):  # type: ignore[no-untyped-def]
        return await self.request("POST", url, **kwargs)

    async def patch(self, url: str, **kwargs):  # type: ignore[no-untyped-def]
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs):  # type: ignore[no-untyped-def]
        return await self.request("DELETE", url, **kwargs)


@pytest.fixture
def api_client(api: httpx.AsyncClient, tenant: Tenant) -> TenantClient:
    return TenantClient(api, tenant)


@pytest.fixture
def other_api_client(api: httpx.AsyncClient, other_tenant: Tenant) -> TenantClient:
    return TenantClient(api, other_tenant)


def assert_error(
    response: httpx.Response, status: int, code: str, param: str | None, type_: str = "invalid_request_error"
) -> dict[str, Any]:
    """The response is Stripe's error shape, exactly: {"error": {type, code, message, param}}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"type", "code", "message", "param"}, body
    assert (body["error"]["type"], body["error"]["code"], body["error"]["param"]) == (type_, code, param), body
    assert body["error"]["message"]
    return body["error"]


async def commands_applied(session_factory, organization_id: str) -> int:  # type: ignore[no-untyped-def]
    """How many commands the organization's requests have applied. The API's own key-use
    report (one a minute per process, whenever its timer fires) is not counted: a test
    that asserts "nothing was written" must not fail because the minute ticked."""
    async with session_factory() as session:
        return await session.scalar(
            select(func.count())
            .select_from(ProcessedCommand)
            .where(
                ProcessedCommand.organization_id == organization_id,
                ProcessedCommand.type != RecordApiKeyUseCommand.command_type,
            )
        )
