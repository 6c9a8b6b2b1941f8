"""The scheduler over the real stack: due work found in Postgres, published to Kafka once
per unit, applied by the real command consumer. One pass renews what ended, reminds of a
trial ending within three days and expires an incomplete subscription after 23 hours; the
next pass publishes nothing; two schedulers at once, and one killed with SIGKILL
mid-pass and started again, still make each period's invoice exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from billing import clock
from billing.ids import new_id
from billing.models import Invoice, ProcessedCommand, ScheduledCommand, Subscription
from billing.scheduling.service import DueWork
from consumers.scheduler import ClickHouseUsage, count_pass, due_by, run_pass
from contracts.enums import CommandStatus, InvoiceStatus
from contracts.settings import PROJECT_ROOT
from contracts.subscriptions import SubscriptionExpireIncomplete, SubscriptionNotifyTrialEnding, SubscriptionRenew
from producers.publisher import create_broker
from tests.api.conftest import TenantClient, new_tenant
from tests.api.test_credit_notes import events
from tests.api.test_renewals import period_ended
from tests.api.test_subscriptions import customer, ok, price, subscribe
from tests.api.test_usage_events import SESSION_CLICKHOUSE_URL


async def fresh_client(api: Any, session_factory: Any, name: str, renewal_draft_minutes: int = 0) -> TenantClient:
    """A new organization; by default its renewals are finalized at once (no draft period),
    so a pass's renewals are all it publishes."""
    client = TenantClient(api, await new_tenant(session_factory, name))
    await ok(
        await client.patch("/v1/billing-settings", json={"invoicing": {"renewalDraftMinutes": renewal_draft_minutes}})
    )
    return client


async def ended_subscriptions(client: TenantClient, session_factory: Any, count: int) -> list[str]:
    """`count` sent-invoice subscriptions whose first period has just ended."""
    buyer = await customer(client)
    plan = await price(client, name="Scheduled plan", unitAmount=1500)
    ids = []
    for _ in range(count):
        created = await subscribe(
            client,
            customer=buyer["id"],
            items=[{"price": plan["id"]}],
            collectionMethod="send_invoice",
            daysUntilDue=30,
        )
        await period_ended(session_factory, created["id"])
        ids.append(created["id"])
    return ids


async def applied(session_factory: Any, command_ids: list[str], timeout: float = 30) -> dict[str, ProcessedCommand]:
    """The consumer's record of each command, once it has one for all of them."""
    async with asyncio.timeout(timeout):
        while True:
            async with session_factory() as session:
                rows = (
                    await session.scalars(select(ProcessedCommand).where(ProcessedCommand.command_id.in_(command_ids)))
                ).all()
            if len(rows) == len(set(command_ids)):
                return {row.command_id: row for row in rows}
            await asyncio.sleep(0.1)


async def cycle_invoices(session_factory: Any, subscription_ids: list[str]) -> Counter[str]:
    """How many renewal invoices each subscription has."""
    async with session_factory() as session:
        rows = await session.execute(
            select(Invoice.subscription_id, func.count())
            .where(Invoice.subscription_id.in_(subscription_ids), Invoice.billing_reason == "subscription_cycle")
            .group_by(Invoice.subscription_id)
        )
    return Counter(dict(rows.all()))


class Pass:
    """`run_pass` with its own Kafka producer, recording what it published."""

    def __init__(self, session_factory: Any, organization_id: str) -> None:
        self.session_factory = session_factory
        self.organization_id = organization_id
        self.published: list[DueWork] = []

    async def run(self, batch_size: int = 500) -> Counter[str]:
        broker = create_broker()
        await broker.start()
        try:
            return await run_pass(
                self.session_factory,
                broker,
                due_by(),
                batch_size=batch_size,
                organization_ids=[self.organization_id],
                published=self.published.extend,
                # the test session's ClickHouse, opened once a draft has metered lines
                meter_total=ClickHouseUsage(SESSION_CLICKHOUSE_URL),
            )
        finally:
            await broker.stop()


