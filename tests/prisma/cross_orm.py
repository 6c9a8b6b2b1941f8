"""The Prisma side of the cross-ORM tests: prisma/harness/server.mts (the generated Prisma
Client, run by tsx) as a subprocess, called like the client itself.

    await prisma.call("customer", "findUnique", {"where": {"id": "cus_1"}})
    await prisma.call("customer", "count", {}, organization="org_a")  # the tenant-scoped client
    await prisma.raw("SELECT id FROM customers", organization="org_a")

Values JSON cannot carry travel tagged (the server's header says how): Decimal, datetime
and integers beyond 32 bits go out as {"$decimal"}, {"$date"}, {"$bigint"} and come back as
Decimal, aware datetime and int; `DB_NULL`, `JSON_NULL` and `ANY_NULL` are Prisma's Json
null markers. Json field values are passed as they are (no tags inside them).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime
from decimal import Decimal
from typing import Any

from contracts.settings import PROJECT_ROOT

SERVER = PROJECT_ROOT / "prisma" / "harness" / "server.mts"
TSX = PROJECT_ROOT / "node_modules" / ".bin" / "tsx"
INT32 = range(-(2**31), 2**31)

DB_NULL = {"$null": "DbNull"}
JSON_NULL = {"$null": "JsonNull"}
ANY_NULL = {"$null": "AnyNull"}


class PrismaError(Exception):
    """An error the Prisma Client raised, with its name and code (P2025, ...)."""

    def __init__(self, name: str, code: str | None, message: str) -> None:
        super().__init__(f"{name} {code or ''}: {message}")
        self.name = name
        self.code = code


def encode(value: object) -> object:
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return value if value in INT32 else {"$bigint": str(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot go to Prisma: {value!r}")
        return {"$date": value.isoformat()}
    if isinstance(value, dict):
        return {key: encode(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [encode(inner) for inner in value]
    raise TypeError(f"no Prisma encoding for {value!r}")


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(inner) for inner in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == "$decimal":
            return Decimal(inner)
        if key == "$bigint":
            return int(inner)
        if key == "$date":
            return datetime.fromisoformat(inner)
    return {key: decode(inner) for key, inner in value.items()}


class PrismaHarness:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.next_id = 0
        self.lock = asyncio.Lock()

    @classmethod
    async def start(cls, database_url: str) -> PrismaHarness:
        process = await asyncio.create_subprocess_exec(
            str(TSX),
            str(SERVER),
            cwd=PROJECT_ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        harness = cls(process)
        ready = await harness._read_line(timeout=60)
        if ready != {"ready": True}:
            raise RuntimeError(f"the Prisma harness did not start: {ready!r}")
        return harness

    async def _read_line(self, timeout: float) -> Any:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            assert self.process.stderr is not None
            stderr = (await self.process.stderr.read()).decode()
            raise RuntimeError(f"the Prisma harness exited ({self.process.returncode}): {stderr}")
        return json.loads(line)

    async def _request(self, request: dict[str, object]) -> Any:
        async with self.lock:
            self.next_id += 1
            request = {"id": self.next_id, **request}
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            await self.process.stdin.drain()
            reply = await self._read_line(timeout=30)
        assert reply["id"] == request["id"], (reply, request)
        if not reply["ok"]:
            raise PrismaError(**reply["error"])
        return decode(reply["result"])

    async def call(self, model: str, method: str, args: dict[str, object], organization: str | None = None) -> Any:
        """`prisma.<model>.<method>(args)`, on the client scoped to `organization` if given."""
        request: dict[str, object] = {"model": model, "method": method, "args": encode(args)}
        if organization is not None:
            request["organization"] = organization
        return await self._request(request)

    async def raw(self, sql: str, *params: object, organization: str | None = None) -> Any:
        """`prisma.$queryRawUnsafe(sql, ...params)`, on the scoped client if given."""
        request: dict[str, object] = {"raw": sql, "params": [encode(param) for param in params]}
        if organization is not None:
            request["organization"] = organization
        return await self._request(request)

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
