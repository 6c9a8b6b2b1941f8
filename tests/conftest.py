"""Shared fixtures: the real services of the local stack (`billing stack up`).

Tests run against a database of their own (`billing_test_<random>`, created per run,
migrated with Alembic and dropped at the end) on the stack's Postgres, so a running
`make dev` keeps its data. A missing
service fails the test with the command that starts it; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

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


def _test_database_url() -> str:
    return make_url(get_settings().database_url).set(database=TEST_DATABASE).render_as_string(hide_password=False)


def pytest_configure(config: pytest.Config) -> None:
    # Every process the tests start (consumers, API) inherits the test database and this
    # run's own Kafka topics, so a running `make dev` is never disturbed.
    os.environ["DATABASE_URL"] = _test_database_url()
    os.environ.setdefault("KAFKA_TOPIC_PREFIX", f"test-{uuid.uuid4().hex[:8]}.")


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


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A freshly created and migrated test database, dropped after the run."""
    from billing.db.migrate import upgrade

    admin = await _connect_admin()
    try:
        await admin.execute(f"CREATE DATABASE {TEST_DATABASE}")
    finally:
        await admin.close()
    url = os.environ["DATABASE_URL"]
    # Alembic's env runs its own event loop: keep it off this one
    await asyncio.to_thread(upgrade, url)
    yield url
    admin = await _connect_admin()
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEST_DATABASE} WITH (FORCE)")
    finally:
        await admin.close()


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
