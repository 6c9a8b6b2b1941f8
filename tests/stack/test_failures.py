"""Clear failures: a port someone else holds, a service that is not there, a stubborn process."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import stack
from stack import kafka, postgres, smtp, stripe_mock
from stack._proc import StackError, ensure_port_free, pid_alive, port_open, spawn_detached, terminate, wait_until
from stack.cli import stack_app

from .conftest import free_port_pair, settings_with


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port held (bound and listening) by this test process, with the next port free."""
    port = free_port_pair()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield port


@pytest.mark.unit
def test_port_check_names_the_port_the_holder_and_the_log(taken_port: int, tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    with pytest.raises(StackError) as err:
        ensure_port_free("127.0.0.1", taken_port, service="kafka", log_file=log, variable="KAFKA_BOOTSTRAP_SERVERS")
    message = str(err.value)
    assert f"port {taken_port}" in message
    assert "already in use" in message
    assert f"pid {os.getpid()}" in message  # the holder, found through /proc
    assert str(log) in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


@pytest.mark.unit
def test_port_check_passes_on_a_free_port() -> None:
    port = free_port_pair()
    ensure_port_free("127.0.0.1", port, service="kafka")


@pytest.mark.parametrize("service", ["postgres", "kafka", "stripe-mock", "smtp"])
def test_up_fails_fast_and_clearly_when_its_port_is_taken(
    service: str, taken_port: int, private_data_dir: Path
) -> None:
    settings = settings_with(
        data_dir=private_data_dir,
        postgres_port=taken_port,
        database_url=f"postgresql+asyncpg://billing:billing@127.0.0.1:{taken_port}/billing",
        kafka_bootstrap_servers=f"127.0.0.1:{taken_port}",
        stripe_api_base=f"http://127.0.0.1:{taken_port}",
        smtp_port=taken_port,
        smtp_url=f"smtp://127.0.0.1:{taken_port}",
    )
    logs = {
        "postgres": postgres.log_file(settings),
        "kafka": kafka.log_file(settings),
        "stripe-mock": stripe_mock.log_file(settings),
        "smtp": smtp.log_file(settings),
    }
    t0 = time.monotonic()
    with pytest.raises(StackError) as err:
        stack.ensure_up([service], settings=settings, say=lambda _: None)
    assert time.monotonic() - t0 < 10
    message = str(err.value)
    assert message.startswith(f"{service}: cannot start, port {taken_port} on 127.0.0.1 is already in use"), message
    assert str(logs[service]) in message
    # Nothing was initialised for a service that could not start.
    assert not (private_data_dir / "postgres").exists()


def test_up_command_exits_non_zero_with_the_message(taken_port: int, private_data_dir: Path) -> None:
    result = CliRunner().invoke(
        stack_app,
        ["up", "stripe-mock"],
        env={"BILLING_DATA_DIR": str(private_data_dir), "STRIPE_API_BASE": f"http://127.0.0.1:{taken_port}"},
    )
    assert result.exit_code == 1
    assert "billing stack up failed" in result.output
    assert f"port {taken_port}" in result.output
    assert "stripe-mock.log" in result.output


def test_check_reachable_names_each_missing_service_and_the_command(tmp_path: Path) -> None:
    dead = free_port_pair()  # nothing listens there
    settings = settings_with(
        data_dir=tmp_path,
        postgres_port=dead,
        database_url=f"postgresql+asyncpg://billing:billing@127.0.0.1:{dead}/billing",
        kafka_bootstrap_servers=f"127.0.0.1:{dead}",
        clickhouse_url=f"chdb://{tmp_path / 'no-such-dir'}",
        stripe_api_base=f"http://127.0.0.1:{dead}",
        smtp_port=dead,
        smtp_url=f"smtp://127.0.0.1:{dead}",
    )
    t0 = time.monotonic()
    message = stack.check_reachable(settings=settings)
    assert time.monotonic() - t0 < 20
    assert message is not None
    for name in stack.SERVICES:
        assert f"- {name} at " in message, message
    assert f"127.0.0.1:{dead}" in message
    assert "`billing stack up`" in message and "`make dev`" in message
    assert str(tmp_path / "postgres" / "postgres.log") in message

    only_pg = stack.check_reachable("postgres", settings=settings)
    assert only_pg is not None and "kafka" not in only_pg

    with pytest.raises(stack.StackUnavailable) as err:
        stack.require("stripe-mock", settings=settings)
    assert "`billing stack up`" in str(err.value)


def test_check_reachable_points_elsewhere_for_external_settings(tmp_path: Path) -> None:
    dead = free_port_pair()
    settings = settings_with(
        data_dir=tmp_path,
        database_url=f"postgresql+asyncpg://billing:secret@127.0.0.1:{dead}/billing",  # not BILLING_POSTGRES_PORT
    )
    message = stack.check_reachable("postgres", settings=settings)
    assert message is not None
    assert "DATABASE_URL points outside the local stack" in message
    assert "secret" not in message


def test_status_of_a_stack_that_is_not_running(tmp_path: Path) -> None:
    dead = free_port_pair()
    settings = settings_with(
        data_dir=tmp_path,
        postgres_port=dead,
        database_url=f"postgresql+asyncpg://billing:billing@127.0.0.1:{dead}/billing",
        kafka_bootstrap_servers=f"127.0.0.1:{dead}",
        clickhouse_url=f"chdb://{tmp_path / 'clickhouse'}",
        stripe_api_base=f"http://127.0.0.1:{dead}",
        smtp_port=dead,
        smtp_url=f"smtp://127.0.0.1:{dead}",
    )
    rows = {r.name: r for r in stack.status(settings=settings)}
    for name in ("postgres", "kafka", "stripe-mock", "smtp"):
        assert not rows[name].healthy
        assert rows[name].pid is None
        assert rows[name].detail.startswith("not running")
    assert not rows["clickhouse"].healthy  # its directory does not exist yet


@pytest.mark.unit
def test_unknown_service_is_refused() -> None:
    with pytest.raises(StackError, match="unknown service 'redis'"):
        stack.status(["redis"])


def test_terminate_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(120)"
    )
    pid = spawn_detached([sys.executable, "-c", code], log_file=log)
    assert wait_until(lambda: "ready" in log.read_text().splitlines(), timeout=20)
    t0 = time.monotonic()
    outcome = terminate(pid, name="stubborn", grace=1.0)
    assert time.monotonic() - t0 < 10
    assert "SIGKILL" in outcome
    assert not pid_alive(pid)


