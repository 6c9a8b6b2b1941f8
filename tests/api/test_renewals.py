"""A period's end through the real stack: a `subscription.renew` command published to
Kafka (as the scheduler will) advances the period and invoices it exactly as the
upcoming-invoice preview said, with a create_prorations change's lines on it; a repeat
changes nothing; a period not ended yet is refused; cancel-at-period-end ends the
subscription; a trial's end follows trialSettings (invoice and activate, cancel or pause).

The test stands in for time: it moves a subscription's current period into the past."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from billing import clock
from billing.ids import new_id
from billing.models import Customer, CustomerPaymentMethod, Invoice, Payment, ProcessedCommand, Subscription
from billing.subscriptions.periods import Interval, first_period
from contracts.commands import Command
from contracts.enums import CommandStatus, PaymentMethodType, RecurringInterval
from contracts.envelopes import Actor, CommandEnvelope
from contracts.invoices import InvoiceFinalizeDraft, MeteredUsage
from contracts.subscriptions import SubscriptionExpireIncomplete, SubscriptionRenew
from producers.publisher import create_broker, publish_command
from tests.api.conftest import TenantClient, assert_error
from tests.api.test_subscriptions import customer, invoice_of, ok, parse, price, subscribe

MONTH = Interval(RecurringInterval.month, 1)


async def period_ended(session_factory: Any, subscription_id: str, *, trial: bool = False) -> datetime:
    """Moves the subscription's current period (and trial) a month back, so it has just ended."""
    period = first_period(clock.now() - timedelta(days=35), MONTH)
    async with session_factory() as session, session.begin():
        row = await session.get(Subscription, subscription_id)
        row.current_period_start, row.current_period_end = period.start, period.end
        row.billing_cycle_anchor = period.end if trial else period.start
        row.start_date = period.start
        if trial:
            row.trial_start, row.trial_end = period.start, period.end
        if row.cancel_at is not None:
            row.cancel_at = period.end
    return period.end


async def renew(
    client: TenantClient, session_factory: Any, subscription_id: str, period_end: datetime, *, finalize: bool = True
) -> Any:
    """Publishes the renewal; then, unless told not to, the finalization of the draft it
    left (the organization's draft period is over: the period ended days ago), as the
    scheduler does. The renewal's record."""
    renewed = await publish(client, session_factory, SubscriptionRenew(id=subscription_id, periodEnd=period_end))
    if finalize:
        async with session_factory() as session:
            drafts = (
                await session.execute(
                    select(Invoice.id, Invoice.automatically_finalizes_at).where(
                        Invoice.subscription_id == subscription_id, Invoice.automatically_finalizes_at.is_not(None)
                    )
                )
            ).all()
        for invoice_id, finalizes_at in drafts:
            finalized = await publish(
                client, session_factory, InvoiceFinalizeDraft(id=invoice_id, automaticallyFinalizesAt=finalizes_at)
            )
            assert finalized.status is CommandStatus.succeeded, finalized.error
    return renewed


async def publish(client: TenantClient, session_factory: Any, command: Command[Any]) -> Any:
    """Publishes a command to Kafka (as the scheduler will) and waits for the consumer's record of it."""
    envelope = CommandEnvelope(
        commandId=new_id("subscription"),
        type=command.command_type,
        organizationId=client.tenant.organization_id,
        actor=Actor(type="system", id="renewal-test"),
        issuedAt=clock.now(),
        payload=command.payload(),
    )
    broker = create_broker()
    await broker.start()
    try:
        await publish_command(broker, envelope)
    finally:
        await broker.stop()
    async with asyncio.timeout(20):
        while True:
            async with session_factory() as session:
                row = await session.get(ProcessedCommand, envelope.commandId)
            if row is not None:
                return row
            await asyncio.sleep(0.05)


