"""A year of billing in seconds, through the real stack: a customer on a test clock, its
subscription's 14-day trial, the first invoice, twelve monthly renewals with a mid-year
upgrade, a card that starts declining, the dunning schedule's retries at their times, a
new card that recovers the subscription; and runs that end unpaid or canceled by the
organization's settings, a hard decline, a canceled subscription that is never retried.

The scheduler runs as it does in `billing consume` (passes of consumers/scheduler.py,
here for the test's organization only), the command consumer and the payment worker are
the real ones (the worker against the scripted Stripe of test_subscription_payments:
pm_declines is declined with insufficient_funds, pm_expired with expired_card, any other
card is charged)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from analytics.ingest import UsageSource, get_usage_writer
from analytics.migrations import migrate
from analytics.store import get_store
from billing.models import Organization, Payment
from billing.organizations.stripe_account import ensure_keyring
from contracts.enums import CommandStatus
from contracts.invoices import InvoiceFinalizeDraft
from contracts.settings import get_settings
from contracts.usage import parse_usage_request
from tests.api.conftest import TenantClient, assert_error, new_tenant
from tests.api.test_credit_notes import events
from tests.api.test_payment_methods import connected_tenant
from tests.api.test_renewals import publish
from tests.api.test_scheduler import Pass
from tests.api.test_subscription_payments import billable_customer, payment_worker  # noqa: F401 (a fixture)
from tests.api.test_subscriptions import ok, parse, price
from tests.api.test_usage_events import SESSION_CLICKHOUSE_URL

START = datetime(2027, 1, 1, tzinfo=UTC)


async def new_clock(client: TenantClient, frozen: datetime = START) -> dict[str, Any]:
    return await ok(
        await client.post("/v1/test-clocks", json={"frozenTime": frozen.isoformat(), "name": "A year"}), 201
    )


async def advance(client: TenantClient, session_factory: Any, clock: dict[str, Any], to: datetime) -> dict[str, Any]:
    """Advances the clock to `to` and runs scheduler passes until it is ready there."""
    advancing = await ok(
        await client.post(f"/v1/test-clocks/{clock['id']}/advance", json={"frozenTime": to.isoformat()})
    )
    assert advancing["status"] == "advancing"
    scheduler = Pass(session_factory, client.tenant.organization_id)
    async with asyncio.timeout(90):
        while True:
            await scheduler.run()
            current = await ok(await client.get(f"/v1/test-clocks/{clock['id']}"))
            if current["status"] == "ready":
                assert parse(current["frozenTime"]) == to
                return current
            await asyncio.sleep(0.02)


async def record_usage(organization_id: str, customer_id: str, *events: tuple[datetime, int | Decimal]) -> None:
    """`api_call` events of the customer at its test clock's times, written to ClickHouse
    through the analytics consumer's own writer (the API checks a timestamp against the
    wall clock, not against a customer's test clock)."""
    store = get_store(SESSION_CLICKHOUSE_URL)
    migrate(store)
    for at, value in events:
        body = json.dumps(
            {
                "eventName": "api_call",
                "customerId": customer_id,
                "value": str(value),
                "identifier": f"call-{at.timestamp()}",
                "timestamp": at.isoformat(),
            }
        )
        (event,) = parse_usage_request(body, organization_id, received_at=at)
        result = get_usage_writer(store).write([(event, UsageSource(source="test"))])
        assert result.inserted == 1


async def cycle_invoices(client: TenantClient, subscription_id: str) -> list[dict[str, Any]]:
    """The subscription's renewal invoices, oldest first."""
    listed = await ok(await client.get("/v1/invoices", params={"subscription": subscription_id, "limit": 100}))
    return [invoice for invoice in reversed(listed["data"]) if invoice["billingReason"] == "subscription_cycle"]


def month_later(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)


async def attempts_of(session_factory: Any, invoice_id: str) -> list[tuple[str, str]]:
    """(status, card) of each payment of the invoice, in order."""
    async with session_factory() as session:
        payments = (
            await session.scalars(
                select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.attempt_number)
            )
        ).all()
    return [(payment.status.value, payment.payment_method_id) for payment in payments]


