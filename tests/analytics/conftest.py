"""Analytics test fixtures.

One chDB engine per process, at one path: the whole test session shares one store in a
temp directory (session-scoped `store`), and tests isolate themselves by using their own
organization ids (`org` fixture), never by opening another store.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.migrations import migrate
from analytics.store import AnalyticsStore, get_store


@pytest.fixture(scope="session")
def store_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="analytics-test-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def store(store_dir: Path) -> Iterator[AnalyticsStore]:
    url = os.environ.get("ANALYTICS_TEST_CLICKHOUSE_URL") or f"chdb://{store_dir / 'clickhouse'}"
    s = get_store(url)
    migrate(s)
    yield s
    s.close()  # lets a later part of the session open chDB at another path


@pytest.fixture
def org() -> str:
    return f"org_{uuid.uuid4().hex[:12]}"


# --- real Kafka ----------------------------------------------------------------------------

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402

from contracts.settings import Settings, get_settings  # noqa: E402

TEST_TOPICS = {"usage.events": 6, "billing.events": 6}


async def _kafka_reachable(bootstrap: str) -> str | None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        await asyncio.wait_for(admin.list_topics(), 10)
        return None
    except Exception as exc:
        return repr(exc)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


@pytest.fixture(scope="session")
async def kafka_settings(store: AnalyticsStore):
    """Settings with a random KAFKA_TOPIC_PREFIX whose topics exist (deleted afterwards).
    Kafka must be running: the tests fail (never skip) when it is not."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    base = get_settings()
    error = await _kafka_reachable(base.kafka_bootstrap_servers)
    if error is not None:
        pytest.fail(
            f"Kafka is not reachable at {base.kafka_bootstrap_servers} ({error}): run `billing stack up` "
            "(or set KAFKA_BOOTSTRAP_SERVERS)",
            pytrace=False,
        )
    prefix = f"test-analytics-{uuid.uuid4().hex[:8]}."
    settings: Settings = dataclasses.replace(base, kafka_topic_prefix=prefix, clickhouse_url=store.url)
    admin = AIOKafkaAdminClient(bootstrap_servers=base.kafka_bootstrap_servers, request_timeout_ms=30000)
    await admin.start()
    names = [f"{prefix}{t}" for t in TEST_TOPICS]
    try:
        await admin.create_topics([NewTopic(f"{prefix}{t}", n, 1) for t, n in TEST_TOPICS.items()])
        for _ in range(100):  # wait for the leaders
            described = await admin.describe_topics(names)
            if all(d.get("error_code", 0) == 0 and len(d.get("partitions", [])) > 0 for d in described):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"topics {names} have no leader after 10 s: check `billing stack status`", pytrace=False)
        yield settings
    finally:
        try:
            await admin.delete_topics(names)
        finally:
            await admin.close()
