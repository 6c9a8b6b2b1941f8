"""What the API answers 503 for (api/errors.py database_unavailable): Postgres out of
reach, as the real driver and SQLAlchemy report it; a wrong query stays an error of its own."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api.errors import database_unavailable
from tests.stack.conftest import free_port_pair


def _asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


async def test_a_terminated_backend_is_unavailable(database_url: str) -> None:
    victim = await asyncpg.connect(_asyncpg_dsn(database_url))
    killer = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        # what a Postgres shutdown does to every session: SQLSTATE 57P01 (admin shutdown)
        await killer.execute("select pg_terminate_backend($1)", victim.get_server_pid())
        async with asyncio.timeout(5):
            while not victim.is_closed():  # the server's FATAL message read, as a pooled connection would
                await asyncio.sleep(0.01)
        with pytest.raises(Exception) as caught:
            await victim.fetchval("select 1")
        assert database_unavailable(caught.value), repr(caught.value)
    finally:
        await killer.close()
        victim.terminate()


async def test_a_refused_connection_through_sqlalchemy_is_unavailable() -> None:
    engine = create_async_engine(f"postgresql+asyncpg://billing:billing@127.0.0.1:{free_port_pair()}/billing")
    try:
        with pytest.raises(Exception) as caught:
            async with engine.connect() as connection:
                await connection.execute(text("select 1"))
        assert database_unavailable(caught.value), repr(caught.value)
        assert database_unavailable(BaseExceptionGroup("cleanup of dependencies", [caught.value]))
    finally:
        await engine.dispose()


async def test_a_wrong_query_is_not_unavailable(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        with pytest.raises(Exception) as caught:
            async with engine.connect() as connection:
                await connection.execute(text("select * from no_such_table"))
        assert not database_unavailable(caught.value)
    finally:
        await engine.dispose()
