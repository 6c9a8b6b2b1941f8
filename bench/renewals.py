"""Renewals at scale: N subscriptions (default 100,000) across 20 organizations fall due at
the same moment; the scheduler and the command consumer (a real `billing consume`
process) invoice each, and the payment worker charges each against stripe-mock.

Prints renewals/s and the time to drain (every renewal invoiced, every charge answered),
and, measured in the same run on the same database, the write path's commands/s (N
clients creating customers through a real `billing api`) for the ratio. Then it checks:
exactly N renewal invoices, none twice, each total equal to a recomputation here (flat
prices: unit amount x quantity; graduated tiers summed tier by tier).

    .venv/bin/python bench/renewals.py [--subscriptions 100000] [--organizations 20] [--repeats 3]

Needs the local stack (`billing stack up`). It uses a database and Kafka topics of its
own (`billing_bench_renewals`, prefix `bench-<random>.`). The periods end an hour and a
minute before the run, so each renewal's draft period (Stripe's hour, the default) is over
at once: a renewal is measured through its draft, its finalization and its charge. Metered
prices are not among the subscriptions yet (their usage would be read from ClickHouse by
the consume process's scheduler).

stripe-mock answers every off-session confirmation with requires_payment_method, so each
charge comes back declined and dunning schedules its retry: the payment worker's round
trip is measured all the same.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.write_path import bench_stack, closed_loop, cpu_seconds, spawn, wait_healthy  # noqa: E402
from billing import clock  # noqa: E402
from billing.catalog.service import create_price, create_product  # noqa: E402
from billing.db.sessions import create_engine, create_session_factory, tenant_session  # noqa: E402
from billing.ids import new_id  # noqa: E402
from billing.models import (  # noqa: E402
    Customer,
    CustomerPaymentMethod,
    Invoice,
    Payment,
    Subscription,
    SubscriptionItem,
)
from billing.organizations.service import create_organization  # noqa: E402
from billing.organizations.stripe_account import ensure_keyring  # noqa: E402
from billing.subscriptions.periods import Interval, first_period  # noqa: E402
from contracts.catalog import PriceCreate, ProductCreate  # noqa: E402
from contracts.enums import (  # noqa: E402
    CollectionMethod,
    InvoiceStatus,
    PaymentMethodType,
    PaymentStatus,
    RecurringInterval,
    SubscriptionStatus,
)
from contracts.settings import get_settings  # noqa: E402

DATABASE = "billing_bench_renewals"
MONTH = Interval(RecurringInterval.month, 1)
FLAT_AMOUNT = 1000
# graduated: the first 5 units at 1000, every further unit at 800 plus 500 once
TIERS = [{"upTo": 5, "unitAmount": 1000}, {"upTo": "inf", "unitAmount": 800, "flatAmount": 500}]


def tiered_total(quantity: int) -> int:
    """The graduated price's amount for `quantity`, recomputed here (not by billing/)."""
    first = min(quantity, 5) * 1000
    rest = quantity - 5
    return first + (rest * 800 + 500 if rest > 0 else 0)


