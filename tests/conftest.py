"""Shared fixtures: the real services of the local stack (`billing stack up`).

Tests run against a database of their own (`billing_test_<random>`, created per run,
migrated with Alembic and dropped at the end) on the stack's Postgres, so a running
`make dev` keeps its data. A missing
service fails the test with the command that starts it; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.abc import MetaPathFinder
from pathlib import Path
from typing import NoReturn

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import make_url

from contracts.settings import get_settings

# the tests run on the local stack (`make test` says so too; a bare `pytest` as well)
os.environ.setdefault("BILLING_ENV", "local")

# `make test` must give the same answer twice: the same examples every run, and no timing
# checks (a 2-core box under load misses the 200 ms deadline and trips "too slow").
# HYPOTHESIS_PROFILE=explore draws new examples each run to hunt for counterexamples.
_UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
hypothesis_settings.register_profile("repeatable", derandomize=True, **_UNTIMED)
hypothesis_settings.register_profile("explore", **_UNTIMED)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# one database per run: several runs (developers, CI) may share one Postgres
TEST_DATABASE = f"billing_test_{uuid.uuid4().hex[:8]}"
START_HINT = "start the local stack with `billing stack up` (or run `make test`, which does it)"


# The quick loop, `pytest -m unit`: the tests of pure rules, with no service started or
# reached. A test marked `unit` that asks for one of these (directly or through another
# fixture) is refused at collection, in every run; a unit run also blocks, at run time,
# what the fixtures cannot show (a socket connect, a subprocess, chDB).
SERVICE_FIXTURES = frozenset(
    {
        "database_url",  # Postgres (engine, session_factory and the tenants build on it)
        "stripe_api_base",  # stripe-mock
        "kafka_topics",  # Kafka (command_consumer and api build on it)
        "kafka_settings",  # Kafka, for the analytics consumer
        "store",  # chDB (or ClickHouse)
        "live_stack",  # the whole shared stack
        "private_data_dir",  # private instances of the stack's servers
    }
)
UNIT_RUN = pytest.StashKey[bool]()
_UNIT_GUARD = pytest.StashKey[pytest.MonkeyPatch]()


def _test_database_url() -> str:
    return make_url(get_settings().database_url).set(database=TEST_DATABASE).render_as_string(hide_password=False)


def pytest_configure(config: pytest.Config) -> None:
    # Every process the tests start (consumers, API) inherits the test database and this
    # run's own Kafka topics, so a running `make dev` is never disturbed.
    os.environ["DATABASE_URL"] = _test_database_url()
    os.environ.setdefault("KAFKA_TOPIC_PREFIX", f"test-{uuid.uuid4().hex[:8]}.")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # `-m unit` leaves most modules out: it does not import them (the API, the consumers,
    # the stack) only to deselect every test they hold
    if config.option.markexpr.strip() != "unit" or not collection_path.name.startswith("test_"):
        return None
    if collection_path.suffix == ".py" and "mark.unit" not in collection_path.read_text():
        return True
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # before `-m` deselects anything: a wrongly marked test fails `make test` as well
    refused = [
        f"  {item.nodeid} uses {', '.join(sorted(SERVICE_FIXTURES.intersection(item.fixturenames)))}"
        for item in items
        if item.get_closest_marker("unit") and SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    ]
    if refused:
        raise pytest.UsageError(
            "a test marked `unit` must not use a service fixture (drop its mark, or its fixture):\n"
            + "\n".join(refused)
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    unit_run = bool(session.items) and all(item.get_closest_marker("unit") for item in session.items)
    session.config.stash[UNIT_RUN] = unit_run
    # Whole-session, and only when every selected test is a unit test: in a mixed run the
    # session's consumer and API keep talking to Kafka and Postgres between tests.
    if unit_run and not session.config.option.collectonly:
        session.config.stash[_UNIT_GUARD] = _block_services()


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(_UNIT_GUARD, None)
    if guard is not None:
        guard.undo()


def _refuse(what: str) -> NoReturn:
    test = os.environ.get("PYTEST_CURRENT_TEST", "outside a test").rsplit(" (", 1)[0]
    pytest.fail(f"a unit test must not reach services: {test} tried to {what}", pytrace=False)


class _NoChdb(MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname.partition(".")[0] in {"chdb", "chdb_core"}:
            _refuse(f"import {fullname} (the chDB engine)")


def _block_services() -> pytest.MonkeyPatch:
    # the Stripe SDK's user agent reads platform.uname(), whose processor runs `uname -p`
    # once per process (and caches it): a fact about this machine, so it is asked first
    platform.processor()
    guard = pytest.MonkeyPatch()

    def refusing(what: str) -> Callable[..., NoReturn]:
        def refused(*args: object, **kwargs: object) -> NoReturn:
            _refuse(what)

        return refused

    def refused_connect(sock: socket.socket, address: object) -> NoReturn:
        _refuse(f"connect a socket to {address!r}")

    # every TCP or Unix client (asyncpg, aiokafka, httpx, asyncio's open_connection) connects here
    guard.setattr(socket.socket, "connect", refused_connect)
    guard.setattr(socket.socket, "connect_ex", refused_connect)

    def refused_subprocess(popen: subprocess.Popen[bytes], args: object, *rest: object) -> NoReturn:
        _refuse(f"start a subprocess: {args!r}")

    # every subprocess (asyncio's too) is started here
    guard.setattr(subprocess.Popen, "_execute_child", refused_subprocess)
    for name in ("system", "posix_spawn", "posix_spawnp", "fork"):
        guard.setattr(os, name, refusing(f"start a process (os.{name})"))
    # chDB runs in this process, so neither of the above sees it
    guard.setattr(sys, "meta_path", [_NoChdb(), *sys.meta_path])
    chdb = sys.modules.get("chdb")
    if chdb is not None:
        for name in ("connect", "query"):
            guard.setattr(chdb, name, refusing(f"open the chDB engine (chdb.{name})"))
    return guard


async def _delete_run_topics(prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]

    admin = AIOKafkaAdminClient(bootstrap_servers=get_settings().kafka_bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        ours = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # each run makes its own topics (and some tests sub-prefixed ones): left behind, they
    # add up to thousands of partitions that a developer's broker reloads at every start
    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
    if not prefix.startswith("test-"):
        return
    # a run that ran no test, or only unit tests, made no topics: Kafka is not even asked
    if session.config.option.collectonly or session.config.stash.get(UNIT_RUN, False):
        return
    try:
        asyncio.run(_delete_run_topics(prefix))
    except Exception as error:  # Kafka already gone: nothing of ours is left to tidy
        print(f"\nleft this run's Kafka topics ({prefix}*) in place: {error!r}")


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _connect_admin() -> asyncpg.Connection:
    url = make_url(os.environ["DATABASE_URL"]).set(database="postgres")
    try:
        return await asyncpg.connect(asyncpg_dsn(url.render_as_string(hide_password=False)), timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"Postgres is not reachable at {url.host}:{url.port} ({error}): {START_HINT}", pytrace=False)


@asynccontextmanager
async def migrated_database(name: str) -> AsyncIterator[str]:
    """A freshly created and migrated database on the test server, dropped afterwards: its URL."""
    from billing.db.migrate import upgrade

    admin = await _connect_admin()
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = make_url(os.environ["DATABASE_URL"]).set(database=name).render_as_string(hide_password=False)
    # Alembic's env runs its own event loop: keep it off this one
    await asyncio.to_thread(upgrade, url)
    try:
        yield url
    finally:
        admin = await _connect_admin()
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """The run's test database."""
    async with migrated_database(TEST_DATABASE) as url:
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[object]:
    from billing.db.sessions import create_engine

    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def session_factory(engine: object) -> object:
    from billing.db.sessions import create_session_factory

    return create_session_factory(engine)


@pytest.fixture(scope="session")
def stripe_api_base() -> str:
    base = get_settings().stripe_api_base.rstrip("/")
    try:
        response = httpx.get(f"{base}/v1/customers", auth=("sk_test_123", ""), timeout=5)
    except httpx.HTTPError as error:
        pytest.fail(
            f"stripe-mock is not reachable at {base} ({type(error).__name__}: {error}): "
            "start the local stack with `billing stack up` (or point STRIPE_API_BASE at a running stripe-mock)",
            pytrace=False,
        )
    if response.status_code != 200 or "stripe-mock-version" not in response.headers:
        pytest.fail(
            f"{base} answered {response.status_code} and is not stripe-mock: run `billing stack up` "
            "or point STRIPE_API_BASE at stripe-mock",
            pytrace=False,
        )
    return base
