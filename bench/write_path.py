"""The write path, end to end: N concurrent clients create customers through the real API
(uvicorn), Kafka and the command consumer into Postgres.

Prints commands/s and p50/p95/p99 latency in a closed loop (each client sends its next
request when the previous one answered), the latency at a fixed offered rate (default
500 requests/s), and, measured in the same run, raw asyncpg single-row INSERT commits/s
with the same concurrency, with the ratio of the two.

    .venv/bin/python bench/write_path.py [--clients 32] [--seconds 10] [--rate 500]

Needs the local stack (`billing stack up`). It uses a database and Kafka topics of its
own (`billing_bench`, prefix `bench-<random>.`), so a running `make dev` is untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load_client import LoadClient  # noqa: E402
from contracts.settings import get_settings  # noqa: E402

BENCH_DATABASE = "billing_bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def prepare_database(base_url: str, database: str = BENCH_DATABASE) -> str:
    admin = await asyncpg.connect(
        asyncpg_dsn(make_url(base_url).set(database="postgres").render_as_string(hide_password=False))
    )
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {database}")
    finally:
        await admin.close()
    return make_url(base_url).set(database=database).render_as_string(hide_password=False)


async def bench_stack(database: str = BENCH_DATABASE) -> tuple[str, dict[str, str], Path]:
    """A migrated database and Kafka topics of the bench's own, and the environment that
    points `billing` processes at them: (database URL, environment, log directory)."""
    settings = get_settings()
    database_url = await prepare_database(settings.database_url, database)
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    port = 8000 + (os.getpid() % 500) + 100
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_TOPIC_PREFIX": prefix,
        "BILLING_API_PORT": str(port),
        "BILLING_RATE_LIMIT_PER_SECOND": "1000000",
        "BILLING_COMMAND_TIMEOUT": "30",
    }
    logs = settings.data_dir / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "cli.main", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    os.environ["KAFKA_TOPIC_PREFIX"] = prefix
    from producers.topics import ensure_topics

    await ensure_topics(settings.kafka_bootstrap_servers, prefix=prefix)
    return database_url, env, logs


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


async def wait_healthy(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{base}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"the API did not come up at {base}")


async def closed_loop(base: str, secret: str, clients: int, seconds: float) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    failures = 0
    stop_at = time.monotonic() + seconds
    async with LoadClient(base, headers={"Authorization": f"Bearer {secret}"}) as http:

        async def client_loop(number: int) -> None:
            nonlocal failures
            sequence = 0
            while time.monotonic() < stop_at:
                sequence += 1
                started = time.perf_counter()
                status, _ = await http.post(
                    "/v1/customers", {"email": f"c{number}-{sequence}@example.com", "name": "Bench"}
                )
                if status == 201:
                    latencies.append(time.perf_counter() - started)
                else:
                    failures += 1

        await asyncio.gather(*(client_loop(n) for n in range(clients)))
    return len(latencies), latencies, failures


async def fixed_rate(base: str, secret: str, rate: int, seconds: float) -> tuple[list[float], int]:
    """Open loop: requests start on schedule whether or not earlier ones answered."""
    latencies: list[float] = []
    failures = 0
    async with LoadClient(base, headers={"Authorization": f"Bearer {secret}"}) as http:

        async def one(n: int) -> None:
            nonlocal failures
            started = time.perf_counter()
            status, _ = await http.post("/v1/customers", {"email": f"r{n}@example.com"})
            if status == 201:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

        tasks = []
        begin = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return latencies, failures


async def vacuum(dsn: str) -> None:
    """VACUUM ANALYZE now, so that autovacuum, woken by the rows the closed loop and the raw
    inserts just wrote, does not run in the middle of the next measurement."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def raw_inserts(dsn: str, clients: int, seconds: float) -> tuple[int, list[float]]:
    setup = await asyncpg.connect(dsn)
    await setup.execute(
        "CREATE TABLE IF NOT EXISTS bench_raw (id text primary key, organization_id text, email text, created_at timestamptz default now())"
    )
    await setup.close()
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            async with pool.acquire() as connection:
                await connection.execute(
                    "INSERT INTO bench_raw (id, organization_id, email) VALUES ($1, $2, $3)",
                    uuid.uuid4().hex,
                    "org_bench",
                    "raw@example.com",
                )
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(clients)))
    await pool.close()
    return len(latencies), latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def describe(label: str, count: int, seconds: float, latencies: list[float]) -> str:
    if not latencies:
        return f"{label}: nothing succeeded"
    return (
        f"{label}: {count / seconds:,.0f}/s  p50 {percentile(latencies, 0.5) * 1000:.1f} ms  "
        f"p95 {percentile(latencies, 0.95) * 1000:.1f} ms  p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; medians are printed")
    args = parser.parse_args()

    database_url, env, logs = await bench_stack()
    port = int(env["BILLING_API_PORT"])
    created = subprocess.run(
        [sys.executable, "-m", "cli.main", "org", "create", "Bench"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    import json

    secret = json.loads(created.stdout.strip().splitlines()[-1])["secret"]
    processes = [spawn(["consume"], env, logs / "consumer.log"), spawn(["api"], env, logs / "api.log")]
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base)
        await closed_loop(base, secret, args.clients, 2)  # warm-up: group join, connections, caches
        print(
            f"write path, {args.clients} concurrent clients, {args.seconds:.0f} s per run, {args.repeats} runs (medians)"
        )
        api_rates, api_p50, api_p99, raw_rates = [], [], [], []
        for run in range(args.repeats):
            cpu_before = [cpu_seconds(p.pid) for p in processes]
            client_cpu_before = time.process_time()
            count, latencies, failures = await closed_loop(base, secret, args.clients, args.seconds)
            client_cpu = time.process_time() - client_cpu_before
            cpu_used = [cpu_seconds(p.pid) - before for p, before in zip(processes, cpu_before, strict=True)]
            print(
                "  "
                + describe(f"run {run + 1} API -> Kafka -> consumer -> Postgres", count, args.seconds, latencies)
                + f"  failures {failures}"
            )
            if count:
                print(
                    f"    CPU per command: consumer {1000 * cpu_used[0] / count:.2f} ms, API {1000 * cpu_used[1] / count:.2f} ms,"
                    f" load generator {1000 * client_cpu / count:.2f} ms"
                )
            raw_count, raw_latencies = await raw_inserts(asyncpg_dsn(database_url), args.clients, args.seconds)
            print("  " + describe(f"run {run + 1} raw asyncpg INSERT commits", raw_count, args.seconds, raw_latencies))
            api_rates.append(count / args.seconds)
            api_p50.append(percentile(latencies, 0.5))
            api_p99.append(percentile(latencies, 0.99))
            raw_rates.append(raw_count / args.seconds)
        api_rate, raw_rate = statistics.median(api_rates), statistics.median(raw_rates)
        print(
            f"median commands/s through the API: {api_rate:,.0f}  (p50 {statistics.median(api_p50) * 1000:.1f} ms, p99 {statistics.median(api_p99) * 1000:.1f} ms)"
        )
        print(f"median raw asyncpg INSERT commits/s: {raw_rate:,.0f}")
        print(f"ratio API / raw: {api_rate / raw_rate:.2f}")

        open_p50, open_p95, open_p99 = [], [], []
        for run in range(args.repeats):
            await vacuum(asyncpg_dsn(database_url))
            latencies, failures = await fixed_rate(base, secret, args.rate, args.seconds)
            print(
                f"  run {run + 1} offered {args.rate} requests/s for {args.seconds:.0f} s: "
                + describe("completed", len(latencies), args.seconds, latencies)
                + f"  failures {failures}"
            )
            open_p50.append(percentile(latencies, 0.5))
            open_p95.append(percentile(latencies, 0.95))
            open_p99.append(percentile(latencies, 0.99))
        print(
            f"median at {args.rate} requests/s offered: p50 {statistics.median(open_p50) * 1000:.1f} ms, "
            f"p95 {statistics.median(open_p95) * 1000:.1f} ms, p99 {statistics.median(open_p99) * 1000:.1f} ms"
        )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    asyncio.run(main())