async def seed(database_url: str, organizations: int, subscriptions: int) -> tuple[str, dict[str, int]]:
    """The organizations (each with a Stripe test key, for stripe-mock), a flat and a tiered
    monthly price each, and the subscriptions (a customer and a card each), their periods
    ending weeks from now (the bench ends them all at once later). The first organization's API secret, and each subscription's
    expected renewal total."""
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    keyring = ensure_keyring(get_settings())
    expected: dict[str, int] = {}
    secret = ""
    period = first_period(clock.now() - timedelta(days=10), MONTH)  # ends some 20 days from now
    per_organization = subscriptions // organizations
    for number in range(organizations):
        async with sessions() as session, session.begin():
            organization, key = await create_organization(session, f"Renewals {number}")
            organization.stripe_secret_key_encrypted = keyring.encrypt("sk_test_" + uuid.uuid4().hex[:24])
            secret = secret or key.secret
        async with tenant_session(sessions, organization.id) as session, session.begin():
            product = await create_product(session, ProductCreate(name="Seats"))
            monthly = {"interval": "month"}
            flat, _ = await create_price(
                session, PriceCreate(product=product.id, currency="usd", unitAmount=FLAT_AMOUNT, recurring=monthly)
            )
            tiered, _ = await create_price(
                session,
                PriceCreate(
                    product=product.id,
                    currency="usd",
                    billingScheme="tiered",
                    tiersMode="graduated",
                    tiers=TIERS,
                    recurring=monthly,
                ),
            )
        for start in range(0, per_organization, 2000):
            async with tenant_session(sessions, organization.id) as session, session.begin():
                rows: dict[type, list[object]] = {
                    Customer: [],
                    CustomerPaymentMethod: [],
                    Subscription: [],
                    SubscriptionItem: [],
                }
                for index in range(start, min(start + 2000, per_organization)):
                    quantity = 1 + index % 9
                    price = flat if index % 2 else tiered
                    customer_id, subscription_id = new_id("customer"), new_id("subscription")
                    rows[Customer].append(
                        Customer(
                            id=customer_id,
                            organization_id=organization.id,
                            email=f"renewal-{index}@example.com",
                            currency="usd",
                            gateway_customer_id="cus_bench",
                        )
                    )
                    rows[CustomerPaymentMethod].append(
                        CustomerPaymentMethod(
                            id=new_id("payment_method"),
                            organization_id=organization.id,
                            customer_id=customer_id,
                            gateway_payment_method_id=f"pm_bench{uuid.uuid4().hex[:16]}",
                            type=PaymentMethodType.card,
                        )
                    )
                    rows[Subscription].append(
                        Subscription(
                            id=subscription_id,
                            organization_id=organization.id,
                            customer_id=customer_id,
                            status=SubscriptionStatus.active,
                            currency="usd",
                            collection_method=CollectionMethod.charge_automatically,
                            start_date=period.start,
                            billing_cycle_anchor=period.start,
                            current_period_start=period.start,
                            current_period_end=period.end,
                        )
                    )
                    rows[SubscriptionItem].append(
                        SubscriptionItem(
                            id=new_id("subscription_item"),
                            organization_id=organization.id,
                            subscription_id=subscription_id,
                            price_id=price.id,
                            quantity=quantity,
                        )
                    )
                    expected[subscription_id] = FLAT_AMOUNT * quantity if price is flat else tiered_total(quantity)
                for batch in rows.values():  # referenced rows first: no relationships tell the ORM the order
                    session.add_all(batch)
                    await session.flush()
                await session.flush()
                await session.execute(
                    update(Customer)
                    .where(Customer.organization_id == organization.id, Customer.default_payment_method_id.is_(None))
                    .values(
                        default_payment_method_id=select(CustomerPaymentMethod.id)
                        .where(CustomerPaymentMethod.customer_id == Customer.id)
                        .scalar_subquery()
                    )
                )
    await engine.dispose()
    return secret, expected


