"""The README's examples run: the shell blocks of "Using the API" are run top to bottom in
one bash (as a reader pastes them into one shell) against a real `billing dev` process (the
API, the command consumer and the analytics consumer, on this run's database and topics of
its own, its own chDB, stripe-mock for the Stripe calls).

What the run changes: only the base URL (the line `API=http://127.0.0.1:8000`). Every
other line is the README's: the key comes from the README's own `billing org create`. The
blocks run with `set -Eeuo pipefail`, `curl` is run as `curl -sS --fail-with-body` (an
error status fails the block and shows its body), and PATH holds only the commands a
fresh Debian with the project's `make` has (curl, python3, billing, date, sleep), so
an example that needs something else (uuidgen, jq) fails here too. A comment
`# -> TEXT` in a block says what the block's output holds; whitespace aside, it must.

A failure names the block (its heading and README line) and the command, with the
output's tail. The figures (blocks, commands, seconds) are printed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from contracts.settings import PROJECT_ROOT
from tests.conftest import TEST_DATABASE, migrated_database

README = PROJECT_ROOT / "README.md"
WALKTHROUGH = "## Using the API"
BASE_LINE = "API=http://127.0.0.1:8000"
README_BASE = "http://127.0.0.1:8000"
# what the walk-through may call besides bash's builtins: what Debian and `make` install
TOOLS = ("curl", "python3", "date", "sleep")
MARK = "@@readme-block"
EXPECT = re.compile(r"#.*?-> (.+?)(?:  |$)")


@dataclass
class Block:
    heading: str
    line: int  # README line of the block's first line of code
    code: list[str]
    expected: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.heading!r} (README.md line {self.line})"


def walkthrough_blocks(text: str) -> list[Block]:
    """The ```bash blocks from "## Using the API" to the next "## " heading."""
    lines = text.splitlines()
    start = lines.index(WALKTHROUGH)
    blocks: list[Block] = []
    heading, current = WALKTHROUGH, None
    for number, line in enumerate(lines[start + 1 :], start + 2):
        if current is not None:
            if line.startswith("```"):
                blocks.append(current)
                current = None
            else:
                current.code.append(line)
                current.expected += [m.group(1).strip() for m in EXPECT.finditer(line)]
        elif line.startswith("## "):
            break
        elif line.startswith("### "):
            heading = line[4:]
        elif line.strip() == "```bash":
            current = Block(heading, number + 1, [])
    return blocks


def banner_urls(text: str) -> list[str]:
    """The URLs of the banner the README says `make dev` prints."""
    after = text[text.index("`make dev` prints something like:") :]
    banner = after[: after.index("```", after.index("```") + 3)]
    return re.findall(r"http://[^\s;)]+", banner)


# the preamble: run before the blocks; `curl` and `billing` log what they run
PREAMBLE = r"""
set -Eeuo pipefail
README_BLOCK=preamble
curl() {
  printf 'RUN\t%s\tcurl%s\n' "$README_BLOCK" "$(printf ' %q' "$@")" >> "$README_LOG"
  local status=0
  command curl -sS --fail-with-body "$@" || status=$?
  if [ "$status" -ne 0 ]; then printf '\nFAILED\t%s\t%s\tcurl%s\n' "$README_BLOCK" "$status" "$(printf ' %q' "$@")" >> "$README_LOG"; fi
  return "$status"
}
billing() {
  printf 'RUN\t%s\tbilling%s\n' "$README_BLOCK" "$(printf ' %q' "$@")" >> "$README_LOG"
  command billing "$@"
}
# a missing program fails the walk-through even inside $(...) in an argument, where set -e
# does not look (`-H "Idempotency-Key: $(uuidgen)"` would send no key and go on)
command_not_found_handle() {
  printf '\nFAILED\t%s\t127\t%s (command not found)\n' "$README_BLOCK" "$*" >> "$README_LOG"
  echo "$1: command not found" >&2
  return 127
}
trap 'printf "ERR\t%s\t%s\t%s\n" "$README_BLOCK" "$LINENO" "$BASH_COMMAND" >> "$README_LOG"' ERR
"""


@dataclass
class Script:
    text: str
    readme_line: dict[int, int]  # script line -> README line


