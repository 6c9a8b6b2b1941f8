"""One lifecycle for the servers `billing stack up` runs from the data dir (Postgres, Kafka,
stripe-mock).

`ManagedService` owns the sequence every one of them follows:

    ensure  external settings: only check it answers. Ours and running (pid file, or a
            server of ours on the port whose pid file went missing): wait until it answers.
            A server of the right kind that answers with our settings holds the port (another
            checkout's stack): reuse it. Anything else on a port: fail, naming the holder.
            Otherwise prepare (install, configure), start detached, record the pid, wait
            until it answers (bounded; the error names the log and shows its tail), make it
            ready for the settings.
    status  one row: managed / external (settings elsewhere, or reused), pid, health.
    stop    the first signal, a grace period, SIGKILL; the pid file removed when it is ours.

A service supplies only what differs: where it listens (`endpoint`), how it is checked
(`health`), how it is prepared and its command line (`prepare`), and, where they differ,
how it starts (`launch`), what "answers" means while starting (`answers`) and what makes it
ready (`ready`). Its files live under <data_dir>/<name>: <name>.log, and <name>.pid unless
the server keeps a pid file of its own (Postgres' postmaster.pid).
"""

from __future__ import annotations

import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from contracts.settings import Settings

from ._proc import (
    StackError,
    cmdline_matches,
    describe_pid,
    ensure_port_free,
    foreign_server,
    pid_alive,
    port_owner,
    read_pid,
    spawn_detached,
    tail,
    terminate,
    write_pid,
)
from .base import ServiceStatus

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a service listens, as the settings say."""

    managed: bool  # a server `billing stack up` runs (loopback, the stack's port); else external
    address: str  # for the status row and messages
    port: int  # the port clients use
    more_ports: tuple[tuple[str, int], ...] = ()  # (what, port) it listens on as well, e.g. ("https", 12112)

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, *(port for _, port in self.more_ports))


@dataclass(frozen=True, slots=True)
class Health:
    error: str | None  # None: it answers as the settings want
    detail: str = ""  # what the status row says when it answers


class ManagedService(ABC):
    """A server the stack starts, checks and stops from its data dir (see the module docstring)."""

    name: ClassVar[str]
    setting: ClassVar[str]  # the setting that points it elsewhere, named in messages
    port_setting: ClassVar[str]  # what to change when its port is taken
    server_needle: ClassVar[str]  # in the command line of any server of this kind (ours or not)
    start_timeout: ClassVar[float] = 60
    poll_interval: ClassVar[float] = 0.2
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_grace: ClassVar[float] = 30
    # False when the server writes and removes its pid file itself (Postgres' postmaster.pid).
    owns_pid_file: ClassVar[bool] = True

    # ----------------------------------------------------------------------- what differs

    @abstractmethod
    def endpoint(self, settings: Settings) -> Endpoint: ...

    @abstractmethod
    def signature(self, settings: Settings) -> tuple[str, ...]:
        """What the command line of our server contains (guards against a recycled pid)."""

    @abstractmethod
    def health(self, settings: Settings) -> Health:
        """Whether it answers at the settings' address as the settings want."""

    @abstractmethod
    def unreachable_external(self, settings: Settings, error: str) -> str:
        """The message when the settings point at a server we do not manage and it does not answer."""

    @abstractmethod
    def prepare(self, settings: Settings, say: Say) -> Sequence[str | os.PathLike[str]]:
        """Install and configure what the server needs; return the command line that starts it."""

    def home(self, settings: Settings) -> Path:
        return settings.data_dir / self.name

    def log_file(self, settings: Settings) -> Path:
        return self.home(settings) / f"{self.name}.log"

    def pid_file(self, settings: Settings) -> Path:
        return self.home(settings) / f"{self.name}.pid"

    def adoptable(self, settings: Settings, pid: int) -> bool:
        """Whether the server holding our port is ours though the pid file does not say so."""
        return cmdline_matches(pid, *self.signature(settings))

    def launch(self, settings: Settings, say: Say) -> int | None:
        """Start the server detached; its pid (None: it is not running after all)."""
        command = self.prepare(settings, say)
        say(self.starting_message(settings))
        pid = spawn_detached(command, log_file=self.log_file(settings), cwd=self.home(settings))
        write_pid(self.pid_file(settings), pid)
        return pid

    def answers(self, settings: Settings) -> str | None:
        """While starting: None once it answers, else why not. It may still lack what `ready`
        sets up."""
        return self.health(settings).error

    def ready(self, settings: Settings, say: Say) -> ServiceStatus:
        """Once it answers (ours, or reused): set up what the settings want; the status row."""
        return self.status(settings)

    def external_detail(self, settings: Settings, health: Health) -> str:
        return f"{self.setting}; {health.error or 'answers'}"

    def reused_detail(self, settings: Settings, owner: int, health: Health) -> str:
        return f"reused, not started from {self.home(settings)}: {describe_pid(owner)}"

    # ----------------------------------------------------------------------- the lifecycle

    def probe(self, settings: Settings) -> str | None:
        """None when it answers as the settings want, else the error."""
        return self.health(settings).error

    def starting_message(self, settings: Settings) -> str:
        end = self.endpoint(settings)
        also = "".join(f"{what} {port}; " for what, port in end.more_ports)
        return f"{self.name}: starting on {end.address} ({also}log {self.log_file(settings)}) ..."

    def running_pid(self, settings: Settings) -> int | None:
        """Pid of the server we run, from its pid file."""
        pid = read_pid(self.pid_file(settings))
        if pid and cmdline_matches(pid, *self.signature(settings)):
            return pid
        return None

    def status(self, settings: Settings) -> ServiceStatus:
        end = self.endpoint(settings)
        health = self.health(settings)
        if not end.managed:
            detail = self.external_detail(settings, health)
            return ServiceStatus(self.name, "external", health.error is None, end.address, detail=detail)
        pid = self.running_pid(settings)
        if pid is None and health.error is None and (owner := foreign_server(end.port, self.server_needle)):
            detail = self.reused_detail(settings, owner, health)
            return ServiceStatus(self.name, "external", True, end.address, pid=owner, detail=detail)
        if pid is None:
            detail = "not running" + (" (but something answers on its port)" if health.error is None else "")
        else:
            detail = health.error or health.detail
        return ServiceStatus(
            self.name,
            "managed",
            pid is not None and health.error is None,
            end.address,
            pid=pid,
            data_dir=self.home(settings),
            log_file=self.log_file(settings),
            detail=detail,
        )

    def ensure(self, settings: Settings, say: Say) -> ServiceStatus:
        """Start it unless it runs, wait until it answers, make it ready: its status row."""
        end = self.endpoint(settings)
        if not end.managed:
            error = self.probe(settings)
            if error:
                raise StackError(self.unreachable_external(settings, error))
            return self.status(settings)
        pid = self.running_pid(settings) or self._adopt(settings, end)
        if pid is None and (owner := foreign_server(end.port, self.server_needle)) and self.probe(settings) is None:
            # Another checkout's server (or any of this kind that answers with our settings)
            # holds the port: use it rather than fail; `billing stack down` here leaves it alone.
            say(f"{self.name}: reusing {describe_pid(owner)} on {end.address} (not started from {self.home(settings)})")
            return self.ready(settings, say)
        if pid is None:
            for port in end.ports:
                ensure_port_free(
                    "127.0.0.1", port, service=self.name, log_file=self.log_file(settings), variable=self.port_setting
                )
            pid = self.launch(settings, say)
        self._wait_until_answering(settings, end, pid)
        return self.ready(settings, say)

    def stop(self, settings: Settings, say: Say) -> None:
        if not self.endpoint(settings).managed:
            say(f"{self.name}: external ({self.setting}), nothing to stop")
            return
        pid = self.running_pid(settings)
        if pid is None:
            say(f"{self.name}: not running")
        else:
            say(terminate(pid, name=self.name, grace=self.stop_grace, first_signal=self.stop_signal))
        if self.owns_pid_file:
            self.pid_file(settings).unlink(missing_ok=True)

    def _adopt(self, settings: Settings, end: Endpoint) -> int | None:
        """A server of ours whose pid file went missing: record its pid rather than fail on the port."""
        if not self.owns_pid_file:
            return None
        owner = port_owner(end.port)
        if owner and self.adoptable(settings, owner):
            write_pid(self.pid_file(settings), owner)
            return owner
        return None

    def _wait_until_answering(self, settings: Settings, end: Endpoint, pid: int | None) -> None:
        log = self.log_file(settings)
        deadline = time.monotonic() + self.start_timeout
        error = self.answers(settings)
        while error is not None:
            if not pid_alive(pid):
                if self.owns_pid_file:
                    self.pid_file(settings).unlink(missing_ok=True)
                raise StackError(f"{self.name} exited during startup (port {end.port}). Read {log}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.name} (pid {pid}) did not answer on {end.address} within {self.start_timeout:.0f} s: "
                    f"{error}. Read {log}:\n{tail(log)}\nIt is left running; `billing stack down` stops it."
                )
            time.sleep(self.poll_interval)
            error = self.answers(settings)