async def progress(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """(renewal invoices finalized, charges answered) so far."""
    async with sessions() as session:
        invoices = await session.scalar(
            select(func.count())
            .select_from(Invoice)
            .where(Invoice.billing_reason == "subscription_cycle", Invoice.status != InvoiceStatus.draft)
        )
        answered = await session.scalar(
            select(func.count())
            .select_from(Payment)
            .where(Payment.status.not_in((PaymentStatus.pending, PaymentStatus.processing)))
        )
    return invoices or 0, answered or 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--organizations", type=int, default=20)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients of the write path baseline")
    parser.add_argument("--seconds", type=float, default=5, help="seconds per write path run")
    parser.add_argument("--repeats", type=int, default=3, help="write path runs (their median is the baseline)")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    count = args.subscriptions - args.subscriptions % args.organizations

    database_url, env, logs = await bench_stack(DATABASE)
    port = int(env["BILLING_API_PORT"])
    seeding = time.monotonic()
    secret, expected = await seed(database_url, args.organizations, count)
    print(f"seeded {count:,} subscriptions in {args.organizations} organizations in {time.monotonic() - seeding:.1f} s")

    processes = [
        spawn(["consume"], env, logs / "renewals-consumer.log"),
        spawn(["api"], env, logs / "renewals-api.log"),
    ]
    base = f"http://127.0.0.1:{port}"
    engine = create_engine(database_url, pool_size=2)
    sessions = create_session_factory(engine)
    try:
        await wait_healthy(base)
        await closed_loop(base, secret, args.clients, 2)  # warm-up: group join, connections, caches
        rates = []
        for run in range(args.repeats):
            done, _, failures = await closed_loop(base, secret, args.clients, args.seconds)
            rates.append(done / args.seconds)
            print(f"  write path run {run + 1}: {done / args.seconds:,.0f} commands/s ({failures} failures)")
        write_path = statistics.median(rates)

        # every period ended an hour ago (its draft period over): the scheduler inside
        # `billing consume` renews them on its next pass, and finalizes their drafts on the next
        async with sessions() as session, session.begin():
            await session.execute(
                update(Subscription).values(
                    current_period_start=Subscription.current_period_start - text("interval '1 day'"),
                    current_period_end=func.now() - text("interval '61 minutes'"),
                )
            )
        due_at = time.monotonic()
        cpu_before = cpu_seconds(processes[0].pid)
        invoiced_at = None
        while True:
            invoices, answered = await progress(sessions)
            now = time.monotonic()
            if invoices >= count and invoiced_at is None:
                invoiced_at = now
            if invoices >= count and answered >= count:
                break
            if now - due_at > args.timeout:
                raise SystemExit(f"not drained after {args.timeout:.0f} s: {invoices} invoices, {answered} charges")
            if int(now - due_at) % 5 == 0:
                print(f"  {now - due_at:6.1f} s: {invoices:,} invoiced, {answered:,} charged", flush=True)
            await asyncio.sleep(1.0)
        drained_at = time.monotonic()
        consumer_cpu = cpu_seconds(processes[0].pid) - cpu_before
        assert invoiced_at is not None
        renewal_rate = count / (invoiced_at - due_at)
        print(
            f"renewals: {count:,} invoiced and finalized in {invoiced_at - due_at:.1f} s ({renewal_rate:,.0f} renewals/s)"
        )
        print(f"drained (every charge answered by stripe-mock) in {drained_at - due_at:.1f} s")
        print(
            f"consume process CPU per renewal (consumer, scheduler, payment worker): {1000 * consumer_cpu / count:.2f} ms"
        )
        print(f"write path (median of {args.repeats}): {write_path:,.0f} commands/s")
        print(f"ratio renewals/s / write path commands/s: {renewal_rate / write_path:.2f}")

        async with sessions() as session:
            rows = (
                await session.execute(
                    select(Invoice.subscription_id, Invoice.total).where(Invoice.billing_reason == "subscription_cycle")
                )
            ).all()
        per_subscription = Counter(subscription_id for subscription_id, _ in rows)
        twice = [subscription_id for subscription_id, n in per_subscription.items() if n > 1]
        wrong = [(s, total, expected.get(s)) for s, total in rows if expected.get(s) != total]
        print(
            f"check: {len(rows):,} renewal invoices for {count:,} subscriptions, {len(twice)} twice, "
            f"{len(wrong)} totals differing from the recomputation"
        )
        if len(rows) != count or twice or wrong or set(per_subscription) != set(expected):
            raise SystemExit(f"FAILED: twice {twice[:5]}, wrong {wrong[:5]}")
        print("check passed")
    finally:
        await engine.dispose()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    asyncio.run(main())
