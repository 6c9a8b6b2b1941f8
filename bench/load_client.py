"""A lean HTTP/1.1 load generator: keep-alive connections over asyncio streams.

The benchmarks share two cores with the API, the consumer, Kafka and Postgres. httpx spent
about 1.7 ms of CPU per request there (60% of a core at 350 requests/s), more than the API
itself, so the measurement was mostly of the client. This one writes a request and reads
a Content-Length (or chunked) response with nothing else in between: 0.07 ms per request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    """The server's answer was not HTTP/1.1 this client can read."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """(status, body, whether the server keeps the connection open)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            raise HttpError(f"a response without Content-Length or chunked encoding: {lines[0]}")
        return status, body, headers.get("connection", "").lower() != "close"

    async def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


class LoadClient:
    """POSTs JSON to one server, reusing idle connections; `async with` closes them."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http://host:port URL is needed, not {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        fixed = {"Host": f"{self._host}:{self._port}", "Content-Type": "application/json", **(headers or {})}
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._idle: list[_Connection] = []

    async def __aenter__(self) -> LoadClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def post(self, path: str, document: Any) -> tuple[int, bytes]:
        body = json.dumps(document, separators=(",", ":")).encode()
        request = (
            f"POST {path} HTTP/1.1\r\n{self._fixed_headers}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        )
        while self._idle:
            # the server may have closed an idle connection (uvicorn does after 5 s): it
            # answers nothing at all, and the request goes again on a new connection
            connection = self._idle.pop()
            try:
                return await self._exchange(connection, request)
            except (asyncio.IncompleteReadError, ConnectionError) as error:
                if isinstance(error, asyncio.IncompleteReadError) and error.partial:
                    raise
        return await self._exchange(_Connection(*await asyncio.open_connection(self._host, self._port)), request)

    async def _exchange(self, connection: _Connection, request: bytes) -> tuple[int, bytes]:
        try:
            status, answer, keep = await connection.exchange(request)
        except BaseException:
            connection.close()
            raise
        if keep:
            self._idle.append(connection)
        else:
            connection.close()
        return status, answer
