"""How the settings map onto what the stack manages (pure: no servers involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import kafka, postgres, stripe_mock
from stack.base import mask_url

from .conftest import settings_with

pytestmark = pytest.mark.unit


def test_postgres_is_managed_only_on_loopback_at_the_stack_port() -> None:
    s = settings_with(postgres_port=54329, database_url="postgresql+asyncpg://billing:pw@127.0.0.1:54329/billing")
    t = postgres.target(s)
    assert t.managed and (t.host, t.port, t.user, t.password, t.database) == (
        "127.0.0.1",
        54329,
        "billing",
        "pw",
        "billing",
    )
    assert t.dsn == "postgresql://billing:pw@127.0.0.1:54329/billing"
    assert postgres.target(settings_with(database_url="postgresql+asyncpg://b:b@localhost:54329/x")).managed
    assert not postgres.target(settings_with(database_url="postgresql+asyncpg://b:b@db.internal:54329/x")).managed
    assert not postgres.target(settings_with(database_url="postgresql+asyncpg://b:b@127.0.0.1:5432/x")).managed


def test_kafka_is_managed_for_one_loopback_broker_with_the_controller_on_the_next_port() -> None:
    t = kafka.target(settings_with(kafka_bootstrap_servers="127.0.0.1:19092"))
    assert t.managed and (t.port, t.controller_port) == (19092, 19093)
    assert not kafka.target(settings_with(kafka_bootstrap_servers="kafka:9092")).managed
    assert not kafka.target(settings_with(kafka_bootstrap_servers="127.0.0.1:1,127.0.0.1:2")).managed


def test_stripe_mock_is_managed_for_local_http_with_https_on_the_next_port() -> None:
    t = stripe_mock.target(settings_with(stripe_api_base="http://127.0.0.1:12111/"))
    assert t.managed and (t.base, t.port, t.https_port) == ("http://127.0.0.1:12111", 12111, 12112)
    assert not stripe_mock.target(settings_with(stripe_api_base="https://api.stripe.com")).managed


def test_passwords_are_masked_in_messages() -> None:
    assert mask_url("postgresql+asyncpg://billing:s3cret@h:1/db") == "postgresql+asyncpg://billing:***@h:1/db"
    assert mask_url("http://127.0.0.1:12111") == "http://127.0.0.1:12111"


def test_postgres_socket_dir_stays_short_enough_for_a_unix_socket() -> None:
    short = settings_with(data_dir=Path("/work/main/.data"))
    assert postgres.socket_dir(short) == Path("/work/main/.data/postgres-run")
    deep = settings_with(data_dir=Path("/" + "/".join(["very-long-directory-name"] * 6)))
    sock = postgres.socket_dir(deep)
    assert len(str(sock / ".s.PGSQL.65535")) < 100
    assert sock == postgres.socket_dir(deep)  # stable for one data dir
