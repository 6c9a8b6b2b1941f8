"""The store (one per URL and process) and the migration runner."""

from __future__ import annotations

import pytest

from analytics.migrations import MIGRATIONS_DIR, MigrationError, discover, migrate
from analytics.store import StoreError, get_store, parse_store_url


@pytest.mark.unit
def test_url_parsing():
    t = parse_store_url("clickhouse://u:p%40ss@ch.example:8124/analytics")
    assert (t.kind, t.host, t.port, t.username, t.password, t.database) == (
        "clickhouse",
        "ch.example",
        8124,
        "u",
        "p@ss",
        "analytics",
    )
    assert parse_store_url("clickhouses://ch/x").port == 8443 and parse_store_url("clickhouses://ch/x").secure
    assert parse_store_url("chdb:///tmp/a/../b").path == "/tmp/b"
    assert parse_store_url("chdb://memory").path is None
    for bad in ("chdb://relative/path", "postgres://x/y", "chdb:relative"):
        with pytest.raises(StoreError):
            parse_store_url(bad)


def test_store_is_a_per_url_singleton(store):
    assert get_store(store.url) is store
    assert get_store(store.url + "/") is store  # same directory, other spelling


def test_a_second_chdb_path_is_refused(store, tmp_path):
    # against a ClickHouse server (ANALYTICS_TEST_CLICKHOUSE_URL) this process has no chDB
    # path yet: open one first, so the rule is checked in either configuration
    if store.kind != "chdb":
        assert get_store(f"chdb://{tmp_path / 'first'}").kind == "chdb"
    with pytest.raises(StoreError, match="one chDB engine path per process"):
        get_store(f"chdb://{tmp_path / 'second'}")


def test_parameters_are_bound_not_formatted(store):
    evil = "x' OR 1=1 --"
    assert store.query("SELECT {v:String}", {"v": evil}) == [(evil,)]
    assert store.query("SELECT count() FROM usage_events WHERE organization_id = {o:String}", {"o": evil}) == [(0,)]


def test_migrations_are_idempotent_and_recorded(store):
    assert migrate(store) == []
    assert migrate(store) == []
    versions = [v for (v,) in store.query("SELECT version FROM schema_migrations FINAL ORDER BY version")]
    assert versions == [m.version for m in discover()]
    tables = {t for (t,) in store.query("SHOW TABLES")}
    assert {
        "usage_events",
        "usage_dead_letters",
        "interactions",
        "usage_hourly",
        "usage_daily",
        "usage_events_by_time",
    } <= tables


def test_every_tenant_table_orders_by_organization_first(store):
    rows = store.query(
        "SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase() "
        "AND engine LIKE '%MergeTree' AND name != 'schema_migrations'"
    )
    assert rows and all(key.startswith("organization_id") for _name, key in rows), rows


def test_no_float_columns(store):
    rows = store.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() AND type ILIKE '%float%'"
    )
    assert rows == []


def test_a_changed_applied_migration_is_an_error(store, tmp_path):
    for m in discover():
        (tmp_path / m.path.name).write_text(m.sql)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(store, tmp_path)


@pytest.mark.unit
def test_statements_split():
    m = discover(MIGRATIONS_DIR)[3]
    assert len(m.statements()) == 4
