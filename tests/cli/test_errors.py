"""What a person sees when a `billing` command goes wrong: a message and a non-zero exit
code, never a traceback. The commands run in this process (typer's CliRunner, stdout and
stderr apart) against the test database that tests/conftest.py puts in DATABASE_URL; the
installed script (.venv/bin/billing) runs as its own process where that is the point: its
exit code, and chDB held by another process.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app, dev_banner

BILLING = Path(sys.executable).parent / "billing"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def billing(*args: str, env: dict[str, str] | None = None) -> Ran:
    """The command in this process, read like a finished process; an exception that
    escaped it (a traceback for a person) fails the test."""
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return Ran(result.exit_code, result.stdout, result.stderr)


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `billing` script, as a person runs it."""
    done = subprocess.run(
        [str(BILLING), *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def refused(done: Ran | subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 1, nothing on stdout, and exactly `message` as one line on stderr."""
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"error: {message}\n")


def test_the_installed_script_answers_an_unknown_organization_with_a_message_and_exit_1(database_url: str) -> None:
    unknown = "org_" + "u" * 24
    refused(script("org", "keys", "list", unknown), f"No such organization: '{unknown}'")


@pytest.fixture
def organization(database_url: str) -> dict[str, str]:
    done = billing("org", "create", "CLI errors")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_unknown_organization_is_named_by_every_keys_command(database_url: str) -> None:
    unknown = "org_" + "x" * 24
    for args in (
        ("list", unknown),
        ("create", unknown),
        ("roll", unknown, "key_" + "y" * 24),
        ("revoke", unknown, "key_" + "y" * 24),
    ):
        refused(billing("org", "keys", *args), f"No such organization: '{unknown}'")


def test_a_wrong_key_id_is_refused_and_another_organizations_key_is_left_alone(
    organization: dict[str, str],
) -> None:
    other = json.loads(billing("org", "create", "Other").stdout)
    org = organization["organization"]
    hint = f" among the active keys of {org} (`billing org keys list {org}`)"
    for command in ("roll", "revoke"):
        for key in ("key_" + "z" * 24, other["apiKeyId"]):
            refused(billing("org", "keys", command, org, key), f"No such api key: '{key}'{hint}")
    listed = [json.loads(line) for line in billing("org", "keys", "list", other["organization"]).stdout.splitlines()]
    assert [(k["id"], k["revokedAt"]) for k in listed] == [(other["apiKeyId"], None)]


def test_a_revoked_key_cannot_be_revoked_or_rolled_again(organization: dict[str, str]) -> None:
    org, key = organization["organization"], organization["apiKeyId"]
    done = billing("org", "keys", "revoke", org, key)
    assert (done.returncode, done.stdout) == (0, f"revoked {key}\n")
    hint = f" among the active keys of {org} (`billing org keys list {org}`)"
    refused(billing("org", "keys", "revoke", org, key), f"No such api key: '{key}'{hint}")
    refused(billing("org", "keys", "roll", org, key), f"No such api key: '{key}'{hint}")


def test_roll_prints_the_new_key_id_and_when_the_old_one_stops(organization: dict[str, str]) -> None:
    org, old = organization["organization"], organization["apiKeyId"]
    before = datetime.now(UTC)
    done = billing("org", "keys", "roll", org, old, "--expires-in-seconds", "3600")
    assert done.returncode == 0, done.stderr
    rolled = json.loads(done.stdout)
    assert rolled["apiKeyId"] != old and rolled["apiKeyId"].startswith("key_") and rolled["replaces"] == old
    assert rolled["secret"].startswith("sk_")
    stops = datetime.fromisoformat(rolled["oldKeyStopsWorkingAt"])
    assert before + timedelta(seconds=3590) < stops < datetime.now(UTC) + timedelta(seconds=3610)
    listed = {k["id"]: k for k in map(json.loads, billing("org", "keys", "list", org).stdout.splitlines())}
    assert set(listed) == {old, rolled["apiKeyId"]}
    assert datetime.fromisoformat(listed[old]["expiresAt"]) == stops and listed[old]["revokedAt"] is None

    again = json.loads(billing("org", "keys", "roll", org, rolled["apiKeyId"]).stdout)  # no grace: revoked now
    assert again["replaces"] == rolled["apiKeyId"] and again["apiKeyId"] not in listed
    revoked = {k["id"]: k for k in map(json.loads, billing("org", "keys", "list", org).stdout.splitlines())}
    assert revoked[rolled["apiKeyId"]]["revokedAt"] is not None
    assert datetime.fromisoformat(revoked[rolled["apiKeyId"]]["revokedAt"]) == datetime.fromisoformat(
        again["oldKeyStopsWorkingAt"]
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("org", "keys", "list", "bad"), "'bad' is not an organization id"),
        (("org", "keys", "list", ""), "'' is not an organization id"),
        (("org", "keys", "list", "org_a\x01b"), "is not an organization id"),
        (("org", "keys", "roll", "org_" + "x" * 24, "nope"), "'nope' is not an api key id"),
        (("org", "keys", "revoke", "org_" + "x" * 24, "cus_" + "x" * 24), "is not an api key id"),
        (
            ("org", "keys", "roll", "org_" + "x" * 24, "key_" + "x" * 24, "--expires-in-seconds", "-1"),
            "'--expires-in-seconds'",
        ),
        (("org", "create", ""), "give 1 to 200 characters (got 0)"),
        (("org", "create", "n" * 201), "give 1 to 200 characters (got 201)"),
        (("analytics", "usage", "--org", "acme", "--meter", "api_call"), "'acme' is not an organization id"),
        (("renewals", "run", "--organization", "acme"), "'acme' is not an organization id"),
        (("scheduler", "--batch-size", "0"), "'--batch-size'"),
    ],
)
def test_a_malformed_argument_is_a_usage_error(args: tuple[str, ...], says: str) -> None:
    done = billing(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert says in " ".join(re.sub(r"[│╭╮╰╯─]", " ", done.stderr).split()), done.stderr


def test_renewals_run_refuses_a_time_not_come_or_unreadable() -> None:
    done = billing("renewals", "run", "--until", "2999-01-01T00:00:00Z")
    assert done.returncode == 1 and done.stderr.startswith("error: --until 2999-01-01T00:00:00+00:00 is in the future")
    refused(
        billing("renewals", "run", "--until", "soon"),
        "cannot read 'soon' as a time (ISO-8601, epoch seconds, or 6h / 2d)",
    )


def _free_port() -> int:
    """A port nothing listens on (for now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_postgres_out_of_reach_or_refusing_is_a_message(database_url: str) -> None:
    port = _free_port()
    away = f"postgresql+asyncpg://billing:billing@127.0.0.1:{port}/billing"
    for args in (("org", "keys", "list", "org_" + "x" * 24), ("org", "create", "Acme"), ("migrate",)):
        done = billing(*args, env={"DATABASE_URL": away})
        assert (done.returncode, done.stdout) == (1, "") and done.stderr.count("\n") == 1
        assert done.stderr.startswith(f"error: cannot reach Postgres at 127.0.0.1:{port}/billing (")
        assert done.stderr.endswith("start the local stack with `billing stack up`, or set DATABASE_URL\n")
    missing = re.sub(r"/[^/]+$", "/no_such_database", database_url)
    done = billing("org", "keys", "list", "org_" + "x" * 24, env={"DATABASE_URL": missing})
    refused(done, done.stderr.removeprefix("error: ").rstrip("\n"))
    assert 'refused the connection (database "no_such_database" does not exist); check DATABASE_URL' in done.stderr


def test_a_clickhouse_server_out_of_reach_is_a_message() -> None:
    port = _free_port()
    away = {"CLICKHOUSE_URL": f"clickhouse://default:@127.0.0.1:{port}/default"}
    done = billing("analytics", "usage", "--org", "org_" + "x" * 24, "--meter", "api_call", env=away)
    refused(
        done,
        f"cannot reach the ClickHouse server at 127.0.0.1:{port}; "
        "start it, or set CLICKHOUSE_URL (chdb:///path for the embedded default)",
    )


@pytest.mark.unit
def test_unwritable_export_directory_and_unreadable_rates_file(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    refused(
        billing("contracts", "export", "--out", str(tmp_path / "a-file" / "contracts")),
        f"cannot write to {tmp_path / 'a-file' / 'contracts'}: Not a directory",
    )
    missing = tmp_path / "rates.csv"
    refused(billing("fx", "import", str(missing)), f"{missing}: [Errno 2] No such file or directory: '{missing}'")
    missing.write_bytes(b"base,quote,rate,source,as_of\n\xff\xfe\n")
    done = billing("fx", "import", str(missing))
    refused(done, f"{missing}: 'utf-8' codec can't decode byte 0xff in position 29: invalid start byte")


# -- chDB held by another process (what `make dev` does) and the dev banner -------------


SEED_EVENTS = """
import sys
from analytics.ingest import BatchProcessor
from analytics.migrations import migrate
from analytics.store import get_store
from tests.analytics.helpers import EVENTS_TOPIC, USAGE_TOPIC, event_payload, message

store = get_store()
migrate(store)
org = sys.argv[1]
messages = [message(event_payload(org, f"ev-{i}", customer="cus_cli", value=v)) for i, v in enumerate(("1.5", 2, 3))]
result = BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC]).process(messages)
assert (result.usage_inserted, result.dead_letters) == (3, 0), result
"""


@pytest.fixture(scope="module")
def api_holding_chdb(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], dict[str, str], int]]:
    """`billing api` on a free port, holding a chDB directory with three events of an
    organization (it opens chDB at its first analytics request, as `billing dev` does)."""
    organization = json.loads(billing("org", "create", "Analytics").stdout)
    tmp_path = tmp_path_factory.mktemp("chdb-held")
    port = _free_port()
    env = {"CLICKHOUSE_URL": f"chdb://{tmp_path / 'clickhouse'}", "BILLING_API_PORT": str(port)}
    seeded = subprocess.run(
        [sys.executable, "-c", SEED_EVENTS, organization["organization"]],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seeded.returncode == 0, seeded.stderr
    log = (tmp_path / "api.log").open("w")
    api = subprocess.Popen([str(BILLING), "api"], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.TransportError:
                pass
            assert api.poll() is None and time.monotonic() < deadline, (tmp_path / "api.log").read_text()
            time.sleep(0.2)
        yield env, organization, api.pid
    finally:
        api.kill()  # nothing of it is kept; a clean stop waits ~10 s on its Kafka clients
        api.wait(timeout=30)
        log.close()


def test_analytics_usage_while_another_process_holds_chdb_says_who_and_how_to_get_the_figures(
    api_holding_chdb: tuple[dict[str, str], dict[str, str], int],
) -> None:
    env, organization, api_pid = api_holding_chdb
    org, secret = organization["organization"], organization["secret"]
    alone = script("analytics", "usage", "--org", org, "--meter", "api_call", env=env)
    assert (alone.returncode, alone.stdout) == (0, "total\t6.5\t3 events\n"), alone.stderr

    port = env["BILLING_API_PORT"]
    held = httpx.get(
        f"http://127.0.0.1:{port}/v1/analytics/usage",
        params={"eventName": "api_call", "aggregation": "sum"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert held.status_code == 200, held.text  # the API process has opened the chDB directory now

    done = script("analytics", "usage", "--org", org, "--meter", "api_call", env=env)
    lines = done.stderr.splitlines()
    assert (done.returncode, done.stdout, len(lines)) == (1, "", 4), done.stderr
    directory = env["CLICKHOUSE_URL"].removeprefix("chdb://")
    assert lines[0].startswith(f"error: the analytics store {directory} is open in another process (pid {api_pid}: ")
    assert "billing api" in lines[0] and lines[0].endswith("chDB lets one process at a time use its directory.")
    assert lines[1] == f"The same figures from the running API (KEY: a secret key of {org}):"
    assert lines[3] == "or stop that process and run this again."
    # the curl it gives answers the same figure
    curl = subprocess.run(
        ["bash", "-c", lines[2]], env={**os.environ, "KEY": secret}, capture_output=True, text=True, timeout=30
    )
    assert lines[2].startswith(f"  curl -s -G http://127.0.0.1:{port}/v1/analytics/usage ")
    answer = json.loads(curl.stdout)
    assert [(row["value"], row["eventCount"]) for row in answer["data"]] == [("6.5", 3)]

    for command in (("analytics", "migrate"), ("analytics", "replay", "--since", "1h")):
        other = script(*command, env=env)
        assert other.returncode == 1 and other.stderr.startswith(f"error: the analytics store {directory} is open")
        assert other.stderr.endswith("`billing dev --no-analytics` so that it leaves the store to this command.\n")


def test_every_url_of_the_dev_banner_answers(api_holding_chdb: tuple[dict[str, str], dict[str, str], int]) -> None:
    env, organization, _ = api_holding_chdb
    secret = organization["secret"]
    base = f"http://127.0.0.1:{env['BILLING_API_PORT']}"
    banner = dev_banner(base, secret)
    urls = set(re.findall(r"http://[^\s()';]+", banner))
    assert {f"{base}/v1/customers", f"{base}/schema", f"{base}/schema/swagger", f"{base}/health"} <= urls
    for url in urls:
        response = httpx.get(url, headers={"Authorization": f"Bearer {secret}"}, follow_redirects=True, timeout=30)
        assert response.status_code == 200, (url, response.status_code)