async def test_a_renewal_invoices_the_next_period_as_previewed_once(
    api_client: TenantClient, session_factory: Any
) -> None:
    buyer = await customer(api_client)
    seats = await price(api_client, name="Renewed seats", unitAmount=1000)
    created = await subscribe(
        api_client,
        customer=buyer["id"],
        items=[{"price": seats["id"], "quantity": 2}],
        collectionMethod="send_invoice",
        daysUntilDue=30,
    )
    period_end = await period_ended(session_factory, created["id"])
    # a mid-period change made with create_prorations waits for the renewal's invoice
    (item,) = created["items"]
    async with session_factory() as session, session.begin():
        row = await session.get(Subscription, created["id"])
        halfway = row.current_period_start + (row.current_period_end - row.current_period_start) / 2
    changed = await api_client.patch(
        f"/v1/subscriptions/{created['id']}",
        json={"items": [{"id": item["id"], "quantity": 3}], "prorationDate": halfway.isoformat()},
    )
    assert changed.status_code == 200, changed.text
    preview = await ok(
        await api_client.post("/v1/invoices/upcoming", json={"customer": buyer["id"], "subscription": created["id"]})
    )

    early = await renew(api_client, session_factory, created["id"], period_end + timedelta(days=31))
    assert early.status is CommandStatus.succeeded  # not this period's end: a repeat's no-op
    applied = await renew(api_client, session_factory, created["id"], period_end, finalize=False)
    assert applied.status is CommandStatus.succeeded, applied.error
    renewed = await ok(await api_client.get(f"/v1/subscriptions/{created['id']}"))
    assert renewed["currentPeriodStart"] == preview["periodStart"] and renewed["status"] == "active"
    # a draft for the organization's draft period (an hour by default, as Stripe's), unnumbered
    draft = await invoice_of(api_client, renewed)
    assert (draft["status"], draft["number"]) == ("draft", None)
    assert parse(draft["automaticallyFinalizesAt"]) == period_end + timedelta(hours=1)
    finalizing = InvoiceFinalizeDraft(id=draft["id"], automaticallyFinalizesAt=period_end + timedelta(hours=1))
    # usage is priced on metered lines only, and on this invoice's: refused, the draft unchanged
    licensed_line = draft["lines"][-1]["id"]
    refusals = [
        (finalizing.model_copy(update={"usage": [MeteredUsage(line=licensed_line, quantity=5)]}), "parameter_invalid"),
        (finalizing.model_copy(update={"usage": [MeteredUsage(line="il_elsewhere", quantity=5)]}), "resource_missing"),
    ]
    for refused, code in refusals:
        record = await publish(api_client, session_factory, refused)
        assert (record.status, record.error["code"]) == (CommandStatus.failed, code)
    assert await invoice_of(api_client, renewed) == draft
    finalized = await publish(api_client, session_factory, finalizing)
    assert finalized.status is CommandStatus.succeeded, finalized.error
    invoice = await invoice_of(api_client, renewed)
    assert invoice["billingReason"] == "subscription_cycle" and invoice["status"] == "open"
    assert invoice["number"] is not None and invoice["automaticallyFinalizesAt"] is None
    repeated = await publish(api_client, session_factory, finalizing)  # a repeat (a new command id) changes nothing
    assert repeated.status is CommandStatus.succeeded
    assert (await invoice_of(api_client, renewed))["number"] == invoice["number"]
    assert [(line["description"], line["amount"], line["proration"]) for line in invoice["lines"]] == [
        (line["description"], line["amount"], line["proration"]) for line in preview["lines"]
    ]
    assert (invoice["periodStart"], invoice["periodEnd"]) == (preview["periodStart"], preview["periodEnd"])
    assert (invoice["total"], invoice["amountDue"]) == (preview["total"], preview["amountDue"])
    assert invoice["lines"][-1]["amount"] == 3000 and sum(line["proration"] for line in invoice["lines"]) == 2

    again = await renew(api_client, session_factory, created["id"], period_end)  # a repeat
    assert again.status is CommandStatus.succeeded
    invoices = (await api_client.get("/v1/invoices", params={"subscription": created["id"]})).json()["data"]
    assert [i["billingReason"] for i in invoices] == ["subscription_cycle", "subscription_create"]

    # the new period has not ended: refused, nothing written
    not_due = await renew(
        api_client, session_factory, created["id"], datetime.fromisoformat(renewed["currentPeriodEnd"])
    )
    assert (not_due.status, not_due.error["code"], not_due.error["param"]) == (
        CommandStatus.failed,
        "subscription_not_due",
        "periodEnd",
    )


async def test_cancel_at_period_end_ends_the_subscription_at_its_renewal(
    api_client: TenantClient, session_factory: Any
) -> None:
    created = await subscribe(
        api_client,
        customer=(await customer(api_client))["id"],
        items=[{"price": (await price(api_client))["id"]}],
        collectionMethod="send_invoice",
        daysUntilDue=30,
        cancelAtPeriodEnd=True,
    )
    period_end = await period_ended(session_factory, created["id"])
    applied = await renew(api_client, session_factory, created["id"], period_end)
    assert applied.status is CommandStatus.succeeded, applied.error
    ended = await ok(await api_client.get(f"/v1/subscriptions/{created['id']}"))
    assert (ended["status"], ended["cancelAtPeriodEnd"], ended["endedAt"] is not None) == ("canceled", False, True)
    invoices = (await api_client.get("/v1/invoices", params={"subscription": created["id"]})).json()["data"]
    assert len(invoices) == 1  # nothing billed for a period that does not come


