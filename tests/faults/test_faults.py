"""Faults under load, on private Postgres and Kafka servers: the API, the command consumer
(with its outbox relay) and the analytics consumer run as `billing` processes while a
mixed stream of writes goes on; the consumer is killed with SIGKILL and restarted, Kafka
is stopped and started, Postgres is restarted. Nothing but the killed consumer is
restarted, and afterwards every accepted command was applied exactly once, its outcome
event is in the outbox and on Kafka, and writes came back within seconds each time."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

import stack
from contracts.catalog import PriceCreate, ProductCreate
from contracts.customers import CustomerCreate, CustomerUpdateCommand
from contracts.envelopes import command_id_for
from contracts.settings import PROJECT_ROOT, Settings, get_settings
from producers.topics import BILLING_EVENTS, PARTITIONS
from stack import kafka, postgres
from tests.stack.conftest import free_port_pair, settings_with

# writes must be applied again this soon after their dependency came back (the command
# consumer's return to its group after a Kafka restart takes ~10 s of it)
RECOVERY_LIMIT_SECONDS = 20.0
WORKERS = 4
KAFKA_OUTAGE_SECONDS = 12.0
BURST = 40
COMMAND_TYPES = (
    CustomerCreate.command_type,
    CustomerUpdateCommand.command_type,
    ProductCreate.command_type,
    PriceCreate.command_type,
)


@dataclass
class Command:
    kind: str
    key: str
    method: str
    path: str
    body: dict[str, Any]
    statuses: list[int] = field(default_factory=list)
    final: int | None = None
    result: dict[str, Any] | None = None


@dataclass
class Load:
    """What the clients saw: every response, and every command's final answer."""

    client: httpx.AsyncClient
    commands: list[Command] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    missing_retry_after: int = 0
    transport_errors: int = 0
    unexpected: list[str] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    # by probe start: seconds until the first write was accepted (201 or 202)
    accepted_after: dict[float, float] = field(default_factory=dict)

    def next_command(self, n: int) -> Command:
        key = f"fault-{uuid.uuid4().hex}"
        kind = COMMAND_TYPES[n % len(COMMAND_TYPES)]
        metadata = {"faultKey": key}
        if kind == CustomerUpdateCommand.command_type and self.customers:
            path = f"/v1/customers/{random.choice(self.customers)}"
            return Command(kind, key, "PATCH", path, {"name": f"Renamed {n}", "metadata": {"faultUpdate": key}})
        if kind == PriceCreate.command_type and self.products:
            body = {
                "product": random.choice(self.products),
                "currency": "usd",
                "unitAmount": 100 + n,
                "metadata": metadata,
            }
            return Command(kind, key, "POST", "/v1/prices", body)
        if kind == ProductCreate.command_type:
            return Command(kind, key, "POST", "/v1/products", {"name": f"Product {n}", "metadata": metadata})
        return Command(
            CustomerCreate.command_type, key, "POST", "/v1/customers", {"name": f"Customer {n}", "metadata": metadata}
        )

    async def run(self, command: Command, deadline: float) -> Command:
        """Sends the command until it is answered other than 503 (the same key each time,
        as a client following Retry-After does)."""
        self.commands.append(command)
        while time.monotonic() < deadline:
            try:
                response = await self.client.request(
                    command.method, command.path, json=command.body, headers={"Idempotency-Key": command.key}
                )
            except httpx.TransportError:
                self.transport_errors += 1
                await asyncio.sleep(0.2)
                continue
            self.statuses[response.status_code] += 1
            command.statuses.append(response.status_code)
            if response.status_code == 503:
                if "retry-after" not in response.headers:
                    self.missing_retry_after += 1
                await asyncio.sleep(0.2)
                continue
            command.final = response.status_code
            if response.status_code in (200, 201, 202):
                command.result = response.json()
                if response.status_code == 201 and command.kind == CustomerCreate.command_type:
                    self.customers.append(command.result["id"])
                elif response.status_code == 201 and command.kind == ProductCreate.command_type:
                    self.products.append(command.result["id"])
            else:
                self.unexpected.append(f"{command.kind} {command.path}: {response.status_code} {response.text[:300]}")
            return command
        return command

    async def stream(self, stop: asyncio.Event, worker: int) -> None:
        n = worker
        while not stop.is_set():
            await self.run(self.next_command(n), time.monotonic() + 120)
            n += WORKERS
            await asyncio.sleep(0.02)

    async def first_write_after(self, since: float) -> float:
        """Seconds from `since` until a write sent after it is applied in time (201), not
        only accepted (202: its consumer not back yet)."""
        n = 0
        while time.monotonic() - since < RECOVERY_LIMIT_SECONDS * 2:
            command = self.next_command(n * len(COMMAND_TYPES))  # a customer create
            n += 1
            try:
                response = await self.client.post(
                    command.path, json=command.body, headers={"Idempotency-Key": command.key}
                )
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            self.commands.append(command)
            self.statuses[response.status_code] += 1
            command.statuses.append(response.status_code)
            if response.status_code in (201, 202):
                command.final, command.result = response.status_code, response.json()
                self.accepted_after.setdefault(since, time.monotonic() - since)
                if response.status_code == 201:
                    return time.monotonic() - since
                continue
            if response.status_code != 503:
                command.final = response.status_code
                self.unexpected.append(f"probe: {response.status_code} {response.text[:300]}")
            elif "retry-after" not in response.headers:
                self.missing_retry_after += 1
            await asyncio.sleep(0.2)
        return float("inf")


