"""Whole lifecycles (up, up again, down, up again) on private servers of our own: their own
data dir and free ports, so the shared stack is never touched."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import httpx

import stack
from stack import postgres, stripe_mock
from stack._proc import pid_alive

from .conftest import free_port_pair, settings_with


def test_postgres_lifecycle_on_a_private_cluster(private_data_dir: Path) -> None:
    port = free_port_pair()
    settings = settings_with(
        data_dir=private_data_dir,
        postgres_port=port,
        database_url=f"postgresql+asyncpg://billing:billing@127.0.0.1:{port}/billing",
    )
    said: list[str] = []
    try:
        (first,) = stack.ensure_up(["postgres"], settings=settings, say=said.append)
        assert first.healthy and first.mode == "managed" and pid_alive(first.pid)
        assert any("initdb" in s for s in said)
        pgdata = postgres.pgdata(settings)
        assert (pgdata / "PG_VERSION").is_file()
        assert pgdata.stat().st_mode & 0o777 == 0o700
        version_mtime = (pgdata / "PG_VERSION").stat().st_mtime_ns

        async def first_life() -> None:
            conn = await asyncpg.connect(postgres.target(settings).dsn, timeout=5)
            try:
                assert await conn.fetchval("show port") == str(port)
                assert await conn.fetchval("show shared_buffers") == "256MB"
                assert await conn.fetchval("show max_connections") == "200"
                assert await conn.fetchval("show listen_addresses") == "127.0.0.1"
                # The role may create databases (tests create billing_test).
                await conn.execute("create database scratch")
                await conn.execute("drop database scratch")
                await conn.execute("create table kept (v int); insert into kept values (7)")
            finally:
                await conn.close()

        stack._proc.run_async(first_life, timeout=30)

        # Up again: quick, same postmaster, nothing re-initialised.
        said.clear()
        t0 = time.monotonic()
        (again,) = stack.ensure_up(["postgres"], settings=settings, say=said.append)
        assert time.monotonic() - t0 < 5
        assert again.pid == first.pid and said == []

        stack.down(["postgres"], settings=settings, say=said.append)
        assert not pid_alive(first.pid)
        assert not (pgdata / "postmaster.pid").exists()
        (row,) = stack.status(["postgres"], settings=settings)
        assert not row.healthy and row.pid is None

        # Up after down: the same cluster, its data kept, no initdb.
        said.clear()
        (second,) = stack.ensure_up(["postgres"], settings=settings, say=said.append)
        assert second.healthy and second.pid != first.pid
        assert not any("initdb" in s for s in said)
        assert (pgdata / "PG_VERSION").stat().st_mtime_ns == version_mtime

        async def second_life() -> int:
            conn = await asyncpg.connect(postgres.target(settings).dsn, timeout=5)
            try:
                return await conn.fetchval("select v from kept")
            finally:
                await conn.close()

        assert stack._proc.run_async(second_life, timeout=30) == 7
    finally:
        stack.down(["postgres"], settings=settings, say=said.append)


def test_stripe_mock_lifecycle_on_a_private_port(private_data_dir: Path) -> None:
    port = free_port_pair()
    settings = settings_with(data_dir=private_data_dir, stripe_api_base=f"http://127.0.0.1:{port}")
    said: list[str] = []
    try:
        (first,) = stack.ensure_up(["stripe-mock"], settings=settings, say=said.append)
        assert first.healthy and pid_alive(first.pid)
        assert stripe_mock.pid_file(settings).read_text().strip() == str(first.pid)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/customers",
            headers={"Authorization": "Bearer sk_test_123"},
            data={"email": "a@example.com"},
            timeout=5,
        )
        assert r.status_code == 200 and r.json()["object"] == "customer"
        # HTTPS on the next port, loopback only.
        assert (
            httpx.get(
                f"https://127.0.0.1:{port + 1}/v1/customers",
                headers={"Authorization": "Bearer sk_test_123"},
                verify=False,
                timeout=5,
            ).status_code
            == 200
        )

        (again,) = stack.ensure_up(["stripe-mock"], settings=settings, say=said.append)
        assert again.pid == first.pid

        stack.down(["stripe-mock"], settings=settings, say=said.append)
        assert not pid_alive(first.pid)
        assert not stripe_mock.pid_file(settings).exists()
        assert stripe_mock.probe(settings) is not None
    finally:
        stack.down(["stripe-mock"], settings=settings, say=said.append)


def test_clickhouse_up_creates_its_directory(private_data_dir: Path) -> None:
    path = private_data_dir / "ch"
    settings = settings_with(data_dir=private_data_dir, clickhouse_url=f"chdb://{path}")
    (row,) = stack.ensure_up(["clickhouse"], settings=settings, say=lambda _: None)
    assert path.is_dir()
    assert row.healthy and row.mode == "embedded" and row.address == f"chdb://{path}"
    assert "not open" in row.detail
