"""The stack as a whole: bring it up, take it down, report on it, check it is reachable."""

from __future__ import annotations

import fcntl
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from contracts.settings import Settings, get_settings

from . import clickhouse, kafka, postgres, smtp, stripe_mock
from ._proc import UP_HINT, StackError, run_async
from .base import ServiceStatus, lock_file
from .managed import ManagedService

SERVICES: tuple[str, ...] = ("postgres", "kafka", "clickhouse", "stripe-mock", "smtp")


class _Service(Protocol):
    """What `up`, `down` and `status` call: a ManagedService, or the clickhouse module."""

    def ensure(self, settings: Settings, say: Callable[[str], None]) -> ServiceStatus: ...

    def status(self, settings: Settings) -> ServiceStatus: ...

    def stop(self, settings: Settings, say: Callable[[str], None]) -> None: ...


_MANAGED: dict[str, ManagedService] = {
    "postgres": postgres.SERVICE,
    "kafka": kafka.SERVICE,
    "stripe-mock": stripe_mock.SERVICE,
    "smtp": smtp.SERVICE,
}
_SERVICES: dict[str, _Service] = {**_MANAGED, "clickhouse": clickhouse}
LOCK_TIMEOUT = 1200  # a first `up` on a fresh machine may apt-get, mvn and go install


class StackUnavailable(StackError):
    """A service the caller needs is not reachable; the message names the command to run."""


def _say_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _names(services: Iterable[str] | None) -> list[str]:
    if not services:
        return list(SERVICES)
    names = []
    for s in services:
        s = {
            "stripe": "stripe-mock",
            "stripe_mock": "stripe-mock",
            "chdb": "clickhouse",
            "pg": "postgres",
            "mail": "smtp",
        }.get(s, s)
        if s not in _SERVICES:
            raise StackError(f"unknown service {s!r}; the stack has {', '.join(SERVICES)}")
        if s not in names:
            names.append(s)
    return [s for s in SERVICES if s in names]  # canonical order


@contextmanager
def _stack_lock(settings: Settings, say: Callable[[str], None]) -> Iterator[None]:
    """One `up`/`down` at a time per data dir (bounded wait)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = lock_file(settings.data_dir)
    with open(path, "a") as f:
        deadline = time.monotonic() + LOCK_TIMEOUT
        told = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"another `billing stack up/down` has held {path} for over {LOCK_TIMEOUT} s; "
                        "is it stuck? (see `billing stack status`)"
                    ) from None
                if not told:
                    say(f"waiting for another `billing stack up/down` to finish (lock {path}) ...")
                    told = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_up(
    services: Iterable[str] | None = None,
    *,
    settings: Settings | None = None,
    say: Callable[[str], None] | None = None,
) -> list[ServiceStatus]:
    """Start whatever is not running (idempotent; quick when all runs) and create the topics.

    Returns each service's status. Raises StackError naming what failed, which port and
    which log file to read, after trying every service (they start in parallel).
    """
    settings = settings or get_settings()
    say = say or _say_stderr
    names = _names(services)
    with _stack_lock(settings, say):
        errors: dict[str, str] = {}
        results: dict[str, ServiceStatus] = {}
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="stack-up") as pool:
            futures = {name: pool.submit(_SERVICES[name].ensure, settings, say) for name in names}
            for name, fut in futures.items():
                try:
                    st = fut.result()
                    results[name] = st
                    if not st.healthy:
                        where = f" Read {st.log_file}." if st.log_file else ""
                        errors[name] = f"{name}: not healthy after `up` at {st.address}: {st.detail}.{where}"
                except StackError as exc:
                    errors[name] = str(exc)
                except Exception as exc:
                    errors[name] = f"{name}: unexpected {type(exc).__name__}: {exc}"
        if "kafka" in results:
            try:
                kafka.ensure_topics(settings, say)
            except Exception as exc:
                errors["kafka topics"] = f"kafka: could not create the topics: {type(exc).__name__}: {exc}"
        if errors:
            raise StackError("\n".join(errors.values()))
        return [results[n] for n in names]


def down(
    services: Iterable[str] | None = None,
    *,
    settings: Settings | None = None,
    say: Callable[[str], None] | None = None,
) -> None:
    """Stop what `up` started (from the pid files under the data dir): SIGTERM, wait, SIGKILL."""
    settings = settings or get_settings()
    say = say or _say_stderr
    names = _names(services)
    with _stack_lock(settings, say):
        errors = []
        for name in reversed(names):  # smtp, stripe-mock, clickhouse, kafka, postgres
            try:
                _SERVICES[name].stop(settings, say)
            except Exception as exc:
                errors.append(f"{name}: could not stop: {type(exc).__name__}: {exc}")
        if errors:
            raise StackError("\n".join(errors))


def status(services: Iterable[str] | None = None, *, settings: Settings | None = None) -> list[ServiceStatus]:
    """Each service's status (probes run in parallel, each bounded)."""
    settings = settings or get_settings()
    names = _names(services)
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="stack-status") as pool:
        futures = [pool.submit(_SERVICES[n].status, settings) for n in names]
        return [f.result() for f in futures]