async def test_one_pass_renews_reminds_and_expires_and_the_next_publishes_nothing(
    api: Any, session_factory: Any
) -> None:
    client = await fresh_client(api, session_factory, "Scheduled work")
    (ended,) = await ended_subscriptions(client, session_factory, 1)
    buyer = await customer(client)
    plan = await price(client, name="Trial plan", unitAmount=900)
    trial_end = clock.now() + timedelta(days=2)
    trialing = await subscribe(
        client,
        customer=buyer["id"],
        items=[{"price": plan["id"]}],
        trialEnd=trial_end.isoformat(),
        collectionMethod="send_invoice",
        daysUntilDue=7,
    )
    later_trial = await subscribe(  # its reminder is due in four days, not now
        client,
        customer=buyer["id"],
        items=[{"price": plan["id"]}],
        trialPeriodDays=7,
        collectionMethod="send_invoice",
        daysUntilDue=7,
    )
    unpaid = await subscribe(
        client, customer=buyer["id"], items=[{"price": plan["id"]}], paymentBehavior="default_incomplete"
    )
    young = await subscribe(
        client, customer=buyer["id"], items=[{"price": plan["id"]}], paymentBehavior="default_incomplete"
    )
    assert (trialing["status"], later_trial["status"], unpaid["status"]) == ("trialing", "trialing", "incomplete")
    async with session_factory() as session, session.begin():
        row = await session.get(Subscription, unpaid["id"])
        row.start_date = clock.now() - timedelta(hours=23, minutes=1)

    scheduler = Pass(session_factory, client.tenant.organization_id)
    counts = await scheduler.run()
    assert counts == {
        SubscriptionRenew.command_type: 1,
        SubscriptionNotifyTrialEnding.command_type: 1,
        SubscriptionExpireIncomplete.command_type: 1,
    }
    by_type = {work.command.command_type: work for work in scheduler.published}
    assert by_type[SubscriptionRenew.command_type].subject_id == ended
    assert by_type[SubscriptionNotifyTrialEnding.command_type].subject_id == trialing["id"]
    assert by_type[SubscriptionExpireIncomplete.command_type].subject_id == unpaid["id"]
    records = await applied(session_factory, [work.command_id for work in scheduler.published])
    assert {row.status for row in records.values()} == {CommandStatus.succeeded}, [r.error for r in records.values()]

    renewed = await ok(await client.get(f"/v1/subscriptions/{ended}"))
    invoice = await ok(await client.get(f"/v1/invoices/{renewed['latestInvoice']}"))
    assert (invoice["billingReason"], invoice["total"], invoice["periodStart"]) == (
        "subscription_cycle",
        1500,
        renewed["currentPeriodStart"],
    )
    expired = await ok(await client.get(f"/v1/subscriptions/{unpaid['id']}"))
    assert expired["status"] == "incomplete_expired"
    assert (await ok(await client.get(f"/v1/subscriptions/{young['id']}")))["status"] == "incomplete"
    reminders = await events(session_factory, client.tenant.organization_id, "customer.subscription.trial_will_end")
    assert [(data["id"], data["trialEnd"]) for _, data in reminders] == [(trialing["id"], trialing["trialEnd"])]

    again = Pass(session_factory, client.tenant.organization_id)
    assert await again.run() == {} and again.published == []


async def test_two_schedulers_at_once_publish_each_unit_once(api: Any, session_factory: Any) -> None:
    client = await fresh_client(api, session_factory, "Two schedulers")
    ids = await ended_subscriptions(client, session_factory, 30)
    first, second = (
        Pass(session_factory, client.tenant.organization_id),
        Pass(session_factory, client.tenant.organization_id),
    )
    counts = await asyncio.gather(first.run(batch_size=3), second.run(batch_size=3))
    published = [work.command_id for work in first.published + second.published]
    assert sum(count[SubscriptionRenew.command_type] for count in counts) == 30 == len(set(published)) == len(published)
    assert first.published and second.published  # both took part
    await applied(session_factory, published)
    assert await cycle_invoices(session_factory, ids) == Counter(dict.fromkeys(ids, 1))


async def test_a_period_has_one_invoice_per_billing_reason(api: Any, session_factory: Any) -> None:
    """The database's own word: a second renewal invoice for the same period cannot be written."""
    client = await fresh_client(api, session_factory, "One invoice per period")
    (subscription_id,) = await ended_subscriptions(client, session_factory, 1)
    scheduler = Pass(session_factory, client.tenant.organization_id)
    await scheduler.run()
    await applied(session_factory, [work.command_id for work in scheduler.published])
    async with session_factory() as session:
        (renewal,) = (
            await session.scalars(
                select(Invoice).where(
                    Invoice.subscription_id == subscription_id, Invoice.billing_reason == "subscription_cycle"
                )
            )
        ).all()
    with pytest.raises(IntegrityError, match="invoices_subscription_id_period_start_period_end_billing_re_key"):
        async with session_factory() as session, session.begin():
            session.add(
                Invoice(
                    id=new_id("invoice"),
                    organization_id=renewal.organization_id,
                    customer_id=renewal.customer_id,
                    subscription_id=subscription_id,
                    currency=renewal.currency,
                    billing_reason="subscription_cycle",
                    period_start=renewal.period_start,
                    period_end=renewal.period_end,
                )
            )


def start_scheduler(env: dict[str, str], organization_id: str, log_path: str) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 (the scheduler process writes to it after we return)
    command = [sys.executable, "-m", "cli.main", "scheduler", "--organization", organization_id, "--batch-size", "1"]
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


async def claims(session_factory: Any, organization_id: str) -> int:
    async with session_factory() as session:
        return (
            await session.scalar(
                select(func.count())
                .select_from(ScheduledCommand)
                .where(ScheduledCommand.organization_id == organization_id)
            )
        ) or 0


