"""The lifecycle every managed service shares (stack/managed.py), on stand-in servers: a
Python http.server started from a private data dir, and processes that never answer or
exit at once. Nothing of the shared stack is involved."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from contracts.settings import Settings
from stack._proc import StackError, pid_alive, port_open, spawn_detached, terminate, wait_until
from stack.managed import Endpoint, Health, ManagedService, Say

from .conftest import free_port_pair, settings_with


class FileServer(ManagedService):
    """Python's http.server serving its home directory on a port of its own."""

    name = "fileserver"
    setting = "FILESERVER_URL"
    port_setting = "FILESERVER_PORT"
    server_needle = "http.server"
    start_timeout = 20
    stop_grace = 5

    def __init__(self, port: int) -> None:
        self.port = port

    def endpoint(self, settings: Settings) -> Endpoint:
        return Endpoint(True, f"127.0.0.1:{self.port}", self.port)

    def signature(self, settings: Settings) -> tuple[str, ...]:
        return ("http.server", str(self.home(settings)))

    def health(self, settings: Settings) -> Health:
        error = None if port_open("127.0.0.1", self.port) else f"nothing answers on port {self.port}"
        return Health(error, "serving files")

    def unreachable_external(self, settings: Settings, error: str) -> str:
        return f"fileserver: {error}"

    def prepare(self, settings: Settings, say: Say) -> Sequence[str]:
        home = self.home(settings)
        home.mkdir(parents=True, exist_ok=True)
        return _file_server_command(self.port, home)


class NeverAnswers(FileServer):
    """Runs, says it is warming up, never listens."""

    start_timeout = 1

    def prepare(self, settings: Settings, say: Say) -> Sequence[str]:
        code = "import time; print('warming up', flush=True); time.sleep(120)"
        return [sys.executable, "-c", code, "http.server", str(self.home(settings))]


class ExitsAtOnce(FileServer):
    def prepare(self, settings: Settings, say: Say) -> Sequence[str]:
        code = "print('cannot read my config', flush=True); raise SystemExit(3)"
        return [sys.executable, "-c", code, "http.server", str(self.home(settings))]


def _file_server_command(port: int, directory: Path) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_with(data_dir=tmp_path)


@pytest.fixture
def port() -> int:
    return free_port_pair()


def _stop_quietly(service: ManagedService, settings: Settings) -> None:
    service.stop(settings, lambda _: None)


def test_up_again_status_and_down_of_a_managed_server(settings: Settings, port: int) -> None:
    service = FileServer(port)
    said: list[str] = []
    try:
        first = service.ensure(settings, said.append)
        assert first.healthy and first.mode == "managed" and pid_alive(first.pid)
        assert (first.address, first.detail) == (f"127.0.0.1:{port}", "serving files")
        home = settings.data_dir / "fileserver"
        assert (first.data_dir, first.log_file) == (home, home / "fileserver.log")
        assert (home / "fileserver.pid").read_text().strip() == str(first.pid)
        assert said == [f"fileserver: starting on 127.0.0.1:{port} (log {home / 'fileserver.log'}) ..."]
        assert "starting: " in (home / "fileserver.log").read_text()

        said.clear()
        again = service.ensure(settings, said.append)
        assert again.pid == first.pid and said == []

        service.stop(settings, said.append)
        assert said == [f"fileserver: stopped pid {first.pid} (SIGTERM)"]
        assert not pid_alive(first.pid)
        assert not (home / "fileserver.pid").exists()
        row = service.status(settings)
        assert not row.healthy and row.pid is None and row.detail == "not running"
    finally:
        _stop_quietly(service, settings)


def test_a_server_of_ours_without_its_pid_file_is_adopted(settings: Settings, port: int) -> None:
    service = FileServer(port)
    try:
        first = service.ensure(settings, lambda _: None)
        service.pid_file(settings).unlink()
        said: list[str] = []
        again = service.ensure(settings, said.append)
        assert again.pid == first.pid and said == []
        assert service.pid_file(settings).read_text().strip() == str(first.pid)
    finally:
        _stop_quietly(service, settings)


@pytest.fixture
def foreign_server(tmp_path: Path, port: int) -> Iterator[int]:
    """A file server of the same kind on the port, started from somewhere else."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pid = spawn_detached(_file_server_command(port, elsewhere), log_file=elsewhere / "server.log")
    try:
        assert wait_until(lambda: port_open("127.0.0.1", port), timeout=20)
        yield pid
    finally:
        terminate(pid, name="foreign", grace=5)


def test_a_foreign_server_that_answers_is_reused_and_left_alone(
    settings: Settings, port: int, foreign_server: int
) -> None:
    service = FileServer(port)
    said: list[str] = []
    row = service.ensure(settings, said.append)
    assert row.mode == "external" and row.healthy and row.pid == foreign_server
    assert row.detail.startswith(f"reused, not started from {service.home(settings)}: pid {foreign_server}")
    (reusing,) = said
    assert reusing.startswith(f"fileserver: reusing pid {foreign_server} (")
    assert reusing.endswith(f" on 127.0.0.1:{port} (not started from {service.home(settings)})")
    said.clear()

    service.stop(settings, said.append)
    assert said == ["fileserver: not running"]
    assert pid_alive(foreign_server)


def test_a_server_that_never_answers_fails_naming_its_log_and_stays_stoppable(settings: Settings, port: int) -> None:
    service = NeverAnswers(port)
    try:
        t0 = time.monotonic()
        with pytest.raises(StackError) as err:
            service.ensure(settings, lambda _: None)
        assert time.monotonic() - t0 < 10
        message = str(err.value)
        pid = service.running_pid(settings)
        assert pid is not None and pid_alive(pid)
        assert message.startswith(f"fileserver (pid {pid}) did not answer on 127.0.0.1:{port} within 1 s"), message
        assert f"nothing answers on port {port}" in message
        assert f"Read {service.log_file(settings)}:" in message
        assert "warming up" in message  # the log's tail
        assert "`billing stack down` stops it" in message
    finally:
        _stop_quietly(service, settings)
    assert not service.pid_file(settings).exists()


def test_a_server_that_exits_during_startup_fails_with_its_log_tail(settings: Settings, port: int) -> None:
    service = ExitsAtOnce(port)
    with pytest.raises(StackError) as err:
        service.ensure(settings, lambda _: None)
    message = str(err.value)
    assert message.startswith(f"fileserver exited during startup (port {port}). Read {service.log_file(settings)}:")
    assert "cannot read my config" in message
    assert not service.pid_file(settings).exists()