async def test_a_trials_end_follows_its_settings(api_client: TenantClient, session_factory: Any) -> None:
    plan = await price(api_client, name="Trial plan", unitAmount=2500)
    outcomes, ended = {}, {}
    for missing in ("create_invoice", "cancel", "pause"):
        created = await subscribe(
            api_client,
            customer=(await customer(api_client))["id"],  # no payment method
            items=[{"price": plan["id"]}],
            trialPeriodDays=14,
            trialSettings={"endBehavior": {"missingPaymentMethod": missing}},
        )
        assert created["trialSettings"] == {"endBehavior": {"missingPaymentMethod": missing}}
        period_end = await period_ended(session_factory, created["id"], trial=True)
        applied = await renew(api_client, session_factory, created["id"], period_end)
        assert applied.status is CommandStatus.succeeded, applied.error
        after = await ok(await api_client.get(f"/v1/subscriptions/{created['id']}"))
        invoices = (await api_client.get("/v1/invoices", params={"subscription": created["id"]})).json()["data"]
        outcomes[missing] = (after["status"], [(i["billingReason"], i["total"], i["status"]) for i in invoices])
        ended[missing] = after
    assert outcomes == {
        # invoiced for the first paid period, nothing to pay it with: past_due
        "create_invoice": ("past_due", [("subscription_cycle", 2500, "open"), ("subscription_create", 0, "paid")]),
        "cancel": ("canceled", [("subscription_create", 0, "paid")]),
        "pause": ("paused", [("subscription_create", 0, "paid")]),
    }
    paused = ended["pause"]  # not renewed again until resumed
    refused = await renew(api_client, session_factory, paused["id"], parse(paused["currentPeriodEnd"]))
    assert (refused.status, refused.error["code"]) == (CommandStatus.failed, "subscription_status_invalid")


async def test_a_paused_subscription_resumes_with_a_new_cycle_once_it_can_pay(
    api_client: TenantClient, session_factory: Any
) -> None:
    buyer = await customer(api_client)
    plan = await price(api_client, name="Resumed plan", unitAmount=2500)
    created = await subscribe(
        api_client,
        customer=buyer["id"],
        items=[{"price": plan["id"]}],
        trialPeriodDays=7,
        trialSettings={"endBehavior": {"missingPaymentMethod": "pause"}},
    )
    assert_error(
        await api_client.post(f"/v1/subscriptions/{created['id']}/resume"), 400, "subscription_not_paused", None
    )
    period_end = await period_ended(session_factory, created["id"], trial=True)
    await renew(api_client, session_factory, created["id"], period_end)
    url = f"/v1/subscriptions/{created['id']}/resume"
    assert_error(await api_client.post(url), 400, "invoice_no_payment_method", None)  # still nothing to pay with
    async with session_factory() as session, session.begin():
        method = CustomerPaymentMethod(
            id=new_id("payment_method"),
            organization_id=api_client.tenant.organization_id,
            customer_id=buyer["id"],
            gateway_payment_method_id="pm_card_visa",
            type=PaymentMethodType.card,
        )
        session.add(method)
        await session.flush()
        (await session.get(Customer, buyer["id"])).default_payment_method_id = method.id
    before = clock.now()
    resumed = await ok(await api_client.post(url))
    assert resumed["status"] == "active"
    start = datetime.fromisoformat(resumed["currentPeriodStart"])
    assert start >= before and resumed["billingCycleAnchor"] == resumed["currentPeriodStart"]
    invoice = await invoice_of(api_client, resumed)
    assert (invoice["total"], invoice["status"], invoice["periodStart"]) == (
        2500,
        "open",
        resumed["currentPeriodStart"],
    )
    async with session_factory() as session:
        (attempt,) = (await session.scalars(select(Payment).where(Payment.invoice_id == invoice["id"]))).all()
    assert (attempt.amount, attempt.payment_method_id) == (2500, method.id)  # charged like every invoice


async def test_an_unpaid_first_invoice_expires_its_subscription_after_23_hours(
    api_client: TenantClient, session_factory: Any
) -> None:
    created = await subscribe(
        api_client, customer=(await customer(api_client))["id"], items=[{"price": (await price(api_client))["id"]}]
    )
    assert created["status"] == "incomplete"  # no payment method: the first invoice waits
    expire = SubscriptionExpireIncomplete(id=created["id"])
    early = await publish(api_client, session_factory, expire)
    assert (early.status, early.error["code"]) == (CommandStatus.failed, "subscription_not_due")
    async with session_factory() as session, session.begin():
        (await session.get(Subscription, created["id"])).start_date = clock.now() - timedelta(hours=23, seconds=1)
    expired = await publish(api_client, session_factory, expire)
    assert expired.status is CommandStatus.succeeded, expired.error
    ended = await ok(await api_client.get(f"/v1/subscriptions/{created['id']}"))
    assert (ended["status"], ended["endedAt"] is not None) == ("incomplete_expired", True)
    assert (await invoice_of(api_client, ended))["status"] == "void"
    again = await publish(api_client, session_factory, expire)  # a repeat changes nothing
    assert again.status is CommandStatus.succeeded and again.result["status"] == "incomplete_expired"