def test_terminate_of_a_polite_process_uses_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "polite.log"
    code = "import time; print('ready', flush=True); time.sleep(120)"
    pid = spawn_detached([sys.executable, "-c", code], log_file=log)
    assert wait_until(lambda: "ready" in log.read_text().splitlines(), timeout=20)
    outcome = terminate(pid, name="polite", grace=10)
    assert outcome == f"polite: stopped pid {pid} (SIGTERM)"
    assert not pid_alive(pid)


def test_a_process_whose_leader_thread_exited_is_alive_while_another_thread_holds_its_port(tmp_path: Path) -> None:
    """The leader of a threaded server turns zombie first; its port stays open until the
    last thread exits, so the process is not gone yet (the managed-service test's flake)."""
    port = free_port_pair()
    code = (
        "import ctypes, socket, threading\n"
        f"server = socket.create_server(('127.0.0.1', {port}))\n"
        "def serve():\n"
        "    while True:\n"
        "        server.accept()[0].close()\n"
        "threading.Thread(target=serve).start()\n"
        "print('ready', flush=True)\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"
    )
    pid = spawn_detached([sys.executable, "-c", code], log_file=tmp_path / "threaded.log")
    try:
        stat = Path(f"/proc/{pid}/stat")
        assert wait_until(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", timeout=20)
        assert port_open("127.0.0.1", port)
        assert pid_alive(pid)
    finally:
        terminate(pid, name="threaded", grace=5)
    assert not pid_alive(pid) and not port_open("127.0.0.1", port)
