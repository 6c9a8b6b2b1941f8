"""ClickHouse for the local stack: chDB, the ClickHouse engine in-process.

Nothing to start: `up` makes sure the directory of CLICKHOUSE_URL (chdb://<path>) exists
and that chdb imports. Only one process may open a chDB directory at a time; `status`
says which process has it open (ClickHouse keeps `<path>/status` with its PID while open).
A CLICKHOUSE_URL of http(s)://... is a server: we only check its /ping.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from contracts.settings import Settings

from ._proc import StackError, pid_alive
from .base import ServiceStatus, mask_url

NAME = "clickhouse"
SCHEME = "chdb://"


def embedded_path(settings: Settings) -> Path | None:
    url = settings.clickhouse_url
    if url.startswith(SCHEME):
        return Path(url[len(SCHEME) :])
    return None


def _chdb_version() -> str:
    import chdb

    return getattr(chdb, "__version__", "?")


def holder(path: Path) -> int | None:
    """Pid of the process that has the chDB directory open, if any."""
    try:
        m = re.search(r"PID:\s*(\d+)", (path / "status").read_text())
    except OSError:
        return None
    pid = int(m.group(1)) if m else None
    return pid if pid and pid_alive(pid) else None


def _probe_server(url: str) -> str | None:
    import httpx

    parts = urlsplit(url)
    scheme = "https" if parts.scheme in ("https", "clickhouses") else "http"
    port = parts.port or (8443 if scheme == "https" else 8123)
    try:
        r = httpx.get(f"{scheme}://{parts.hostname}:{port}/ping", timeout=5)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if r.status_code == 200 else f"HTTP {r.status_code} from /ping"


def probe(settings: Settings) -> str | None:
    path = embedded_path(settings)
    if path is None:
        return _probe_server(settings.clickhouse_url)
    try:
        _chdb_version()
    except Exception as exc:
        return f"chdb does not import: {type(exc).__name__}: {exc}"
    if not path.is_dir():
        return f"{path} does not exist"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable"
    return None


def status(settings: Settings) -> ServiceStatus:
    path = embedded_path(settings)
    error = probe(settings)
    if path is None:
        return ServiceStatus(
            NAME, "external", error is None, mask_url(settings.clickhouse_url), detail=error or "server answers /ping"
        )
    if error:
        detail = error
    else:
        pid = holder(path)
        detail = f"chdb {_chdb_version()}, in-process; " + (f"open by pid {pid}" if pid else "not open")
    return ServiceStatus(NAME, "embedded", error is None, f"chdb://{path}", data_dir=path, detail=detail)


def ensure(settings: Settings, say: Callable[[str], None]) -> ServiceStatus:
    path = embedded_path(settings)
    if path is not None and not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        say(f"clickhouse: created {path} (chDB, embedded)")
    st = status(settings)
    if not st.healthy:
        if path is None:
            raise StackError(
                f"clickhouse: CLICKHOUSE_URL={mask_url(settings.clickhouse_url)} does not answer: {st.detail}. "
                "Start that server, or unset CLICKHOUSE_URL to use embedded chDB."
            )
        raise StackError(f"clickhouse (chDB at {path}): {st.detail}. Reinstall the environment (`uv sync`).")
    return st


def stop(settings: Settings, say: Callable[[str], None]) -> None:
    say("clickhouse: embedded (chDB), nothing to stop")