def _env(settings: Settings, api_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "BILLING_DATA_DIR": str(settings.data_dir),
        "BILLING_POSTGRES_PORT": str(settings.postgres_port),
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": "",
        "CLICKHOUSE_URL": settings.clickhouse_url,
        "BILLING_API_PORT": str(api_port),
        "BILLING_COMMAND_TIMEOUT": "2",
        "BILLING_RATE_LIMIT_PER_SECOND": "100000",
    }


class Processes:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child writes to it
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running[name] = process
        return process

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def tail(self, name: str, chars: int | None = 3000) -> str:
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        return text[-chars:] if chars else text

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def private_stack() -> Iterator[Settings]:
    """Postgres and Kafka of our own (data dir, free ports); Kafka's jars are the shared ones."""
    shared = get_settings()
    data_dir = shared.data_dir / "test-tmp" / f"faults-{uuid.uuid4().hex[:8]}"
    pg_port, kafka_port = free_port_pair(), free_port_pair()
    while abs(kafka_port - pg_port) < 2:
        kafka_port = free_port_pair()
    settings = settings_with(
        data_dir=data_dir,
        postgres_port=pg_port,
        database_url=f"postgresql+asyncpg://billing:billing@127.0.0.1:{pg_port}/billing",
        kafka_bootstrap_servers=f"127.0.0.1:{kafka_port}",
        kafka_topic_prefix="",
        clickhouse_url=f"chdb://{data_dir / 'clickhouse'}",
    )
    kafka.home(settings).mkdir(parents=True)
    kafka.libs_dir(settings).symlink_to(kafka.libs_dir(shared))
    try:
        stack.ensure_up(["postgres", "kafka"], settings=settings, say=lambda _: None)
        yield settings
    finally:
        stack.down(["kafka", "postgres"], settings=settings, say=lambda _: None)
        shutil.rmtree(data_dir, ignore_errors=True)


