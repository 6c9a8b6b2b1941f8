"""stripe-mock (Stripe's own mock API server, a Go program) on STRIPE_API_BASE.

Installed once with `go install` when missing; started listening on 127.0.0.1 only:
-http-addr 127.0.0.1:<port> -https-addr 127.0.0.1:<port+1> (the same as -http-port/-https-port
but not on every interface). Managed only when STRIPE_API_BASE is http on a loopback host.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from contracts.settings import Settings

from ._proc import (
    LOOPBACK_HOSTS,
    StackError,
    cmdline_matches,
    describe_pid,
    ensure_port_free,
    foreign_server,
    pid_alive,
    port_owner,
    read_pid,
    run,
    spawn_detached,
    tail,
    terminate,
    which,
    write_pid,
)
from .base import ServiceStatus

NAME = "stripe-mock"
MODULE = "github.com/stripe/stripe-mock"
# Pinned so every machine tests against the same Stripe API fixtures; bump on purpose.
VERSION = "v0.203.0"
START_TIMEOUT = 60
TEST_KEY = "sk_test_123"


@dataclass(frozen=True, slots=True)
class StripeTarget:
    base: str
    host: str
    port: int
    https_port: int
    managed: bool


def target(settings: Settings) -> StripeTarget:
    base = settings.stripe_api_base.rstrip("/")
    parts = urlsplit(base)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    managed = parts.scheme == "http" and host in LOOPBACK_HOSTS and parts.port is not None
    return StripeTarget(base, host, port, port + 1, managed)


def home(settings: Settings) -> Path:
    return settings.data_dir / "stripe-mock"


def log_file(settings: Settings) -> Path:
    return home(settings) / "stripe-mock.log"


def pid_file(settings: Settings) -> Path:
    return home(settings) / "stripe-mock.pid"


def _signature(t: StripeTarget) -> tuple[str, str]:
    return ("stripe-mock", f"-http-addr\x00127.0.0.1:{t.port}")


def running_pid(settings: Settings) -> int | None:
    pid = read_pid(pid_file(settings))
    if pid and cmdline_matches(pid, *_signature(target(settings))):
        return pid
    return None


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _go_bin_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("GOBIN"):
        dirs.append(Path(os.environ["GOBIN"]))
    if os.environ.get("GOPATH"):
        dirs.extend(Path(p) / "bin" for p in os.environ["GOPATH"].split(os.pathsep) if p)
    dirs.append(Path.home() / "go" / "bin")
    return dirs


def find_binary() -> Path | None:
    return which("stripe-mock", _go_bin_dirs())


def _ensure_binary(say: Callable[[str], None]) -> Path:
    binary = find_binary()
    if binary is not None:
        return binary
    go = which("go", [Path("/usr/local/go/bin")])
    if go is None:
        raise StackError(
            f"stripe-mock is not installed and there is no Go toolchain to install it with "
            f"(`go install {MODULE}@{VERSION}`). Install Go (https://go.dev/doc/install, or Debian's golang-go) "
            "and run `billing stack up` again."
        )
    say(f"stripe-mock: installing with `go install {MODULE}@{VERSION}` (once) ...")
    t0 = time.monotonic()
    run([go, "install", f"{MODULE}@{VERSION}"], timeout=900, what="stripe-mock: go install")
    gobin = run([go, "env", "GOBIN"], timeout=30, what="go env").stdout.strip()
    gopath = run([go, "env", "GOPATH"], timeout=30, what="go env").stdout.strip()
    dirs = [Path(gobin)] if gobin else []
    dirs += [Path(p) / "bin" for p in gopath.split(os.pathsep) if p]
    binary = which("stripe-mock", dirs)
    if binary is None:
        where = ", ".join(map(str, dirs))
        raise StackError(f"stripe-mock: `go install` succeeded but there is no stripe-mock binary in {where}")
    say(f"stripe-mock: installed {binary} in {time.monotonic() - t0:.1f} s")
    return binary


def probe(settings: Settings) -> str | None:
    """None when GET /v1/customers answers 200 with the test key, else the error."""
    import httpx

    t = target(settings)
    try:
        r = httpx.get(f"{t.base}/v1/customers", headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=5)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None if r.status_code == 200 else f"GET /v1/customers answered HTTP {r.status_code}"


def status(settings: Settings) -> ServiceStatus:
    t = target(settings)
    error = probe(settings)
    if not t.managed:
        return ServiceStatus(NAME, "external", error is None, t.base, detail=f"STRIPE_API_BASE; {error or 'answers'}")
    pid = running_pid(settings)
    if pid is None and error is None and (owner := foreign_server(t.port, "stripe-mock")):
        return ServiceStatus(
            NAME,
            "external",
            True,
            t.base,
            pid=owner,
            detail=f"reused, not started from {home(settings)}: {describe_pid(owner)}",
        )
    if pid is None:
        detail = "not running" + (" (but something answers on its port)" if error is None else "")
    else:
        detail = error or f"https on port {t.https_port}"
    return ServiceStatus(
        NAME,
        "managed",
        pid is not None and error is None,
        t.base,
        pid=pid,
        data_dir=home(settings),
        log_file=log_file(settings),
        detail=detail,
    )


def ensure(settings: Settings, say: Callable[[str], None]) -> ServiceStatus:
    t = target(settings)
    if not t.managed:
        error = probe(settings)
        if error:
            raise StackError(
                f"stripe-mock: STRIPE_API_BASE={t.base} is not a local http address `billing stack up` manages, "
                f"and it does not answer: {error}."
            )
        return status(settings)

    home(settings).mkdir(parents=True, exist_ok=True)
    pid = running_pid(settings)
    if pid is None:
        # One of ours whose pid file went missing (it runs in our dir): adopt it.
        owner = port_owner(t.port)
        if owner and cmdline_matches(owner, *_signature(t)) and _cwd(owner) == home(settings).resolve():
            write_pid(pid_file(settings), owner)
            pid = owner
    if pid is None and (owner := foreign_server(t.port, "stripe-mock")) and probe(settings) is None:
        # Another checkout's stripe-mock holds the port and answers: use it, leave it alone on `down`.
        say(f"stripe-mock: reusing {describe_pid(owner)} on {t.base} (not started from {home(settings)})")
        return status(settings)
    if pid is None:
        for port in (t.port, t.https_port):
            ensure_port_free(
                "127.0.0.1", port, service="stripe-mock", log_file=log_file(settings), variable="STRIPE_API_BASE"
            )
        binary = _ensure_binary(say)
        say(f"stripe-mock: starting on {t.base} (https {t.https_port}; log {log_file(settings)}) ...")
        pid = spawn_detached(
            [binary, "-http-addr", f"127.0.0.1:{t.port}", "-https-addr", f"127.0.0.1:{t.https_port}"],
            log_file=log_file(settings),
            cwd=home(settings),
        )
        write_pid(pid_file(settings), pid)

    deadline = time.monotonic() + START_TIMEOUT
    error = probe(settings)
    while error is not None:
        if not pid_alive(pid):
            pid_file(settings).unlink(missing_ok=True)
            raise StackError(
                f"stripe-mock exited during startup (port {t.port}). "
                f"Read {log_file(settings)}:\n{tail(log_file(settings))}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"stripe-mock (pid {pid}) did not answer on {t.base} within {START_TIMEOUT} s: {error}. "
                f"Read {log_file(settings)}."
            )
        time.sleep(0.2)
        error = probe(settings)
    return status(settings)


def stop(settings: Settings, say: Callable[[str], None]) -> None:
    if not target(settings).managed:
        say("stripe-mock: external (STRIPE_API_BASE), nothing to stop")
        return
    pid = running_pid(settings)
    if pid is None:
        say("stripe-mock: not running")
    else:
        say(terminate(pid, name="stripe-mock", grace=15, first_signal=signal.SIGTERM))
    pid_file(settings).unlink(missing_ok=True)
