"""Versioned ClickHouse DDL and its runner.

Files `NNNN_name.sql` in this folder are applied in version order; statements are
separated by `;` at the end of a line, `--` lines are comments. Every statement is written
`IF NOT EXISTS`, so re-running a half-applied migration is safe. The runner records each
applied version (with a checksum of its file) in `schema_migrations`; `migrate()` is
idempotent and cheap when everything is applied (one query). Changing a file that is
already applied raises `MigrationError`: add a new version instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from analytics.store import AnalyticsStore

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_lock = threading.Lock()

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _FILE_RE.match(path.name)
        if not m:
            raise MigrationError(f"bad migration file name {path.name!r} (want NNNN_name.sql)")
        found.append(Migration(int(m.group(1)), m.group(2), path, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def applied_versions(store: AnalyticsStore) -> dict[int, str]:
    store.command(SCHEMA_MIGRATIONS_DDL)
    rows = store.query("SELECT version, argMax(checksum, applied_at) FROM schema_migrations GROUP BY version")
    return {int(v): c for v, c in rows}


def migrate(store: AnalyticsStore, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the pending migrations; return the versions applied now (empty if none)."""
    with _lock:
        done = applied_versions(store)
        newly: list[int] = []
        for migration in discover(directory):
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.path.name} changed after it was applied; add a new version instead"
                    )
                continue
            log.info("applying ClickHouse migration %s", migration.path.name)
            for statement in migration.statements():
                store.command(statement)
            store.insert(
                "schema_migrations",
                [[migration.version, migration.name, migration.checksum]],
                column_names=["version", "name", "checksum"],
            )
            newly.append(migration.version)
        return newly