async def clocked_subscription(
    client: TenantClient,
    session_factory: Any,
    *cards: str,
    renewal_draft_minutes: int = 0,
    more_items: tuple[dict[str, Any], ...] = (),
    **subscription: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A test clock at START, a customer on it with `cards` (the first its default) and a
    monthly 1000-cent subscription (and `more_items`): (clock, customer, subscription). The
    organization's renewals are finalized `renewal_draft_minutes` after their period ends
    (by default at once, so a renewal is charged at the moment the clock reaches it)."""
    draft_period = {"invoicing": {"renewalDraftMinutes": renewal_draft_minutes}}
    await ok(await client.patch("/v1/billing-settings", json=draft_period))
    clock = await new_clock(client)
    customer = await billable_customer(client, session_factory, *cards, testClock=clock["id"])
    assert customer["testClockId"] == clock["id"]
    product = await ok(await client.post("/v1/products", json={"name": "Clocked plan"}), 201)
    price = await ok(
        await client.post(
            "/v1/prices",
            json={"product": product["id"], "currency": "usd", "unitAmount": 1000, "recurring": {"interval": "month"}},
        ),
        201,
    )
    created = await ok(
        await client.post(
            "/v1/subscriptions",
            json={"customer": customer["id"], "items": [{"price": price["id"]}, *more_items], **subscription},
        ),
        201,
    )
    return clock, customer, created


async def test_a_year_on_a_test_clock_trial_renewals_upgrade_dunning_and_recovery(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    client = (await connected_tenant(api, session_factory, "A year on a test clock")).client
    organization_id = client.tenant.organization_id
    meter = await ok(
        await client.post(
            "/v1/meters", json={"displayName": "API calls", "eventName": "api_call", "aggregation": "sum"}
        ),
        201,
    )
    calls = await price(
        client,
        name="API calls",
        unitAmount=10,
        recurring={"interval": "month", "usageType": "metered", "meter": meter["id"]},
    )
    clock, customer, created = await clocked_subscription(
        client,
        session_factory,
        "pm_good",
        "pm_declines",
        "pm_new",
        trialPeriodDays=14,
        more_items=({"price": calls["id"]},),
    )
    sub = created["id"]
    # the clock's time is the customer's now: the trial starts at START, not today
    assert created["status"] == "trialing" and parse(created["trialStart"]) == START
    trial_end = START + timedelta(days=14)
    assert parse(created["trialEnd"]) == trial_end == parse(created["currentPeriodEnd"])
    # the year's API calls, in ClickHouse: in the trial (free, as the trial's items are), in
    # the first month, and in the sixth and seventh (a fraction of a call rounds up)
    await record_usage(
        organization_id,
        customer["id"],
        (START + timedelta(days=2), 50),
        (trial_end + timedelta(days=3), 20),
        (trial_end + timedelta(days=20), 10),
        (month_later(trial_end, 5) + timedelta(days=1), Decimal("12.5")),
        (month_later(trial_end, 7) - timedelta(minutes=1), 7),
    )

    # the trial ends: reminded three days before, then invoiced and charged at its end
    await advance(client, session_factory, clock, trial_end)
    reminders = await events(session_factory, organization_id, "customer.subscription.trial_will_end")
    assert [data["id"] for _, data in reminders] == [sub]
    (first,) = await cycle_invoices(client, sub)
    assert (first["status"], first["total"], parse(first["periodStart"])) == ("paid", 1000, trial_end)
    assert [line["amount"] for line in first["lines"]] == [1000]  # the trial's usage is not billed
    assert (await ok(await client.get(f"/v1/subscriptions/{sub}")))["status"] == "active"

    # five monthly renewals, each with its own period, paid
    await advance(client, session_factory, clock, month_later(trial_end, 5))
    renewals = await cycle_invoices(client, sub)
    assert [(parse(i["periodStart"]), parse(i["periodEnd"])) for i in renewals] == [
        (month_later(trial_end, n), month_later(trial_end, n + 1)) for n in range(6)
    ]
    assert [(i["status"], i["total"]) for i in renewals] == [("paid", 1000), ("paid", 1300)] + [("paid", 1000)] * 4
    # the first month's 30 calls, in arrears on the next renewal, for the month that ended
    usage = renewals[1]["lines"][0]
    assert (usage["quantity"], usage["amount"], parse(usage["periodStart"]), parse(usage["periodEnd"])) == (
        30,
        300,
        trial_end,
        month_later(trial_end, 1),
    )

    # a mid-year upgrade at the start of a period: the whole period's difference is prorated
    item = next(item for item in created["items"] if item["priceId"] != calls["id"])
    upgraded = await client.patch(f"/v1/subscriptions/{sub}", json={"items": [{"id": item["id"], "quantity": 2}]})
    assert upgraded.status_code == 200, upgraded.text
    await advance(client, session_factory, clock, month_later(trial_end, 6))
    seventh = (await cycle_invoices(client, sub))[-1]
    assert [(line["amount"], line["proration"]) for line in seventh["lines"]] == [
        (-1000, True),
        (2000, True),
        (130, False),  # 12.5 calls: 13
        (2000, False),
    ]
    assert (seventh["total"], seventh["status"]) == (3130, "paid")

    # the card starts declining: the next renewal fails, and is retried 1 and 3 days later
    declining = customer["paymentMethods"]["pm_declines"]
    changed = await client.patch(
        f"/v1/customers/{customer['id']}", json={"invoiceSettings": {"defaultPaymentMethod": declining}}
    )
    assert changed.status_code == 200, changed.text
    failed_at = month_later(trial_end, 7)
    await advance(client, session_factory, clock, failed_at)
    unpaid = (await cycle_invoices(client, sub))[-1]
    assert (unpaid["status"], unpaid["total"], unpaid["attemptCount"]) == ("open", 2070, 1)
    assert parse(unpaid["nextPaymentAttempt"]) == failed_at + timedelta(days=1)
    assert (await ok(await client.get(f"/v1/subscriptions/{sub}")))["status"] == "past_due"
    await advance(client, session_factory, clock, failed_at + timedelta(days=4, hours=12))
    retried = await ok(await client.get(f"/v1/invoices/{unpaid['id']}"))
    assert (retried["status"], retried["attemptCount"], retried["scheduledRetries"]) == ("open", 3, 2)
    assert parse(retried["nextPaymentAttempt"]) == failed_at + timedelta(days=9)  # the third retry, 5 days on

    # a payment asked for by hand is not one of the schedule's retries: it fails, the schedule stands
    asked = await client.post(f"/v1/invoices/{unpaid['id']}/pay", json={})
    assert asked.status_code == 200, asked.text
    async with asyncio.timeout(20):
        while (await attempts_of(session_factory, unpaid["id"]))[-1][0] != "failed" or len(
            await attempts_of(session_factory, unpaid["id"])
        ) < 4:
            await asyncio.sleep(0.05)
    by_hand = await ok(await client.get(f"/v1/invoices/{unpaid['id']}"))
    assert (by_hand["attemptCount"], by_hand["scheduledRetries"]) == (4, 2)
    assert parse(by_hand["nextPaymentAttempt"]) == failed_at + timedelta(days=9)
    failures = await events(session_factory, organization_id, "invoice.payment_failed")
    assert [parse(data["nextPaymentAttempt"]) for _, data in failures if data["id"] == unpaid["id"]] == [
        failed_at + timedelta(days=1),
        failed_at + timedelta(days=4),
        failed_at + timedelta(days=9),
        failed_at + timedelta(days=9),  # the payment asked for by hand: the schedule unchanged
    ]

    # a new default card retries the open invoice at once and recovers the subscription
    fresh = customer["paymentMethods"]["pm_new"]
    changed = await client.patch(
        f"/v1/customers/{customer['id']}", json={"invoiceSettings": {"defaultPaymentMethod": fresh}}
    )
    assert changed.status_code == 200, changed.text
    async with asyncio.timeout(20):
        while (await ok(await client.get(f"/v1/invoices/{unpaid['id']}")))["status"] != "paid":
            await asyncio.sleep(0.05)
    recovered = await ok(await client.get(f"/v1/invoices/{unpaid['id']}"))
    assert (recovered["nextPaymentAttempt"], recovered["amountPaid"]) == (None, 2070)
    assert (await ok(await client.get(f"/v1/subscriptions/{sub}")))["status"] == "active"
    assert await attempts_of(session_factory, unpaid["id"]) == [
        ("failed", declining),
        ("failed", declining),
        ("failed", declining),
        ("failed", declining),  # the one asked for by hand
        ("succeeded", fresh),
    ]

    # the rest of the year: twelve monthly renewals after the trial's end, each once
    await advance(client, session_factory, clock, month_later(trial_end, 12))
    year = await cycle_invoices(client, sub)
    assert [parse(i["periodStart"]) for i in year] == [month_later(trial_end, n) for n in range(13)]
    assert [i["total"] for i in year] == [1000, 1300] + [1000] * 4 + [3130, 2070] + [2000] * 5
    assert {i["status"] for i in year} == {"paid"}
    told = await events(
        session_factory, organization_id, "customer.subscription.updated", "test_helpers.test_clock.ready"
    )
    assert Counter(kind for kind, _ in told)["test_helpers.test_clock.ready"] == 6  # one per advance
    statuses = [data["status"] for kind, data in told if kind == "customer.subscription.updated" and data["id"] == sub]
    # active at the trial's end, past_due at the failed renewal, active again once paid
    assert [s for n, s in enumerate(statuses) if n == 0 or statuses[n - 1] != s] == ["active", "past_due", "active"]


async def dunned(
    api: Any, session_factory: Any, name: str, card: str, dunning: dict[str, Any] | None = None
) -> tuple[TenantClient, dict[str, Any], dict[str, Any], datetime, str]:
    """A subscription whose first renewal (a month after START) fails with `card`:
    (client, clock, subscription, when it failed, the card's payment method id)."""
    client = (await connected_tenant(api, session_factory, name)).client
    if dunning is not None:
        await ok(await client.patch("/v1/billing-settings", json={"dunning": dunning}))
    clock, customer, created = await clocked_subscription(client, session_factory, "pm_good", card)
    failing = customer["paymentMethods"][card]  # the first invoice was paid; from now on the card fails
    changed = await client.patch(
        f"/v1/customers/{customer['id']}", json={"invoiceSettings": {"defaultPaymentMethod": failing}}
    )
    assert changed.status_code == 200, changed.text
    renewal = month_later(START, 1)
    await advance(client, session_factory, clock, renewal)
    return client, clock, created, renewal, failing


async def test_spent_retries_leave_the_subscription_unpaid_and_the_invoice_uncollectible_by_settings(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    settings = {
        "retryAfterDays": [1, 2],
        "invoiceAfterLastRetry": "uncollectible",
        "subscriptionAfterLastRetry": "unpaid",
    }
    client, clock, created, failed_at, _ = await dunned(api, session_factory, "Dunned unpaid", "pm_declines", settings)
    await advance(client, session_factory, clock, failed_at + timedelta(days=5))
    (invoice,) = await cycle_invoices(client, created["id"])
    assert (invoice["status"], invoice["attemptCount"], invoice["nextPaymentAttempt"]) == ("uncollectible", 3, None)
    assert (await ok(await client.get(f"/v1/subscriptions/{created['id']}")))["status"] == "unpaid"
    marked = await events(session_factory, client.tenant.organization_id, "invoice.marked_uncollectible")
    assert [data["id"] for _, data in marked] == [invoice["id"]]


async def test_spent_retries_cancel_the_subscription_by_default_and_a_hard_decline_is_not_retried(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    client, clock, created, failed_at, _ = await dunned(api, session_factory, "Dunned canceled", "pm_declines")
    await advance(client, session_factory, clock, failed_at + timedelta(days=20))
    (invoice,) = await cycle_invoices(client, created["id"])
    assert (invoice["status"], invoice["attemptCount"]) == ("open", 5)  # the default: 4 retries, the invoice left open
    ended = await ok(await client.get(f"/v1/subscriptions/{created['id']}"))
    assert (ended["status"], ended["cancellationReason"]) == ("canceled", "payment_failed")
    assert parse(ended["endedAt"]) == failed_at + timedelta(days=1 + 3 + 5 + 7)

    hard_client, _, hard, _, _ = await dunned(api, session_factory, "Hard decline", "pm_expired")
    (expired,) = await cycle_invoices(hard_client, hard["id"])
    assert (expired["attemptCount"], expired["nextPaymentAttempt"]) == (1, None)  # never retried
    assert (await ok(await hard_client.get(f"/v1/subscriptions/{hard['id']}")))["status"] == "canceled"


async def test_a_renewal_is_a_draft_for_the_draft_period_then_finalized_and_charged(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    client = (await connected_tenant(api, session_factory, "An hour of draft")).client
    clock, _, created = await clocked_subscription(client, session_factory, "pm_good", renewal_draft_minutes=60)
    renewal = month_later(START, 1)
    await advance(client, session_factory, clock, renewal)
    (draft,) = await cycle_invoices(client, created["id"])
    assert (draft["status"], parse(draft["automaticallyFinalizesAt"])) == ("draft", renewal + timedelta(hours=1))
    # before its time the finalization is refused (the clock's time, not the wall clock's)
    early = await publish(
        client,
        session_factory,
        InvoiceFinalizeDraft(id=draft["id"], automaticallyFinalizesAt=renewal + timedelta(hours=1)),
    )
    assert (early.status, early.error["code"]) == (CommandStatus.failed, "invoice_not_due")
    await advance(client, session_factory, clock, renewal + timedelta(hours=1))
    paid = await ok(await client.get(f"/v1/invoices/{draft['id']}"))
    assert (paid["status"], paid["amountPaid"], parse(paid["finalizedAt"])) == (
        "paid",
        1000,
        renewal + timedelta(hours=1),
    )


async def test_a_canceled_subscription_is_never_retried(api: Any, session_factory: Any, payment_worker: None) -> None:
    client, clock, created, failed_at, card = await dunned(api, session_factory, "Canceled while dunned", "pm_declines")
    (invoice,) = await cycle_invoices(client, created["id"])
    assert parse(invoice["nextPaymentAttempt"]) == failed_at + timedelta(days=1)
    await ok(await client.delete(f"/v1/subscriptions/{created['id']}"))
    await advance(client, session_factory, clock, failed_at + timedelta(days=30))
    assert await attempts_of(session_factory, invoice["id"]) == [("failed", card)]


async def test_test_clock_requests_are_checked(api: Any, session_factory: Any) -> None:
    client = (await connected_tenant(api, session_factory, "Clock checks")).client
    clock = await new_clock(client)
    assert (clock["status"], parse(clock["frozenTime"]), clock["name"]) == ("ready", START, "A year")
    assert (await ok(await client.get(f"/v1/test-clocks/{clock['id']}")))["id"] == clock["id"]
    listed = await ok(await client.get("/v1/test-clocks"))
    assert [c["id"] for c in listed["data"]] == [clock["id"]]
    backwards = await client.post(f"/v1/test-clocks/{clock['id']}/advance", json={"frozenTime": START.isoformat()})
    assert_error(backwards, 400, "test_clock_advance_backwards", "frozenTime")
    unknown = await client.post("/v1/customers", json={"testClock": "clock_" + "x" * 24})
    assert_error(unknown, 404, "resource_missing", "testClock")
    assert_error(await client.get("/v1/test-clocks/clock_" + "y" * 24), 404, "resource_missing", "id")

    # deleting the clock deletes its customers and what they had
    _, customer, subscription = await clocked_subscription(client, session_factory, "pm_good")
    owner = customer["testClockId"]
    deleted = await client.delete(f"/v1/test-clocks/{owner}")
    assert deleted.status_code == 200, deleted.text
    assert_error(await client.get(f"/v1/customers/{customer['id']}"), 404, "resource_missing", "id")
    assert_error(await client.get(f"/v1/subscriptions/{subscription['id']}"), 404, "resource_missing", "id")

    # live mode has no test clocks (stripe-mock takes test keys only: the live key is stored as connecting would)
    live = TenantClient(api, await new_tenant(session_factory, "Live mode"))
    keyring = ensure_keyring(get_settings())
    async with session_factory() as session, session.begin():
        organization = await session.get(Organization, live.tenant.organization_id)
        organization.stripe_secret_key_encrypted = keyring.encrypt("sk_live_" + "z" * 24)
    assert (await ok(await live.get("/v1/stripe-account")))["mode"] == "live"
    refused = await live.post("/v1/test-clocks", json={"frozenTime": START.isoformat()})
    assert_error(refused, 400, "test_mode_only", None)
