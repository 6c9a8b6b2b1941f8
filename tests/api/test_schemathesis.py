"""schemathesis over /schema/openapi.json against the real API (the one the analytics API
tests use, tests/api/test_usage_events.py `analytics_api`: uvicorn in this event loop, the
command and analytics consumers beside it, the test chDB store, Kafka and Postgres of the
stack), as one organization of its own.

Bounded to stay fast: a fixed seed, a few examples per operation (the counts still vary a
little between runs: the stateful chains follow the ids the API answers), every phase (the schema's examples, coverage,
fuzzing, and the stateful phase that chains operations through the links schemathesis
infers, and the links api/openapi.py adds). The checks: no 5xx, and every answer's status,
content type, headers and body are the ones the spec documents. Zero failures; the
figures are printed.

schemathesis runs as its CLI in a subprocess: it is synchronous, and the API it calls is
served by this process's event loop, which must stay free to answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import new_tenant
from tests.api.test_usage_events import AnalyticsStack, analytics_api  # noqa: F401  (analytics_api: a fixture)

SEED = 20261204
MAX_EXAMPLES = 3
# the stateful phase's own examples setting: about this many scenarios (chains of operations through links)
STATEFUL_SCENARIOS = 50
CONFIG = f"""
[generation]
max-examples = {MAX_EXAMPLES}

[phases.stateful.generation]
max-examples = {STATEFUL_SCENARIOS}
"""
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"
PHASES = "examples,coverage,fuzzing,stateful"


def stateful_figures(output: str) -> tuple[int, str]:
    """The stateful phase's scenarios and links covered, as the CLI prints them (its JSON
    report does not carry them)."""
    scenarios = re.search(r"Scenarios:\s+(\d+)", output)
    links = re.search(r"API Links:\s+([^\n]+)", output)
    return int(scenarios.group(1)) if scenarios else 0, links.group(1).strip() if links else "none"


async def run_schemathesis(base_url: str, secret: str, report_dir: Path) -> tuple[int, str]:
    config = report_dir / "schemathesis.toml"
    config.write_text(CONFIG)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{base_url}/schema/openapi.json",
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {secret}",
        "--checks",
        CHECKS,
        "--phases",
        PHASES,
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--max-failures",
        "50",
        "--no-color",
        "--report",
        "json,junit",
        "--report-dir",
        str(report_dir),
        cwd=report_dir,  # its cache (.schemathesis/) goes there, not into the checkout
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


async def test_schemathesis_finds_nothing(
    analytics_api: AnalyticsStack,
    session_factory: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # an organization of its own: what schemathesis creates and deletes touches no other test's
    tenant = await new_tenant(session_factory, "schemathesis")
    started = time.monotonic()
    code, output = await run_schemathesis(str(analytics_api.client.base_url).rstrip("/"), tenant.secret, tmp_path)
    seconds = time.monotonic() - started
    reports = list(tmp_path.glob("json-*.json"))
    assert len(reports) == 1, output[-8000:]
    report = json.loads(reports[0].read_text())
    operations, cases = report["operations"], report["test_cases"]
    scenarios, links = stateful_figures(output)
    with capsys.disabled():
        print(
            f"\nschemathesis: {operations['tested']} of {operations['total']} operations, {cases['generated']} test cases "
            f"(requests), {cases['unique_failures']} failures, {len(report['errors'])} errors, stateful {scenarios} "
            f"scenarios (links {links}), {seconds:.1f} s"
        )
    assert code == 0 and report["failures"] == [] and report["errors"] == [], output[-8000:]
    assert operations["tested"] == operations["total"] >= 40, operations
    assert {name: phase["status"] for name, phase in report["phases"].items()} == dict.fromkeys(
        PHASES.split(","), "success"
    )
    assert cases["generated"] > 1000 and cases["with_failures"] == 0, cases
    assert scenarios > 0, output[-4000:]
