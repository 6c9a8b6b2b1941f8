"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check what
can be checked without one. The YAML parses; the Python services use only the settings
names of contracts/settings.py and commands the CLI has; the one-shot services run before
the long-running ones; every package of the wheel is copied into the image."""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from analytics.store import parse_store_url
from contracts.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
OUR_IMAGE = "billing-platform:local"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run this project's image."""
    services = {name: s for name, s in compose["services"].items() if s.get("image") == OUR_IMAGE}
    assert set(services) == {"migrate", "topics", "api", "consumer", "analytics"}
    return services


def settings_names() -> set[str]:
    names = set(
        re.findall(r"""_env\(\s*["']([A-Z0-9_]+)["']""", (PROJECT_ROOT / "contracts" / "settings.py").read_text())
    )
    assert {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL", "BILLING_API_HOST"} <= names
    return names


def test_python_services_use_only_the_settings_names(ours: dict[str, dict[str, Any]]) -> None:
    known = settings_names()
    for name, service in ours.items():
        environment = service["environment"]
        assert isinstance(environment, dict), name
        unknown = set(environment) - known
        assert not unknown, f"{name}: {sorted(unknown)} are not read by contracts/settings.py"
        for required in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL"):
            assert environment.get(required), f"{name} lacks {required}"
        assert service["build"] == "." and service["volumes"] == ["billing-data:/data"]


def test_the_urls_point_at_the_compose_services(compose: dict[str, Any], ours: dict[str, dict[str, Any]]) -> None:
    environment = ours["api"]["environment"]
    database = make_url(environment["DATABASE_URL"])
    postgres = compose["services"]["postgres"]["environment"]
    assert database.drivername == "postgresql+asyncpg" and database.host == "postgres" and database.port == 5432
    assert (database.username, database.password, database.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert compose["services"]["postgres"]["image"].startswith("postgres:15")

    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:") and "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert f"INTERNAL://{environment['KAFKA_BOOTSTRAP_SERVERS']}" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]

    clickhouse = parse_store_url(environment["CLICKHOUSE_URL"])
    assert (clickhouse.kind, clickhouse.host, clickhouse.port) == ("clickhouse", "clickhouse", 8123)
    assert compose["services"]["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")

    assert environment["BILLING_API_HOST"] == "0.0.0.0"
    port = environment["BILLING_API_PORT"]
    assert f"{port}:{port}" in ours["api"]["ports"][0]
    assert f"127.0.0.1:{port}/health" in " ".join(ours["api"]["healthcheck"]["test"])

    # customer emails go to Mailpit's SMTP port unless SMTP_URL says otherwise
    for name in ("api", "consumer"):
        assert ours[name]["environment"]["SMTP_URL"] == "${SMTP_URL:-smtp://mailpit:1025}", name
    mailpit = compose["services"]["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit:")
    assert "127.0.0.1:1025:1025" in mailpit["ports"] and mailpit["healthcheck"]["test"]


def _command(service: dict[str, Any]) -> list[str]:
    entrypoint = service.get("entrypoint")
    if entrypoint is None:
        return ["billing", *service["command"]]
    return entrypoint if isinstance(entrypoint, list) else shlex.split(entrypoint)


def test_services_run_commands_the_cli_has(ours: dict[str, dict[str, Any]]) -> None:
    from cli.analytics import analytics_app
    from cli.main import app

    billing = {c.name or c.callback.__name__ for c in app.registered_commands}  # type: ignore[union-attr]
    analytics = {c.name or c.callback.__name__ for c in analytics_app.registered_commands}  # type: ignore[union-attr]
    assert _command(ours["api"]) == ["billing", "api"] and "api" in billing
    assert _command(ours["consumer"]) == ["billing", "consume"] and "consume" in billing
    # `billing analytics consume`: analytics_app, mounted by cli/main.py as `analytics`
    assert _command(ours["analytics"]) == ["billing", "analytics", "consume"] and "consume" in analytics

    migrate = _command(ours["migrate"])
    assert migrate[:2] == ["sh", "-c"]
    steps = [shlex.split(step) for step in migrate[2].split("&&")]
    assert steps == [["billing", "migrate"], ["billing", "analytics", "migrate"]]
    assert "migrate" in billing and "migrate" in analytics

    topics = _command(ours["topics"])
    assert topics[:2] == ["python", "-c"]
    compile(topics[2], "<topics>", "exec")
    assert "from producers.topics import ensure_topics" in topics[2]


def test_one_shot_services_finish_before_the_others_start(
    compose: dict[str, Any], ours: dict[str, dict[str, Any]]
) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    for name in ("api", "consumer", "analytics"):
        assert ours[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "topics": {"condition": "service_completed_successfully"},
        }, name
        assert ours[name]["restart"] == "unless-stopped"
    assert ours["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "clickhouse": {"condition": "service_healthy"},
    }
    assert ours["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in ("postgres", "kafka", "clickhouse"):
        assert services[name]["healthcheck"]["test"], name
    assert set(compose["volumes"]) >= {
        volume.split(":")[0] for service in services.values() for volume in service.get("volumes", [])
    }


def test_the_dockerfile_installs_the_locked_project_with_every_package() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "uv sync --frozen --no-dev" in text
    packages = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"][
        "wheel"
    ]["packages"]
    copied = set(re.findall(r"^COPY (\S+) \./\1\s*$", text, re.M))
    assert set(packages) <= copied, f"packages not copied into the image: {sorted(set(packages) - copied)}"
    assert re.search(r"^COPY pyproject\.toml uv\.lock README\.md \./$", text, re.M)
    assert re.search(r"^COPY alembic\.ini \./$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["billing"\]$', text, re.M)
