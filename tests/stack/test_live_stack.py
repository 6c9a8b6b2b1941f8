"""The shared stack that `billing stack up` started: what runs, where, and that it answers.

Nothing here stops or restarts the shared stack; `up` is called again only to check it is
quick and changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from typer.testing import CliRunner

import stack
from contracts.settings import get_settings
from producers.topics import TOPICS, topic_table
from stack import postgres
from stack._proc import cmdline, pid_alive
from stack.cli import stack_app

QUICK_UP_SECONDS = 5.0


def _pids(rows: list[stack.ServiceStatus]) -> dict[str, int | None]:
    return {r.name: r.pid for r in rows}


def test_status_reports_every_service_healthy(live_stack: list[stack.ServiceStatus]) -> None:
    rows = stack.status()
    assert [r.name for r in rows] == list(stack.SERVICES)
    unhealthy = [f"{r.name}: {r.detail}" for r in rows if not r.healthy]
    assert not unhealthy, unhealthy
    by_name = {r.name: r for r in rows}
    settings = get_settings()
    for row in rows:
        if row.mode == "managed":
            assert row.pid is not None and pid_alive(row.pid), row
            assert row.log_file is not None and row.log_file.is_file(), row
            assert row.data_dir is not None and row.data_dir.is_dir(), row
    clickhouse = by_name["clickhouse"]
    if settings.clickhouse_url.startswith("chdb://"):
        assert clickhouse.mode == "embedded"
        assert str(clickhouse.data_dir) == settings.clickhouse_url.removeprefix("chdb://")
    if by_name["kafka"].mode == "managed":
        assert "kafka.Kafka" in cmdline(by_name["kafka"].pid)  # type: ignore[arg-type]
    if by_name["stripe-mock"].mode == "managed":
        assert "stripe-mock" in " ".join(cmdline(by_name["stripe-mock"].pid))  # type: ignore[arg-type]


def test_status_command_prints_every_service(live_stack: list[stack.ServiceStatus]) -> None:
    result = CliRunner().invoke(stack_app, ["status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["SERVICE", "STATE", "MODE", "PID", "ADDRESS"]
    for name in stack.SERVICES:
        (line,) = [x for x in lines if x.startswith(name + " ")]
        assert line.split()[1] == "healthy", line

    as_json = CliRunner().invoke(stack_app, ["status", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert '"healthy": true' in as_json.output


async def test_postgres_answers_select_1_at_the_settings_url(live_stack: list[stack.ServiceStatus]) -> None:
    target = postgres.target(get_settings())
    # The test session's DATABASE_URL names the test database, which fixtures create:
    # connect to it when there, else to the `postgres` database with the same role.
    try:
        conn = await asyncpg.connect(target.dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        conn = await asyncpg.connect(target.dsn, database="postgres", timeout=5)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select rolsuper from pg_roles where rolname = current_user") is True
        if target.managed:
            assert await conn.fetchval("show max_connections") == "200"
            assert await conn.fetchval("show shared_buffers") == "256MB"
            assert await conn.fetchval("show listen_addresses") == "127.0.0.1"
            assert await conn.fetchval("show fsync") == "on"
    finally:
        await conn.close()


async def test_kafka_has_every_topic_with_its_partition_count(live_stack: list[stack.ServiceStatus]) -> None:
    """The base topics `billing stack up` always creates (the test session's prefixed
    ones belong to the session's fixtures)."""
    settings = get_settings()
    wanted = topic_table("")
    assert len(wanted) == len(TOPICS) == 5
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10000)
    await admin.start()
    try:
        described = await admin.describe_topics(list(wanted))
    finally:
        await admin.close()
    have = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
    assert have == wanted


def test_clickhouse_directory_opens_with_chdb(live_stack: list[stack.ServiceStatus]) -> None:
    # chDB lets one process open a directory at a time; use a fresh process, leave nothing open.
    path = get_settings().clickhouse_url.removeprefix("chdb://")
    code = (
        "import sys; from chdb import session; "
        "s = session.Session(sys.argv[1]); print(s.query('select 40 + 2', 'CSV')); s.close()"
    )
    proc = subprocess.run([sys.executable, "-c", code, path], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42"


def test_check_reachable_is_none_when_everything_answers(live_stack: list[stack.ServiceStatus]) -> None:
    assert stack.check_reachable() is None
    stack.require("postgres", "kafka", "clickhouse", "stripe-mock")


def test_up_again_is_quick_and_restarts_nothing(live_stack: list[stack.ServiceStatus]) -> None:
    before = _pids(stack.status())
    t0 = time.monotonic()
    # No topic prefix: the test session's prefix is its fixtures' business (and would
    # leave topics behind).
    rows = stack.ensure_up(settings=dataclasses.replace(get_settings(), kafka_topic_prefix=""))
    elapsed = time.monotonic() - t0
    assert elapsed < QUICK_UP_SECONDS, f"ensure_up took {elapsed:.1f} s on a running stack"
    assert all(r.healthy for r in rows), rows
    assert _pids(rows) == before
    assert _pids(stack.status()) == before


def test_another_checkout_reuses_the_running_servers_and_leaves_them_alone(
    live_stack: list[stack.ServiceStatus], private_data_dir: Path
) -> None:
    """`up` from another data dir on the same ports (a CI clone beside a dev stack) uses the
    servers that answer there instead of failing on their ports; its `down` stops nothing."""
    shared = stack.status()
    local = {r.name for r in shared if r.pid}  # servers running on this machine
    if not local:
        pytest.fail(f"this test wants at least one server of the stack running locally: {shared}")
    other = dataclasses.replace(get_settings(), data_dir=private_data_dir, kafka_topic_prefix="")
    said: list[str] = []
    rows = stack.ensure_up(settings=other, say=said.append)
    assert _pids(rows) == _pids(shared)
    for row in rows:
        if row.name in local:
            assert row.healthy and row.mode == "external" and row.detail.startswith("reused"), row
            assert any(s.startswith(f"{row.name}: reusing pid {row.pid}") for s in said), said
    assert not (private_data_dir / "postgres").exists()

    stack.down(settings=other, say=said.append)
    assert _pids(stack.status()) == _pids(shared)
    assert all(pid_alive(r.pid) for r in shared if r.pid)


def test_up_command_again_is_quick_and_restarts_nothing(live_stack: list[stack.ServiceStatus]) -> None:
    """The real command line, in its own process, as `make test` runs it."""
    before = _pids(stack.status())
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", "from stack.cli import stack_app; stack_app()", "up"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KAFKA_TOPIC_PREFIX": ""},
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert elapsed < QUICK_UP_SECONDS, f"`billing stack up` took {elapsed:.1f} s on a running stack"
    assert "starting" not in proc.stderr, proc.stderr
    assert _pids(stack.status()) == before