async def renewal_invoices(session_factory: Any, subscription_ids: list[str]) -> list[tuple[InvoiceStatus, str | None]]:
    """The status and number of each of the subscriptions' renewal invoices."""
    async with session_factory() as session:
        rows = await session.execute(
            select(Invoice.status, Invoice.number).where(
                Invoice.subscription_id.in_(subscription_ids), Invoice.billing_reason == "subscription_cycle"
            )
        )
    return [(status, number) for status, number in rows.all()]


async def test_a_scheduler_killed_mid_pass_and_restarted_invoices_each_period_once(
    api: Any, session_factory: Any, database_url: str, tmp_path: Any
) -> None:
    # with Stripe's hour of draft period: each period ended days ago is renewed, then its
    # draft finalized, each exactly once
    client = await fresh_client(api, session_factory, "Killed scheduler", renewal_draft_minutes=60)
    organization_id = client.tenant.organization_id
    ids = await ended_subscriptions(client, session_factory, 40)
    env = {**os.environ, "DATABASE_URL": database_url}
    log_path = str(tmp_path / "scheduler.log")

    scheduler = start_scheduler(env, organization_id, log_path)
    try:
        killed_at = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and killed_at is None:
            claimed = await claims(session_factory, organization_id)
            if claimed >= 3:
                scheduler.send_signal(signal.SIGKILL)
                scheduler.wait(timeout=10)
                killed_at = claimed
            await asyncio.sleep(0.005)
        assert killed_at is not None, f"the scheduler claimed nothing within 60 s: {Path(log_path).read_text()}"
        assert killed_at < len(ids), "the kill came too late to be mid-pass"

        scheduler = start_scheduler(env, organization_id, log_path)
        deadline = time.monotonic() + 60
        while (opened := [s for s, _ in await renewal_invoices(session_factory, ids)].count(InvoiceStatus.open)) < len(
            ids
        ):
            assert time.monotonic() < deadline, (
                f"{opened} renewals finalized 60 s after the restart: {Path(log_path).read_text()}"
            )
            await asyncio.sleep(0.1)
        async with session_factory() as session:
            published = (
                await session.scalars(
                    select(ScheduledCommand.command_id).where(ScheduledCommand.organization_id == organization_id)
                )
            ).all()
        await applied(session_factory, list(published))
        await asyncio.sleep(1.0)  # anything still in flight would show up as a second invoice
        assert await cycle_invoices(session_factory, ids) == Counter(dict.fromkeys(ids, 1))
        assert await count_pass(session_factory, due_by(), [organization_id]) == 0
        # a unit the killed scheduler published but had not committed its claim for is
        # applied without a claim (its period moved on): at most one with a batch of one
        assert 2 * len(ids) - 1 <= await claims(session_factory, organization_id) <= 2 * len(ids)
        finalized = await renewal_invoices(session_factory, ids)
        assert {status for status, _ in finalized} == {InvoiceStatus.open}
        assert len({number for _, number in finalized}) == len(ids)  # each numbered once
    finally:
        if scheduler.poll() is None:
            scheduler.send_signal(signal.SIGTERM)
            try:
                scheduler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                scheduler.kill()


def test_a_unit_of_work_has_one_command_id_whoever_publishes_it() -> None:
    """The id comes from the command: the subscription, the period end and the action."""
    moment = clock.now()

    def renewal(organization_id: str, period_end: datetime) -> DueWork:
        return DueWork(organization_id, "sub_1", period_end, SubscriptionRenew(id="sub_1", periodEnd=period_end))

    work = renewal("org_a", moment)
    later = renewal("org_a", moment + timedelta(days=30))
    other_tenant = renewal("org_b", moment)
    reminder = DueWork("org_a", "sub_1", moment, SubscriptionNotifyTrialEnding(id="sub_1", trialEnd=moment))
    assert work.command_id == renewal("org_a", moment).command_id
    assert len({work.command_id, later.command_id, other_tenant.command_id, reminder.command_id}) == 4
    assert work.envelope(moment).commandId == work.command_id


async def test_renewals_run_publishes_one_pass_and_reports_what_the_consumer_did(
    api: Any, session_factory: Any, database_url: str
) -> None:
    client = await fresh_client(api, session_factory, "Renewals from the CLI")
    ids = await ended_subscriptions(client, session_factory, 3)
    command = [sys.executable, "-m", "cli.main", "renewals", "run"]
    process = await asyncio.create_subprocess_exec(
        *command,
        "--organization",
        client.tenant.organization_id,
        "--wait",
        "30",
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "COLUMNS": "120"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    assert "3 units of work" in output
    (row,) = [line for line in output.splitlines() if SubscriptionRenew.command_type in line]
    assert [cell.strip() for cell in row.split("│")[1:6]] == [SubscriptionRenew.command_type, "3", "3", "0", "0"], (
        output
    )
    assert await cycle_invoices(session_factory, ids) == Counter(dict.fromkeys(ids, 1))

    again = await asyncio.create_subprocess_exec(
        *command,
        "--organization",
        client.tenant.organization_id,
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert "0 units of work" in (await again.communicate())[0].decode()
