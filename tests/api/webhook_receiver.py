"""An organization's webhook endpoint for tests: a real HTTP server (uvicorn, in the test's
event loop) that keeps every request it receives, per path, and answers each path with the
status a test sets (200 unless told)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.api.conftest import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    # time.monotonic() when it arrived
    at: float


@dataclass
class WebhookReceiver:
    base_url: str = ""
    received: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    status: dict[str, int] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        self.received[scope["path"]].append(Received(headers, body, time.monotonic()))
        self.arrived.set()
        status = self.status.get(scope["path"], 200)
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status < 300 else b"not today"})

    async def wait_for(self, path: str, count: int, timeout: float = 20) -> list[Received]:
        """The first `count` requests to `path`, once that many arrived."""
        async with asyncio.timeout(timeout):
            while len(self.received[path]) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received[path][:count]


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(receiver.app, host="127.0.0.1", port=port, log_level="warning", interface="asgi3")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.02)
    receiver.base_url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