async def _wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await predicate():
                return
        except (httpx.TransportError, OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


async def _health(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/health")
    return response.status_code, response.json()


async def _kafka_event_ids(bootstrap: str) -> Counter[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(BILLING_EVENTS, p) for p in range(PARTITIONS[BILLING_EVENTS])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        seen: Counter[str] = Counter()
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    seen[json.loads(record.value)["eventId"]] += 1
        return seen
    finally:
        await consumer.stop()


async def _analytics_lag(bootstrap: str) -> int:
    """How far the analytics group's committed offsets are behind billing.events' end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets("analytics")
        partitions = [TopicPartition(BILLING_EVENTS, p) for p in range(PARTITIONS[BILLING_EVENTS])]
        ends = await consumer.end_offsets(partitions)
        return sum(end - (committed[p].offset if p in committed else 0) for p, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


async def test_writes_survive_a_consumer_kill_a_kafka_restart_and_a_postgres_restart(private_stack: Settings) -> None:
    settings = private_stack
    api_port = free_port_pair()
    processes = Processes(_env(settings, api_port), settings.data_dir)
    dsn = postgres.target(settings).dsn
    figures: dict[str, Any] = {}
    health_seen: dict[str, tuple[int, dict[str, Any]]] = {}
    load: Load | None = None
    try:
        processes.run("migrate")
        organization = json.loads(processes.run("org", "create", "Faults"))
        processes.start("api", "api")
        processes.start("consumer", "consume")
        processes.start("analytics", "analytics", "consume")
        headers = {"Authorization": f"Bearer {organization['secret']}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=30) as client:
            await _wait_until(lambda: _health_ok(client), 60, f"the API up; {processes.tail('api')}")
            load = Load(client)
            assert await load.first_write_after(time.monotonic()) < 30, processes.tail("consumer")

            stop = asyncio.Event()
            workers = [asyncio.create_task(load.stream(stop, n)) for n in range(WORKERS)]
            await asyncio.sleep(3)

            # (a) the command consumer killed mid-stream, then started again
            processes.running["consumer"].send_signal(signal.SIGKILL)
            processes.running["consumer"].wait(timeout=10)
            await asyncio.sleep(1)
            processes.start("consumer", "consume")
            await asyncio.sleep(3)

            # (b) Kafka stopped and started; the API, relay and consumers stay up
            stack.down(["kafka"], settings=settings, say=lambda _: None)
            kafka_down = time.monotonic()
            # clients that do not wait for each other: many sends held by the producers at once
            burst = [asyncio.create_task(load.run(load.next_command(n), time.monotonic() + 120)) for n in range(BURST)]
            # the command consumer killed again and started while Kafka is away: it waits for
            # the broker rather than exiting
            processes.running["consumer"].send_signal(signal.SIGKILL)
            processes.running["consumer"].wait(timeout=10)
            processes.start("consumer", "consume")
            await _wait_until(lambda: _down_named(client, "kafka", health_seen), 15, "/health naming kafka down")
            # longer than the producers' request timeout (10 s): batches expire while later ones
            # wait, the gap in their sequence numbers that a broker answers OutOfOrderSequenceNumber
            await asyncio.sleep(KAFKA_OUTAGE_SECONDS - (time.monotonic() - kafka_down))
            await asyncio.to_thread(stack.ensure_up, ["kafka"], settings=settings, say=lambda _: None)
            kafka_back = time.monotonic()
            figures["kafka_recovery_s"] = await load.first_write_after(kafka_back)
            figures["kafka_accepting_s"] = load.accepted_after[kafka_back]
            await asyncio.sleep(3)

            # (c) Postgres restarted
            stack.down(["postgres"], settings=settings, say=lambda _: None)
            await _wait_until(lambda: _down_named(client, "postgres", health_seen), 15, "/health naming postgres down")
            await asyncio.sleep(2)
            await asyncio.to_thread(stack.ensure_up, ["postgres"], settings=settings, say=lambda _: None)
            postgres_back = time.monotonic()
            figures["postgres_recovery_s"] = await load.first_write_after(postgres_back)
            figures["postgres_accepting_s"] = load.accepted_after[postgres_back]
            await asyncio.sleep(2)

            stop.set()
            await asyncio.gather(*workers, *burst)
            for name in ("api", "consumer", "analytics"):
                assert processes.running[name].poll() is None, f"{name} exited; {processes.tail(name)}"

            accepted = [c for c in load.commands if c.final in (200, 201, 202)]
            expected = {command_id_for(organization["organization"], c.key): c for c in accepted}
            issued = {command_id_for(organization["organization"], c.key) for c in load.commands}
            conn = await asyncpg.connect(dsn)
            try:

                async def all_applied() -> bool:
                    rows = await conn.fetch(
                        "select command_id from processed_commands where command_id = any($1::text[])", list(expected)
                    )
                    return len(rows) == len(expected)

                try:
                    await _wait_until(all_applied, 60, "every accepted command applied")
                except AssertionError as unapplied:
                    applied = {r["command_id"] for r in await conn.fetch("select command_id from processed_commands")}
                    missing = [expected[i].key for i in expected if i not in applied]
                    consumer = processes.running["consumer"].poll()
                    raise AssertionError(
                        f"{unapplied}: {len(missing)} of {len(expected)} unapplied (e.g. {missing[:3]}); "
                        f"consumer exit code {consumer}; {processes.tail('consumer', 6000)}"
                    ) from None
                await _wait_until(lambda: _all_sent(conn), 30, "every outbox row relayed")
                await asyncio.sleep(1)  # a duplicate still in flight would show now
                reconciliation = await _reconcile(conn, organization["organization"], load.commands, expected, issued)
            finally:
                await conn.close()
            on_kafka = await _kafka_event_ids(settings.kafka_bootstrap_servers)
            await _wait_until(
                lambda: _analytics_caught_up(settings),
                30,
                f"the analytics consumer consuming again; {processes.tail('analytics')}",
            )

        figures.update(
            requests=sum(load.statuses.values()),
            statuses=dict(sorted(load.statuses.items())),
            transport_errors=load.transport_errors,
            commands=len(load.commands),
            accepted=len(accepted),
            applied=reconciliation["applied"],
            outcome_events=reconciliation["outcome_events"],
            answered_again=reconciliation["answered_again"],
            events_on_kafka=sum(on_kafka.values()),
            events_on_kafka_twice=sum(1 for n in on_kafka.values() if n > 1),
            producers_replaced={
                name: processes.tail(name, None).count("replacing the Kafka producer") for name in ("api", "consumer")
            },
        )
        print("\nfault test figures:", json.dumps(figures))

        assert not load.unexpected, load.unexpected[:5]
        assert all(status < 500 or status == 503 for status in load.statuses), load.statuses
        assert load.missing_retry_after == 0
        assert health_seen["kafka"][1] == {"status": "degraded", "postgres": "up", "kafka": "down"}
        assert health_seen["postgres"][1] == {"status": "degraded", "postgres": "down", "kafka": "up"}
        assert figures["kafka_recovery_s"] < RECOVERY_LIMIT_SECONDS, (figures, processes.tail("api"))
        assert figures["postgres_recovery_s"] < RECOVERY_LIMIT_SECONDS, (figures, processes.tail("api"))
        assert reconciliation["problems"] == [], reconciliation["problems"][:10]
        outbox_ids = reconciliation["outbox_event_ids"]
        assert outbox_ids <= set(on_kafka), f"{len(outbox_ids - set(on_kafka))} outbox events never reached Kafka"
        # the stream did meet every fault: some writes waited on a 503 and were accepted after it
        assert load.statuses[503] > 0 and any(503 in c.statuses and c.final in (200, 201, 202) for c in accepted)
    finally:
        processes.stop_all()


async def _health_ok(client: httpx.AsyncClient) -> bool:
    return (await client.get("/health")).status_code == 200


async def _down_named(client: httpx.AsyncClient, dependency: str, seen: dict[str, tuple[int, dict[str, Any]]]) -> bool:
    status, body = await _health(client)
    if status == 503 and body.get(dependency) == "down":
        seen[dependency] = (status, body)
        return True
    return False


async def _all_sent(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("select count(*) from outbox where sent_at is null") == 0


async def _analytics_caught_up(settings: Settings) -> bool:
    return await _analytics_lag(settings.kafka_bootstrap_servers) == 0


TABLES = {
    CustomerCreate.command_type: "customers",
    ProductCreate.command_type: "products",
    PriceCreate.command_type: "prices",
}


async def _reconcile(
    conn: asyncpg.Connection,
    organization_id: str,
    commands: list[Command],
    expected: dict[str, Command],
    issued: set[str],
) -> dict[str, Any]:
    """Rows, processed_commands and outbox agree: one row per accepted create (found by its
    key in metadata), one processed command and one outcome event per accepted command,
    and nothing that no client sent."""
    problems: list[str] = []
    rows = await conn.fetch(
        "select command_id, status, resource_id from processed_commands where organization_id = $1", organization_id
    )
    processed = {r["command_id"]: r for r in rows}
    if unknown := set(processed) - issued:
        problems.append(f"{len(unknown)} processed commands no client sent")
    for command_id, command in expected.items():
        row = processed.get(command_id)
        if row is None:
            problems.append(f"accepted {command.kind} {command.key} never applied")
        elif row["status"] != "succeeded":
            problems.append(f"{command.kind} {command.key} {row['status']}")
    for kind, table in TABLES.items():
        query = f"select metadata->>'faultKey' as k from {table} where organization_id = $1"
        keys = Counter(r["k"] for r in await conn.fetch(query, organization_id))
        wanted = {c.key for c in expected.values() if c.kind == kind}
        if dupes := [k for k, n in keys.items() if n > 1]:
            problems.append(f"{len(dupes)} {table} created twice")
        if missing := wanted - set(keys):
            problems.append(f"{len(missing)} accepted {kind} without a row")
        if extra := set(keys) - {c.key for c in commands}:
            problems.append(f"{len(extra)} {table} rows of no command")
    answers = await conn.fetch(
        "select payload->>'commandId' as c, payload->'data'->>'status' as status, payload->'data'->>'resourceId' as resource"
        " from outbox where organization_id = $1 and event_type like 'command.%'",
        organization_id,
    )
    outcomes = Counter(r["c"] for r in answers)
    # a command delivered again is answered again (a retrying client gets its result), with the first outcome
    first = {c: (row["status"], row["resource_id"]) for c, row in processed.items()}
    if changed := [r["c"] for r in answers if r["c"] in first and (r["status"], r["resource"]) != first[r["c"]]]:
        problems.append(f"{len(changed)} outcome events that disagree with processed_commands")
    if no_event := set(processed) - set(outcomes):
        problems.append(f"{len(no_event)} processed commands without an outcome event")
    event_ids = {
        r["e"]
        for r in await conn.fetch(
            "select payload->>'eventId' as e from outbox where organization_id = $1", organization_id
        )
    }
    return {
        "problems": problems,
        "applied": sum(1 for c in expected if c in processed),
        "outcome_events": sum(outcomes.values()),
        "answered_again": sum(n - 1 for n in outcomes.values()),
        "outbox_event_ids": event_ids,
    }
