"""stripe-mock (Stripe's own mock API server, a Go program) on STRIPE_API_BASE.

Installed once with `go install` when missing; started listening on 127.0.0.1 only:
-http-addr 127.0.0.1:<port> -https-addr 127.0.0.1:<port+1> (the same as -http-port/-https-port
but not on every interface). Managed only when STRIPE_API_BASE is http on a loopback host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from contracts.settings import Settings

from ._proc import LOOPBACK_HOSTS, StackError, run, which
from .managed import Endpoint, Health, ManagedService

NAME = "stripe-mock"
MODULE = "github.com/stripe/stripe-mock"
# Pinned so every machine tests against the same Stripe API fixtures; bump on purpose.
VERSION = "v0.203.0"
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


class StripeMock(ManagedService):
    name = NAME
    setting = "STRIPE_API_BASE"
    port_setting = "STRIPE_API_BASE"
    server_needle = "stripe-mock"
    stop_grace = 15

    def endpoint(self, settings: Settings) -> Endpoint:
        t = target(settings)
        return Endpoint(t.managed, t.base, t.port, (("https", t.https_port),))

    def signature(self, settings: Settings) -> tuple[str, ...]:
        return ("stripe-mock", f"-http-addr\x00127.0.0.1:{target(settings).port}")

    def adoptable(self, settings: Settings, pid: int) -> bool:
        """Ours only when it also runs in our dir (another checkout's listens on the same address)."""
        return super().adoptable(settings, pid) and _cwd(pid) == self.home(settings).resolve()

    def health(self, settings: Settings) -> Health:
        return Health(probe(settings), f"https on port {target(settings).https_port}")

    def unreachable_external(self, settings: Settings, error: str) -> str:
        return (
            f"stripe-mock: STRIPE_API_BASE={target(settings).base} is not a local http address `billing stack up` "
            f"manages, and it does not answer: {error}."
        )

    def prepare(self, settings: Settings, say: Callable[[str], None]) -> list[str | Path]:
        t = target(settings)
        binary = _ensure_binary(say)
        return [binary, "-http-addr", f"127.0.0.1:{t.port}", "-https-addr", f"127.0.0.1:{t.https_port}"]


SERVICE = StripeMock()
log_file = SERVICE.log_file
pid_file = SERVICE.pid_file
