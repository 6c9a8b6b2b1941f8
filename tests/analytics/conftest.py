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
