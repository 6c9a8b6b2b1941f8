"""Metered items billed in arrears through the real stack: usage events sent to the API,
consumed into ClickHouse (chDB) by the analytics consumer; the scheduler's pass renews the
subscription (a draft with the ended period's metered line), and its next pass, the draft
period over, reads each metered line's total from ClickHouse and finalizes the invoice at
those quantities. Usage of the ended period that arrives within the draft period is
billed; usage after the finalization, or of the new period, is not. The upcoming invoice
shows the usage counted so far."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from billing import clock
from billing.models import ProcessedCommand
from contracts.enums import CommandStatus
from contracts.invoices import InvoiceFinalizeDraft
from contracts.subscriptions import SubscriptionRenew
from tests.api.conftest import TenantClient, new_tenant
from tests.api.test_document_pdfs import pdf_text
from tests.api.test_renewals import period_ended
from tests.api.test_scheduler import Pass, applied
from tests.api.test_subscriptions import customer, invoice_of, ok, parse, price, subscribe
from tests.api.test_usage_events import (  # noqa: F401  (a fixture)
    AnalyticsStack,
    analytics_api,
    create_meter,
    event,
    iso,
    send,
    wait_usage,
)


async def counted(client: TenantClient, meter: dict[str, Any], customer_id: str, since: datetime, events: int) -> None:
    """Sends a barrier event (value 0) and waits until ClickHouse counts the customer's
    `events` since `since` and it: an organization's events are consumed in order."""
    barrier = await send(client, event(meter["eventName"], customer_id, 0))
    assert barrier.status_code == 202, barrier.text
    window = {
        "meter": meter["id"],
        "customer": customer_id,
        "from": iso(since),
        "to": iso(clock.now() + timedelta(hours=1)),
    }
    await wait_usage(client, window, events + 1)


async def one_pass(scheduler: Pass, session_factory: Any, command_type: str) -> None:
    """A scheduler pass that publishes one command of `command_type`, applied successfully."""
    before = len(scheduler.published)
    counts = await scheduler.run()
    assert counts == {command_type: 1}, counts
    (record,) = (await applied(session_factory, [w.command_id for w in scheduler.published[before:]])).values()
    assert record.status is CommandStatus.succeeded, record.error


async def test_metered_usage_is_billed_in_arrears_at_the_draft_periods_end(
    analytics_api: AnalyticsStack,
    session_factory: Any,
) -> None:
    client = TenantClient(analytics_api.client, await new_tenant(session_factory, "Metered renewals"))
    scheduler = Pass(session_factory, client.tenant.organization_id)
    meter = await create_meter(client, aggregation="sum")
    seats = await price(client, name="Seats", unitAmount=1000)
    calls = await price(
        client,
        name="API calls",
        unitAmount=25,
        recurring={"interval": "month", "usageType": "metered", "meter": meter["id"]},
    )
    buyer, neighbour = await customer(client), await customer(client)
    created = await subscribe(
        client,
        customer=buyer["id"],
        items=[{"price": seats["id"], "quantity": 2}, {"price": calls["id"]}],
        collectionMethod="send_invoice",
        daysUntilDue=30,
    )
    first = await invoice_of(client, created)
    assert [line["amount"] for line in first["lines"]] == [2000]  # metered: nothing in advance
    period_end = await period_ended(session_factory, created["id"])
    subscription = await ok(await client.get(f"/v1/subscriptions/{created['id']}"))
    period_start = parse(subscription["currentPeriodStart"])

    in_period = period_start + timedelta(days=3)
    sent = await send(
        client,
        event(meter["eventName"], buyer["id"], 2, timestamp=iso(in_period)),
        event(meter["eventName"], buyer["id"], "3.5", timestamp=iso(in_period + timedelta(days=10))),
        event(meter["eventName"], neighbour["id"], 100, timestamp=iso(in_period)),  # another customer's
        event(meter["eventName"], buyer["id"], 40, timestamp=iso(period_end + timedelta(hours=2))),  # the next period's
    )
    assert sent.status_code == 202, sent.text
    await counted(client, meter, buyer["id"], period_start, 3)

    # the upcoming invoice shows the usage counted so far: 2 + 3.5 calls, 6 billed
    preview = await ok(
        await client.post("/v1/invoices/upcoming", json={"customer": buyer["id"], "subscription": created["id"]})
    )
    assert [(line["quantity"], line["amount"]) for line in preview["lines"]] == [(6, 150), (2, 2000)]
    assert preview["total"] == 2150

    # the period's end: a draft, its metered line for the ended period at zero until finalized
    await one_pass(scheduler, session_factory, SubscriptionRenew.command_type)
    renewed = await ok(await client.get(f"/v1/subscriptions/{created['id']}"))
    draft = await invoice_of(client, renewed)
    assert draft["status"] == "draft" and parse(draft["automaticallyFinalizesAt"]) == period_end + timedelta(hours=1)
    usage_line, seats_line = draft["lines"]
    assert (usage_line["quantity"], usage_line["amount"]) == (0, 0)
    assert (parse(usage_line["periodStart"]), parse(usage_line["periodEnd"])) == (period_start, period_end)
    assert (seats_line["amount"], parse(seats_line["periodStart"])) == (2000, period_end)

    # usage of the ended period arriving within the draft period is billed
    late = await send(
        client, event(meter["eventName"], buyer["id"], 4, timestamp=iso(period_end - timedelta(minutes=1)))
    )
    assert late.status_code == 202, late.text
    await counted(client, meter, buyer["id"], period_start, 5)
    await one_pass(scheduler, session_factory, InvoiceFinalizeDraft.command_type)
    (finalizing,) = [w for w in scheduler.published if w.command.command_type == InvoiceFinalizeDraft.command_type]
    assert finalizing.measured is not None and finalizing.measured.payload()["usage"] == [
        {"line": usage_line["id"], "quantity": 10}  # 2 + 3.5 + 4 = 9.5, a used unit's fraction rounded up
    ]
    invoice = await ok(await client.get(f"/v1/invoices/{draft['id']}"))
    assert (invoice["status"], invoice["automaticallyFinalizesAt"]) == ("open", None)
    billed = invoice["lines"][0]
    assert (billed["quantity"], billed["amount"], billed["description"]) == (
        10,
        250,
        "10 × API calls (at 0.25 USD each)",
    )
    assert (invoice["subtotal"], invoice["total"], invoice["amountDue"]) == (2250, 2250, 2250)
    pdf = await client.get(f"/v1/invoices/{draft['id']}/pdf")
    assert "10 × API calls (at 0.25 USD each)" in pdf_text(pdf)

    # later usage changes nothing: the invoice is finalized, and the pass has nothing to do
    after = await send(
        client, event(meter["eventName"], buyer["id"], 7, timestamp=iso(period_end - timedelta(minutes=2)))
    )
    assert after.status_code == 202, after.text
    await counted(client, meter, buyer["id"], period_start, 7)
    assert await scheduler.run() == {}
    assert (await ok(await client.get(f"/v1/invoices/{draft['id']}")))["total"] == 2250
    async with session_factory() as session:
        records = (
            await session.scalars(
                select(ProcessedCommand.status).where(
                    ProcessedCommand.command_id.in_([w.command_id for w in scheduler.published])
                )
            )
        ).all()
    assert list(records) == [CommandStatus.succeeded] * 2