# --------------------------------------------------------------------------- reachability


def _kafka_problem(settings: Settings) -> str | None:
    """The broker answers and has the base (unprefixed) topics `up` creates. Prefixed
    topics (KAFKA_TOPIC_PREFIX, e.g. a test session's) are their owner's to create."""
    from producers.topics import topic_table

    try:
        existing = set(run_async(lambda: kafka._list_topics(settings.kafka_bootstrap_servers), timeout=8))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    missing = [t for t in topic_table("") if t not in existing]
    return f"topics missing: {', '.join(missing)}" if missing else None


def _where(name: str, settings: Settings) -> tuple[str, Path | None, bool]:
    """(address, log file, managed by us) for messages."""
    if name in _MANAGED:
        service = _MANAGED[name]
        end = service.endpoint(settings)
        return end.address, service.log_file(settings), end.managed
    path = clickhouse.embedded_path(settings)
    return (f"chdb://{path}" if path else settings.clickhouse_url), None, path is not None


_SETTING = {
    "postgres": "DATABASE_URL",
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
    "clickhouse": "CLICKHOUSE_URL",
    "stripe-mock": "STRIPE_API_BASE",
    "smtp": "SMTP_URL",
}


def check_reachable(*services: str, settings: Settings | None = None) -> str | None:
    """None when every named service (default: all) answers, else a message saying which
    ones do not, why, and the command to run (`billing stack up` / `make dev`)."""
    settings = settings or get_settings()
    names = _names(services)
    checks: dict[str, Callable[[Settings], str | None]] = {
        "postgres": postgres.probe,
        "kafka": _kafka_problem,
        "clickhouse": clickhouse.probe,
        "stripe-mock": stripe_mock.probe,
        "smtp": smtp.probe,
    }
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="stack-check") as pool:
        futures = {n: pool.submit(checks[n], settings) for n in names}
        problems = {n: f.result() for n, f in futures.items()}
    failing = {n: p for n, p in problems.items() if p}
    if not failing:
        return None
    lines = ["The local stack is not reachable:"]
    any_managed = False
    for name, problem in failing.items():
        address, log, managed = _where(name, settings)
        line = f"  - {name} at {address}: {problem}"
        if managed:
            any_managed = True
            if log is not None:
                line += f" (log: {log})"
        else:
            line += f" ({_SETTING[name]} points outside the local stack: start that server or unset {_SETTING[name]})"
        lines.append(line)
    if any_managed:
        lines.append(f"Start it with {UP_HINT}; `billing stack status` shows what runs where.")
    return "\n".join(lines)


def require(*services: str, settings: Settings | None = None) -> None:
    """Raise StackUnavailable (with check_reachable's message) unless the services answer."""
    message = check_reachable(*services, settings=settings)
    if message:
        raise StackUnavailable(message)