def build_script(blocks: list[Block], base: str) -> Script:
    lines = PREAMBLE.splitlines()
    readme_line: dict[int, int] = {}
    substituted = 0
    for index, block in enumerate(blocks):
        lines += [f"README_BLOCK={index}", f"printf '\\n{MARK} {index}\\n'"]
        for offset, code in enumerate(block.code):
            if code.strip() == BASE_LINE or code.startswith(BASE_LINE + " "):
                code = code.replace(README_BASE, base, 1)
                substituted += 1
            lines.append(code)
            readme_line[len(lines)] = block.line + offset
    assert substituted == 1, f"the walk-through must set the base URL once with `{BASE_LINE}` (found {substituted})"
    return Script("\n".join(lines) + "\n", readme_line)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tool_path(directory: Path) -> str:
    """A PATH of only TOOLS and `billing`."""
    directory.mkdir()
    for tool in TOOLS:
        # the program itself, not a wrapper (pyenv's shims are scripts that need env and bash)
        found = shutil.which(tool, path=os.defpath) or shutil.which(tool)
        assert found, f"{tool} is not installed: the README's examples need it"
        (directory / tool).symlink_to(Path(found).resolve())
    (directory / "billing").symlink_to(Path(sys.executable).parent / "billing")
    return str(directory)


@dataclass
class DevProcess:
    base: str
    env: dict[str, str]
    banner: str
    demo_key: str
    seconds_to_ready: float
    log: Path


@pytest.fixture(scope="module")
async def readme_database() -> AsyncIterator[str]:
    async with migrated_database(f"{TEST_DATABASE}_readme") as url:
        yield url


