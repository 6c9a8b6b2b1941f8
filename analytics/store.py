"""One store interface over ClickHouse: a server (HTTP) or chDB (embedded), same SQL.

URLs (Settings.clickhouse_url, env CLICKHOUSE_URL):
- `clickhouse://user:pass@host:8123/db` (or `clickhouses://` for TLS): a ClickHouse server,
  through `clickhouse_connect.get_client(host=..., port=..., ...)`. The database is created
  if missing.
- `chdb:///abs/path`: chDB, the ClickHouse engine in this process, data under `/abs/path`,
  through `clickhouse_connect.get_client(dsn="chdb:///abs/path")`. clickhouse-connect 1.12
  ships this backend (`clickhouse_connect.driver._chdbclient`) and it works with chdb 4.4
  here: parameters, Decimal(38, 12), Map, tuples, inserts (it writes a Native file and runs
  `INSERT ... FROM INFILE`). `chdb://memory` (or `chdb://:memory:`) is an in-memory engine.

chDB constraints (checked with chdb 4.4): one engine per process, at ONE path. Opening a
second path in the same process fails ("EmbeddedServer already initialized with path ...");
two processes cannot share a directory either. Any number of client handles may share the
one engine. Hence `get_store(url)` is a per-URL process singleton: every caller in the
process (API, analytics consumer, replay, tests) gets the same `AnalyticsStore`, and
asking for a second chdb path raises `StoreError`. Once a chdb store is `close()`d (all its
handles closed), the process may open another path. A server URL has no such limit, but is
a singleton too (one connection pool per process).

Concurrency: a store keeps a small pool of clients (each chDB handle / HTTP session is used
by one thread at a time); calls from several threads run in parallel up to the pool size.
chDB releases the GIL while a query runs, so `asyncio.to_thread` (the `a*` methods) keeps
an event loop responsive during inserts and queries.

Values are never formatted into SQL: queries take `{name:Type}` placeholders and a
`parameters` dict (ClickHouse server-side binding, on both backends).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 4


class StoreError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """A parsed store URL. `kind` is "chdb" or "clickhouse"."""

    kind: str
    url: str  # normalized, used as the singleton key
    path: str | None = None  # chdb: absolute data directory, or None for in-memory
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    database: str = "default"
    secure: bool = False
    settings: tuple[tuple[str, str], ...] = ()


def parse_store_url(url: str) -> StoreTarget:
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "chdb":
        if parsed.netloc in ("memory", ":memory:") or (not parsed.netloc and parsed.path in ("", ":memory:")):
            return StoreTarget(kind="chdb", url="chdb://memory", path=None)
        if parsed.netloc:
            raise StoreError(f"chdb URL must be chdb:///absolute/path or chdb://memory, got {url!r}")
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise StoreError(f"chdb URL needs an absolute path (chdb:///abs/path), got {url!r}")
        real = str(Path(path).resolve())
        return StoreTarget(kind="chdb", url=f"chdb://{real}", path=real)
    if scheme in ("clickhouse", "clickhouses", "http", "https"):
        secure = scheme in ("clickhouses", "https")
        host = parsed.hostname or "localhost"
        port = parsed.port or (8443 if secure else 8123)
        database = unquote(parsed.path.lstrip("/")) or "default"
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        username = unquote(parsed.username) if parsed.username else "default"
        password = unquote(parsed.password) if parsed.password else ""
        norm = f"{'clickhouses' if secure else 'clickhouse'}://{username}@{host}:{port}/{database}"
        return StoreTarget(
            kind="clickhouse",
            url=norm,
            host=host,
            port=port,
            username=username,
            password=password,
            database=database,
            secure=secure,
            settings=tuple(sorted(query.items())),
        )
    raise StoreError(f"unsupported ClickHouse URL scheme {scheme!r} (use clickhouse://... or chdb:///path)")


class AnalyticsStore:
    """The analytics store. Get it with `get_store(url)`, not by constructing it."""

    def __init__(self, target: StoreTarget, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.target = target
        self._pool: queue.LifoQueue[Client] = queue.LifoQueue()
        self._all: list[Client] = []
        self._lock = threading.Lock()
        self._pool_size = max(1, pool_size)
        self._closed = False
        if target.kind == "clickhouse" and target.database != "default":
            bootstrap = self._connect(database="default")
            try:
                bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{target.database.replace('`', '')}`")
            finally:
                bootstrap.close()
        # open one client now so a bad URL / locked chdb directory fails here, not later
        self._pool.put(self._new_client())

    # -- connection pool -------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.target.kind

    @property
    def url(self) -> str:
        return self.target.url

    def _connect(self, database: str | None = None) -> Client:
        t = self.target
        if t.kind == "chdb":
            dsn = f"chdb://{t.path}" if t.path else "chdb://memory"
            return clickhouse_connect.get_client(dsn=dsn, tz_mode="aware")
        return clickhouse_connect.get_client(
            host=t.host,
            port=t.port,
            username=t.username,
            password=t.password or "",
            database=database or t.database,
            secure=t.secure,
            autogenerate_session_id=False,
            tz_mode="aware",
            settings=dict(t.settings),
        )

    def _new_client(self) -> Client:
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            try:
                client = self._connect()
            except Exception as exc:
                if self.target.kind == "chdb":
                    raise StoreError(
                        f"cannot open chDB at {self.target.path or 'memory'}: {exc}. chDB allows one path per "
                        "process and one process per directory; use get_store() to share it."
                    ) from exc
                raise
            self._all.append(client)
            return client

    @contextmanager
    def client(self) -> Iterator[Client]:
        """Borrow a client for a few calls on one thread."""
        try:
            client = self._pool.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = len(self._all) < self._pool_size
            client = self._new_client() if grow else self._pool.get()
        try:
            yield client
        finally:
            self._pool.put(client)

    # -- SQL ---------------------------------------------------------------------------
    def command(
        self, sql: str, parameters: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None
    ) -> Any:
        """DDL / statements without a result set (or a single value)."""
        with self.client() as c:
            return c.command(
                sql, parameters=dict(parameters) if parameters else None, settings=dict(settings or {}) or None
            )

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows as tuples. DateTime values come back timezone-aware (UTC)."""
        with self.client() as c:
            result = c.query(
                sql, parameters=dict(parameters) if parameters else None, settings=dict(settings or {}) or None
            )
            return [tuple(_aware(v) for v in row) for row in result.result_rows]

    def query_dicts(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.client() as c:
            result = c.query(sql, parameters=dict(parameters) if parameters else None)
            names = result.column_names
            return [{n: _aware(v) for n, v in zip(names, row, strict=True)} for row in result.result_rows]

    def query_np(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Result as a numpy array (numeric columns; used for bulk key loads)."""
        with self.client() as c:
            return c.query_np(sql, parameters=dict(parameters) if parameters else None)

    def insert(
        self,
        table: str,
        data: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        *,
        column_oriented: bool = False,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        """Insert a batch (rows, or columns with column_oriented=True) in one INSERT.
        Returns the number of rows sent."""
        n = (len(data[0]) if data else 0) if column_oriented else len(data)
        if n == 0:
            return 0
        with self.client() as c:
            c.insert(
                table,
                data,
                column_names=list(column_names),
                column_oriented=column_oriented,
                settings=dict(settings or {}) or None,
            )
        return n

    def insert_raw(self, table: str, column_names: Sequence[str], body: bytes, fmt: str = "JSONCompactEachRow") -> None:
        """Insert pre-encoded rows (e.g. JSONCompactEachRow) in one INSERT; ClickHouse parses
        them (in C++, outside the GIL)."""
        if not body:
            return
        with self.client() as c:
            c.raw_insert(table, list(column_names), body, fmt=fmt)

    # -- async wrappers (run in a worker thread: the engine releases the GIL) ---------------
    async def acommand(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        return await asyncio.to_thread(self.command, sql, parameters)

    async def aquery(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self.query, sql, parameters)

    async def ainsert(self, table: str, data: Sequence[Sequence[Any]], column_names: Sequence[str], **kw: Any) -> int:
        return await asyncio.to_thread(lambda: self.insert(table, data, column_names, **kw))

    def ping(self) -> bool:
        try:
            answer: object = self.query("SELECT 1")[0][0]
            return answer == 1
        except Exception:
            return False

    def close(self) -> None:
        """Close every client and forget the singleton (a later get_store reopens)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients, self._all = self._all, []
        for c in clients:
            try:
                c.close()
            except Exception:  # pragma: no cover - best effort
                log.debug("error closing ClickHouse client", exc_info=True)
        with _registry_lock:
            if _registry.get(self.target.url) is self:
                del _registry[self.target.url]

    def __repr__(self) -> str:
        return f"AnalyticsStore({self.target.url!r})"


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, tuple):
        return tuple(_aware(v) for v in value)
    return value


_registry: dict[str, AnalyticsStore] = {}
_registry_lock = threading.Lock()


def get_store(url: str | None = None, *, pool_size: int = DEFAULT_POOL_SIZE) -> AnalyticsStore:
    """The process-wide store for `url` (default: Settings.clickhouse_url).

    Same URL -> same object. A chdb URL for a different path than an open chdb store raises
    StoreError (chDB hosts one engine path per process).
    """
    if url is None:
        from contracts.settings import get_settings

        url = get_settings().clickhouse_url
    target = parse_store_url(url)
    with _registry_lock:
        existing = _registry.get(target.url)
        if existing is not None:
            return existing
        if target.kind == "chdb":
            other = next((s for s in _registry.values() if s.kind == "chdb"), None)
            if other is not None:
                raise StoreError(
                    f"chDB is already open in this process at {other.target.url}; cannot also open {target.url} "
                    "(one chDB engine path per process)"
                )
            if target.path:
                Path(target.path).mkdir(parents=True, exist_ok=True)
        store = AnalyticsStore(target, pool_size=pool_size)
        _registry[target.url] = store
        return store
