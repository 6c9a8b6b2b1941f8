"""Webhook delivery throughput: events/s the notifications sender delivers to a local
endpoint, against raw HTTP POSTs of the same bodies to the same endpoint with the same
concurrency (the baseline, measured in the same run).

Each run records `--events` events of one organization with their deliveries (the
recorder's own `record_events`, in batches), then starts the real `WebhookSender` and
times it until every delivery has succeeded: lease, sign (Standard Webhooks), the SSRF
check, the POST, and recording each attempt in Postgres. The receiver is a separate
process (uvicorn, answering 204). With `--endpoints` endpoints the sender may hold
PER_ENDPOINT requests to each (IN_FLIGHT in all), so the baseline runs that many POSTs at
once.

    .venv/bin/python bench/webhook_delivery.py [--events 500] [--endpoints 8] [--repeats 3] [--profile]

Needs the local stack's Postgres (`billing stack up`); it uses a database of its own
(`billing_bench_webhooks`, recreated).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.write_path import prepare_database  # noqa: E402
from billing import clock  # noqa: E402
from billing.db.sessions import create_engine, create_session_factory  # noqa: E402
from billing.ids import new_id  # noqa: E402
from billing.models import Event, WebhookEndpoint  # noqa: E402
from billing.notifications.events import record_events  # noqa: E402
from billing.notifications.signing import new_secret  # noqa: E402
from billing.organizations.service import create_organization  # noqa: E402
from billing.organizations.stripe_account import ensure_keyring  # noqa: E402
from consumers.notifications import IN_FLIGHT, PER_ENDPOINT, WebhookSender  # noqa: E402
from contracts.envelopes import EventEnvelope, new_event_id  # noqa: E402
from contracts.settings import get_settings  # noqa: E402

BENCH_DATABASE = "billing_bench_webhooks"
RECEIVER = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""
# a customer as the API returns it: the size of a typical event
CUSTOMER = {
    "id": "cus_bench",
    "email": "bench@example.com",
    "name": "Bench Customer",
    "address": {"line1": "1 Main St", "city": "Springfield", "country": "US", "postalCode": "12345"},
    "metadata": {"plan": "pro", "region": "us"},
    "balance": 0,
    "currency": "usd",
    "preferredLocales": ["en"],
    "createdAt": "2026-12-08T00:00:00.000Z",
}


async def wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise SystemExit(f"the receiver did not listen on {port}")


async def seed(sessions: object, url: str, endpoints: int) -> str:
    settings = get_settings()
    keyring = ensure_keyring(settings)
    async with sessions() as session, session.begin():  # type: ignore[operator]
        organization, _ = await create_organization(session, "Webhook bench")
        for _ in range(endpoints):
            session.add(
                WebhookEndpoint(
                    id=new_id("webhook_endpoint"),
                    organization_id=organization.id,
                    url=url,
                    enabled_events=["*"],
                    metadata_={},
                    secret_encrypted=keyring.encrypt(new_secret()),
                )
            )
    return str(organization.id)


async def record(sessions: object, organization_id: str, events: int) -> float:
    """Records `events` events (and a delivery to each endpoint of each), 100 per
    transaction; the seconds it took."""
    started = time.perf_counter()
    for first in range(0, events, 100):
        envelopes = [
            EventEnvelope(
                eventId=new_event_id(),
                type="customer.created",
                organizationId=organization_id,
                occurredAt=clock.now(),
                data=CUSTOMER,
            )
            for _ in range(first, min(events, first + 100))
        ]
        async with sessions() as session, session.begin():  # type: ignore[operator]
            await record_events(session, envelopes)
    return time.perf_counter() - started


async def deliver(
    sessions: object, client: httpx.AsyncClient, deliveries: int, profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    """Runs a sender until `deliveries` deliveries succeeded: the seconds it took, and the
    CPU seconds this process spent meanwhile."""
    settings = dataclasses.replace(get_settings(), webhook_poll_seconds=0.05)
    sender = WebhookSender(sessions, ensure_keyring(settings), settings, client)  # type: ignore[arg-type]
    stop = asyncio.Event()
    started, cpu = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    running = asyncio.create_task(sender.run(stop))
    while sender.sent["succeeded"] < deliveries:
        if sender.sent["failed"]:
            raise SystemExit(f"{sender.sent['failed']} deliveries failed: is the receiver up?")
        await asyncio.sleep(0.01)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profile is not None:
        profile.disable()
    stop.set()
    await running
    return elapsed, cpu


async def raw_posts(client: httpx.AsyncClient, url: str, requests: int, concurrency: int) -> float:
    """The baseline: `requests` POSTs of an event's body, `concurrency` at a time."""
    body = (
        EventEnvelope(
            eventId=new_event_id(), type="customer.created", organizationId="org", occurredAt=clock.now(), data=CUSTOMER
        )
        .model_dump_json()
        .encode()
    )
    remaining = iter(range(requests))
    started = time.perf_counter()

    async def worker() -> None:
        for _ in remaining:
            response = await client.post(url, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 204

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--endpoints", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print where the sender's CPU goes (cProfile)")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    database_url = await prepare_database(get_settings().database_url, BENCH_DATABASE)
    migrate = [sys.executable, "-m", "cli.main", "migrate"]
    subprocess.run(migrate, cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url}, check=True, capture_output=True)
    with socket.socket() as probe:  # a free port for the receiver
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        await wait_listening(port)
        url = f"http://127.0.0.1:{port}/webhooks"
        organization_id = await seed(sessions, url, args.endpoints)
        deliveries = args.events * args.endpoints
        concurrency = min(IN_FLIGHT, PER_ENDPOINT * args.endpoints)
        print(
            f"{args.events} events x {args.endpoints} endpoints = {deliveries} deliveries per run, "
            f"{concurrency} requests in flight at most; receiver: uvicorn answering 204 in its own process"
        )
        rates: dict[str, list[float]] = {"record": [], "deliver": [], "raw": [], "cpu_ms": []}
        async with httpx.AsyncClient(
            follow_redirects=False, limits=httpx.Limits(max_connections=concurrency)
        ) as client:
            for run in range(1, args.repeats + 1):
                recorded = await record(sessions, organization_id, args.events)
                delivered, cpu = await deliver(sessions, client, deliveries, profile)
                raw = await raw_posts(client, url, deliveries, concurrency)
                rates["record"].append(args.events / recorded)
                rates["deliver"].append(deliveries / delivered)
                rates["raw"].append(deliveries / raw)
                rates["cpu_ms"].append(cpu / deliveries * 1000)
                print(
                    f"run {run}: recorded {args.events / recorded:,.0f} events/s; delivered "
                    f"{deliveries / delivered:,.0f} deliveries/s ({cpu / deliveries * 1000:.2f} ms of sender CPU each); "
                    f"raw POSTs {deliveries / raw:,.0f}/s; ratio {raw / delivered:.2f}"
                )
                async with sessions() as session, session.begin():
                    await session.execute(Event.__table__.delete())  # the next run starts empty
        deliver_median, raw_median = statistics.median(rates["deliver"]), statistics.median(rates["raw"])
        print(
            f"median of {args.repeats}: recorded {statistics.median(rates['record']):,.0f} events/s; "
            f"delivered {deliver_median:,.0f} deliveries/s ({statistics.median(rates['cpu_ms']):.2f} ms of sender CPU "
            f"each); raw POSTs {raw_median:,.0f}/s; "
            f"ratio {deliver_median / raw_median:.2f}"
        )
        if profile is not None:
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    finally:
        receiver.terminate()
        receiver.wait()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
