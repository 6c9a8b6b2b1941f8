"""Usage ingestion and usage-query benchmark (see bench/README.md).

    uv run python bench/usage_ingest.py                       # 2,000,000 events, 10,000,000 query rows
    uv run python bench/usage_ingest.py --events 200000 --query-rows 1000000 --repeat 3

Needs Kafka (`billing stack up`); uses its own random topic prefix (topics deleted at the
end) and its own chDB directory (a temp dir; or --clickhouse-url). Per repeat it:

1. produces N usage events (JSON, as the API would publish them) to <prefix>usage.events;
2. raw consume: an aiokafka consumer reads the N records and does nothing else;
3. end to end: the analytics consumer (validation, dedupe, batched insert, commit) reads
   them into ClickHouse; timed from partition assignment to the last event stored;
4. raw insert: the same rows, already built, inserted into usage_events (with its rollup
   views) in batches of the consumer's size, no Kafka, no validation, no dedupe;

then prints each figure's median over the repeats and the ratios. Finally it inserts
--query-rows rows straight into usage_events with ClickHouse's numbers() (one organization,
one meter, 1,000 customers, 30 days) and times `analytics.queries.usage` (p50/p95).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from analytics.consumer import ConsumerConfig, ConsumerStats, run_analytics_consumer
from analytics.ingest import USAGE_COLUMNS, UsageSource, encode_usage_rows
from analytics.migrations import migrate
from analytics.queries import usage
from analytics.store import AnalyticsStore, get_store
from contracts.settings import Settings, get_settings
from contracts.usage import UsageEvent

PARTITIONS = 6
ORGS = 20
CUSTOMERS = 1_000


def payloads(n: int, run: str, now: datetime) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs: ORGS organizations, CUSTOMERS customers, values with decimals."""
    out = []
    base = int(now.timestamp()) - 86_400
    for i in range(n):
        org = f"org_{run}_{i % ORGS}"
        value = f"{i % 997}.{i % 100:02d}"
        body = (
            f'{{"eventName":"api_call","customerId":"cus_{i % CUSTOMERS}","value":"{value}",'
            f'"timestamp":{base + (i % 86_400)},"identifier":"{run}-{i}","organizationId":"{org}",'
            f'"properties":{{"region":"eu","tokens":{i % 50}}}}}'
        )
        out.append((org.encode(), body.encode()))
    return out


async def create_topics(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=30_000)
    await admin.start()
    names = [f"{settings.kafka_topic_prefix}usage.events", f"{settings.kafka_topic_prefix}billing.events"]
    try:
        await admin.create_topics([NewTopic(names[0], PARTITIONS, 1), NewTopic(names[1], PARTITIONS, 1)])
        for _ in range(100):
            described = await admin.describe_topics(names)
            if all(d.get("error_code", 0) == 0 and d.get("partitions") for d in described):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return names