@pytest.fixture(scope="module")
async def billing_dev(readme_database: str, stripe_api_base: str) -> AsyncIterator[DevProcess]:
    """`billing dev` as `make dev` runs it, on a database, topics, consumer groups and a chDB
    of its own (on the run's database its scheduler and webhook sender would take up the
    other tests' due renewals and deliveries, and the walk-through would wait on them).
    Everything here awaits: the session's event loop keeps running the other tests' in-process
    consumers (a loop blocked for seconds would miss their Kafka heartbeats)."""
    from producers.topics import ensure_topics

    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "") + "readme."
    await ensure_topics(prefix=prefix, timeout=20)
    data = Path(tempfile.mkdtemp(prefix="readme-test-"))
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": readme_database,
        "KAFKA_TOPIC_PREFIX": prefix,
        "BILLING_DATA_DIR": str(data),
        "CLICKHOUSE_URL": f"chdb://{data}/clickhouse",
        "STRIPE_API_BASE": stripe_api_base,
        "BILLING_API_HOST": "127.0.0.1",
        "BILLING_API_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        # the test clock example waits on the scheduler's passes: five a second, not one
        "BILLING_SCHEDULER_INTERVAL_SECONDS": "0.2",
        # the walk-through shows each write's applied answer; on a loaded machine (the whole
        # suite beside it) one took more than the default 5 s and was answered 202 pending
        # (speed is bench/'s to measure, not this test's)
        "BILLING_COMMAND_TIMEOUT": "30",
    }
    log = data / "billing-dev.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "dev"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        demo_key = await _wait_ready(process, base, log)
        yield DevProcess(base, env, log.read_text(errors="replace"), demo_key, time.monotonic() - started, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        shutil.rmtree(data, ignore_errors=True)


async def _wait_ready(process: subprocess.Popen[bytes], base: str, log: Path) -> str:
    """Until a write through the demo key is applied (201): the consumer is in its group."""
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"`billing dev` exited {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            found = re.search(r"Demo API key\s+(sk_\S+)", log.read_text(errors="replace"))
            if found:
                try:
                    response = await client.post(
                        "/v1/customers", json={"name": "Warm-up"}, headers={"Authorization": f"Bearer {found.group(1)}"}
                    )
                    if response.status_code == 201:
                        return found.group(1)
                except httpx.TransportError:
                    pass
            await asyncio.sleep(0.3)
    pytest.fail(f"`billing dev` did not apply a write within 90 s:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass
class Run:
    returncode: int
    output: str
    log: list[list[str]]
    seconds: float


async def run_walkthrough(script: Script, dev: DevProcess, workdir: Path) -> Run:
    log = workdir / "commands.log"
    env = {
        "PATH": _tool_path(workdir / "bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "README_LOG": str(log),
        # the README's `billing` commands act on the same database as the API
        **{name: dev.env[name] for name in ("DATABASE_URL", "KAFKA_TOPIC_PREFIX", "BILLING_DATA_DIR")},
    }
    log.touch()
    output = workdir / "output.log"
    started = time.monotonic()
    with output.open("wb") as out:
        bash = await asyncio.create_subprocess_exec(
            "/bin/bash", "-c", script.text, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            await asyncio.wait_for(bash.wait(), timeout=180)
        except TimeoutError:
            bash.kill()
            await bash.wait()
            pytest.fail(
                f"the walk-through did not end within 180 s; its last commands:\n{log.read_text()[-1500:]}\n"
                f"--- its output:\n{output.read_text(errors='replace')[-2500:]}\n"
                f"--- billing dev's log:\n{dev.log.read_text(errors='replace')[-4000:]}"
            )
    records = [line.split("\t") for line in log.read_text().splitlines() if line]
    return Run(bash.returncode or 0, output.read_text(errors="replace"), records, time.monotonic() - started)


def block_outputs(output: str, count: int) -> list[str]:
    parts = ["" for _ in range(count)]
    current = None
    for line in output.splitlines():
        if line.startswith(MARK + " "):
            current = int(line.split()[1])
        elif current is not None:
            parts[current] += line + "\n"
    return parts


def failure_report(run: Run, blocks: list[Block], script: Script) -> str:
    """The block and command that failed, and the tail of that block's output."""
    failed = [r for r in run.log if r[0] == "FAILED"]
    errors = [r for r in run.log if r[0] == "ERR"]
    lines = [script.readme_line[int(r[2])] for r in errors if r[2].isdigit() and int(r[2]) in script.readme_line]
    if failed:
        block, what = int(failed[0][1]), f"`{failed[0][3]}` exited {failed[0][2]}"
        what += f" (README.md line {lines[0]})" if lines else ""
    elif errors:
        block = int(errors[-1][1]) if errors[-1][1].isdigit() else -1
        line = script.readme_line.get(int(errors[-1][2]))
        what = f"`{errors[-1][3]}` failed" + (f" (README.md line {line})" if line else "")
    else:
        return f"bash exited {run.returncode}:\n{run.output[-3000:]}"
    name = blocks[block].name if block >= 0 else "the preamble"
    tail = block_outputs(run.output, len(blocks))[block][-2500:] if block >= 0 else run.output[-2500:]
    return f"README block {name}: {what}\n--- its output:\n{tail}"


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


async def test_the_walkthrough_runs(billing_dev: DevProcess, tmp_path: Path) -> None:
    blocks = walkthrough_blocks(README.read_text())
    assert len(blocks) >= 6, [b.name for b in blocks]
    script = build_script(blocks, billing_dev.base)
    run = await run_walkthrough(script, billing_dev, tmp_path)
    assert run.returncode == 0 and not any(r[0] == "FAILED" for r in run.log), failure_report(run, blocks, script)
    outputs = block_outputs(run.output, len(blocks))
    for block, output in zip(blocks, outputs, strict=True):
        for expected in block.expected:
            assert _squeeze(expected) in _squeeze(output), (
                f"README block {block.name}: its output lacks {expected}\n{output[-2500:]}"
            )
    ran = [r for r in run.log if r[0] == "RUN"]
    blocks_ran = {r[1] for r in ran}
    assert blocks_ran == {str(i) for i in range(len(blocks))}, "a block ran no command"
    curls = sum(r[2].startswith("curl ") for r in ran)
    print(
        f"\nREADME walk-through: {len(blocks)} blocks, {len(ran)} commands ({curls} curl, {len(ran) - curls} billing), "
        f"{sum(len(b.expected) for b in blocks)} expected outputs, {run.seconds:.1f} s "
        f"(billing dev ready in {billing_dev.seconds_to_ready:.1f} s)"
    )


async def test_the_banner_urls_answer(billing_dev: DevProcess) -> None:
    """The README's copy of the `make dev` banner: each URL is in the real banner, and each
    but the bare base URL (no route: the README says so) answers (401 without a key is an
    answer; 404 is not)."""
    urls = banner_urls(README.read_text())
    assert README_BASE in urls and len(urls) > 1, (
        f"the README's banner must show the base URL {README_BASE} and routes: {urls}"
    )
    for url in urls:
        real = url.replace(README_BASE, billing_dev.base)
        assert real in billing_dev.banner, (
            f"the README's banner shows {url}; `billing dev` prints:\n{billing_dev.banner[:1500]}"
        )
        if url == README_BASE:
            continue
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(real)
        assert response.status_code != 404, f"{url} from the README's banner answers 404"
