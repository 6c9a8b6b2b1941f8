"""Runs Alembic programmatically: `billing migrate`, the test fixtures and the sync test."""

from __future__ import annotations

from typing import TypedDict

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from billing.db.sessions import create_engine
from billing.models import Base
from contracts.settings import PROJECT_ROOT, get_settings


class CompareOptions(TypedDict):
    """The autogenerate comparisons Alembic's `configure` is given, as keyword arguments."""

    compare_type: bool
    compare_server_default: bool


COMPARE_OPTIONS = CompareOptions(compare_type=True, compare_server_default=True)


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url or get_settings().database_url
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def _compare(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts=COMPARE_OPTIONS)
    return list(compare_metadata(context, Base.metadata))


async def pending_model_changes(database_url: str | None = None) -> list[object]:
    """What `alembic revision --autogenerate` would write now: empty when in sync."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_compare)
    finally:
        await engine.dispose()