async def delete_topics(settings: Settings, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def produce(settings: Settings, topic: str, items: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks=1,
        linger_ms=20,
        max_batch_size=1 << 20,
        compression_type=None,
        max_request_size=16 << 20,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        ts = int(time.time() * 1000)
        pending = []
        per_partition: list[list[tuple[bytes, bytes]]] = [[] for _ in range(PARTITIONS)]
        for i, kv in enumerate(items):
            per_partition[i % PARTITIONS].append(kv)
        for p, chunk in enumerate(per_partition):
            batch = producer.create_batch()
            for key, value in chunk:
                if batch.append(key=key, value=value, timestamp=ts) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=p))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=ts)
            pending.append(await producer.send_batch(batch, topic, partition=p))
            if len(pending) > 200:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(settings: Settings, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_poll_records=10_000,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        started = time.perf_counter()
        while seen < n:
            fetched = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for recs in fetched.values():
                seen += len(recs)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def end_to_end(
    settings: Settings, store: AnalyticsStore, n: int, batch: int, linger_ms: int
) -> tuple[float, ConsumerStats]:
    stats = ConsumerStats()
    stop, ready = asyncio.Event(), asyncio.Event()
    config = ConsumerConfig(group_id=f"{settings.kafka_topic_prefix}bench", max_batch=batch, linger_ms=linger_ms)
    task = asyncio.create_task(
        run_analytics_consumer(settings, stop, store=store, config=config, stats=stats, ready=ready)
    )
    await asyncio.wait_for(ready.wait(), 60)
    started = time.perf_counter()
    cpu = time.process_time()
    while stats.usage_inserted + stats.usage_duplicates + stats.dead_letters < n:
        if task.done():
            task.result()
            raise RuntimeError("consumer stopped early")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    stats.last_error = f"process CPU {time.process_time() - cpu:.1f}s over {elapsed:.1f}s wall"
    stop.set()
    await task
    return elapsed, stats


def raw_insert(store: AnalyticsStore, items: list[tuple[bytes, bytes]], now: datetime, batch: int = 10_000) -> float:
    """Same rows, same encoding and INSERT as the consumer's writer; timed: encode + insert."""
    events = []
    for _key, value in items:
        body = json.loads(value)
        body["organizationId"] = "raw-" + body["organizationId"]
        events.append((UsageEvent.model_validate(body, context={"now": now}), UsageSource("bench")))
    chunks = [events[i : i + batch] for i in range(0, len(events), batch)]
    started = time.perf_counter()
    for chunk in chunks:
        store.insert_raw("usage_events", USAGE_COLUMNS, encode_usage_rows(chunk))
    return time.perf_counter() - started


def query_bench(store: AnalyticsStore, rows: int, runs: int) -> dict[str, tuple[float, float, str]]:
    org = f"org_query_{uuid.uuid4().hex[:6]}"
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=30)
    span_us = 30 * 86_400 * 1_000_000
    t0 = time.perf_counter()
    chunk = 2_000_000
    for offset in range(0, rows, chunk):
        store.command(
            "INSERT INTO usage_events (organization_id, identifier, event_name, customer_id, value, timestamp, properties, source) "
            "SELECT {org:String}, concat('q-', toString(number)), 'api_call', concat('cus_', toString(number % 1000)), "
            "toDecimal128(number % 1000, 12) / 100, "
            "{start:DateTime64(6, 'UTC')} + toIntervalMicrosecond(cityHash64(number) % {span:UInt64}), "
            "map('region', if(number % 2 = 0, 'eu', 'us')), 'bench' "
            "FROM numbers({offset:UInt64}, {count:UInt64})",
            {"org": org, "start": start, "span": span_us, "offset": offset, "count": min(chunk, rows - offset)},
        )
    load_s = time.perf_counter() - t0
    print(f"query data: {rows:,} rows inserted with numbers() in {load_s:.1f}s (org {org})")
    cases = {
        "sum, whole 30 days (invoice)": {"aggregation": "sum", "start": start, "end": end},
        "sum by day": {"aggregation": "sum", "start": start, "end": end, "group_by": "day"},
        "sum by customer": {"aggregation": "sum", "start": start, "end": end, "group_by": "customer"},
        "sum, unaligned 29.5 days": {
            "aggregation": "sum",
            "start": start + timedelta(minutes=17),
            "end": end - timedelta(hours=11, minutes=3),
        },
        "last by hour, 1 day": {
            "aggregation": "last",
            "start": end - timedelta(days=1),
            "end": end,
            "group_by": "hour",
        },
        "unique_count(region), raw rows": {
            "aggregation": "unique_count",
            "start": start,
            "end": end,
            "value_key": "region",
        },
    }
    whole = usage(store, org, "api_call", "sum", start=start, end=end)[0]
    want = (rows // 1000) * 4995 + sum(range(rows % 1000)) / 100  # sum of (n % 1000) / 100
    print(
        f"exactness: 30-day sum {whole.value} over {whole.event_count:,} events; expected {want:,.2f}: "
        f"{'exact' if whole.value == Decimal(str(want)) and whole.event_count == rows else 'MISMATCH'}"
    )
    results = {}
    for name, kw in cases.items():
        agg = kw.pop("aggregation")
        usage(store, org, "api_call", agg, **kw)  # warm
        times = []
        first = None
        for _ in range(runs if "raw" not in name else max(3, runs // 5)):
            t = time.perf_counter()
            out = usage(store, org, "api_call", agg, **kw)
            times.append((time.perf_counter() - t) * 1000)
            first = first or out
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        summary = f"{len(first)} rows" if len(first) != 1 else f"value {first[0].value}, {first[0].event_count} events"
        results[name] = (statistics.median(times), p95, summary)
    return results


async def one_run(args: argparse.Namespace, store: AnalyticsStore, base: Settings) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(base, kafka_topic_prefix=f"bench-{run}.", clickhouse_url=store.url)
    names = await create_topics(settings)
    try:
        now = datetime.now(UTC)
        items = payloads(args.events, run, now)
        # the bench's own N pre-built messages are not the consumer's: keep the cyclic GC
        # from walking them on every full collection (a real consumer has no such list)
        gc.collect()
        gc.freeze()
        produce_s = await produce(settings, names[0], items)
        consume_s = await raw_consume(settings, names[0], args.events)
        e2e_s, stats = await end_to_end(settings, store, args.events, args.batch_size, args.linger_ms)
        assert stats.usage_inserted == args.events, stats
        insert_s = await asyncio.to_thread(raw_insert, store, items, now)
    finally:
        await delete_topics(settings, names)
        del items
        gc.unfreeze()
    n = args.events
    figures = {
        "produce": n / produce_s,
        "raw consume": n / consume_s,
        "raw insert": n / insert_s,
        "end to end": n / e2e_s,
    }
    print("  " + ", ".join(f"{k} {v:,.0f}/s" for k, v in figures.items()))
    print(
        f"  consumer: {stats.batches} batches in {e2e_s:.1f}s, validating {stats.parse_seconds:.1f}s, "
        f"storing {stats.store_seconds:.1f}s (wall, overlapping); {stats.last_error}"
    )
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--query-rows", type=int, default=10_000_000)
    parser.add_argument("--query-runs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=10_000, help="consumer batch size")
    parser.add_argument("--linger-ms", type=int, default=200, help="consumer batch time bound")
    parser.add_argument("--repeat", type=int, default=1, help="ingest runs; medians are reported")
    parser.add_argument("--clickhouse-url", default=None, help="default: chDB in a temp dir")
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()

    base = get_settings()
    tmp = None
    if args.clickhouse_url:
        url = args.clickhouse_url
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-usage-")
        url = f"chdb://{tmp.name}"
    store = get_store(url)
    migrate(store)
    print(f"store {store.url}; kafka {base.kafka_bootstrap_servers}; events {args.events:,} x {args.repeat}")
    try:
        if not args.skip_ingest and args.events > 0:
            runs = []
            for i in range(args.repeat):
                print(f"ingest run {i + 1}/{args.repeat}")
                runs.append(await one_run(args, store, base))
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"\nmedians over {len(runs)} run(s):")
            for k, v in med.items():
                print(f"  {k:<12} {v:>12,.0f} events/s")
            print(f"  end to end / raw consume = {med['end to end'] / med['raw consume']:.2f}")
            print(f"  end to end / raw insert  = {med['end to end'] / med['raw insert']:.2f}")
            print(f"  target end to end >= 100,000/s: {'met' if med['end to end'] >= 100_000 else 'NOT met'}")
        if args.query_rows > 0:
            print()
            results = await asyncio.to_thread(query_bench, store, args.query_rows, args.query_runs)
            print(f"usage query over {args.query_rows:,} events ({args.query_runs} runs each):")
            for name, (p50, p95, summary) in results.items():
                print(f"  {name:<32} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms   ({summary})")
    finally:
        store.close()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
