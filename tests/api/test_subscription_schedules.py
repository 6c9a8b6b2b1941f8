"""Subscription schedules through the real API, Kafka, Postgres and scheduler passes: a
schedule moves its subscription through its phases at their boundaries, prorated as each
phase says (pending lines for the next invoice, an invoice now, or at a period's end the
renewal's invoice of the new items), then releases it or cancels it; create, list,
update, release and cancel, and bad input answered in Stripe's shape with nothing written.

The tests stand in for time: they move a schedule's phases and its subscription's period
into the past by the same span, then run one scheduler pass for the organization."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update

from billing import clock
from billing.models import Invoice, InvoiceItem, Subscription, SubscriptionSchedule, SubscriptionSchedulePhase
from billing.money.amounts import round_ratio_to_minor
from billing.subscriptions.periods import milliseconds_between
from contracts.enums import CommandStatus
from contracts.events import (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_DELETED,
    SUBSCRIPTION_SCHEDULE_CANCELED,
    SUBSCRIPTION_SCHEDULE_COMPLETED,
    SUBSCRIPTION_SCHEDULE_CREATED,
    SUBSCRIPTION_SCHEDULE_RELEASED,
    SUBSCRIPTION_SCHEDULE_UPDATED,
    SUBSCRIPTION_UPDATED,
)
from contracts.subscription_schedules import SubscriptionScheduleAdvance
from contracts.subscriptions import SubscriptionRenew
from tests.api.conftest import TenantClient, assert_error
from tests.api.test_credit_notes import events
from tests.api.test_renewals import publish
from tests.api.test_scheduler import Pass, applied, fresh_client
from tests.api.test_subscriptions import customer, ok, parse, price, subscribe

SENT = {"collectionMethod": "send_invoice", "daysUntilDue": 30}
TOLD = [
    event.name
    for event in (
        SUBSCRIPTION_SCHEDULE_CREATED,
        SUBSCRIPTION_SCHEDULE_UPDATED,
        SUBSCRIPTION_SCHEDULE_RELEASED,
        SUBSCRIPTION_SCHEDULE_CANCELED,
        SUBSCRIPTION_SCHEDULE_COMPLETED,
        SUBSCRIPTION_CREATED,
        SUBSCRIPTION_UPDATED,
        SUBSCRIPTION_DELETED,
    )
]
ADVANCE, RENEW = SubscriptionScheduleAdvance.command_type, SubscriptionRenew.command_type


async def schedule(client: TenantClient, **body: Any) -> dict[str, Any]:
    return await ok(await client.post("/v1/subscription-schedules", json=body), 201)


async def travel_to(session_factory: Any, schedule_id: str, moment: datetime) -> None:
    """Moves the schedule's phases and its subscription's dates back so that `moment`
    (as stored now) has just passed."""
    shift = moment - clock.now() + timedelta(seconds=5)
    # whole milliseconds, the columns' precision: a phase and its period move alike
    await _shift(session_factory, schedule_id, shift - timedelta(microseconds=shift.microseconds % 1000))


async def travel_months(session_factory: Any, schedule_id: str, months: int) -> None:
    """Moves them back by calendar months (and five seconds), so that what was due that many
    months from now has just passed and phases counted in months still meet their periods."""
    await _shift(session_factory, schedule_id, text(f"interval '{months} months 5 seconds'"))


async def _shift(session_factory: Any, schedule_id: str, shift: Any) -> None:
    async with session_factory() as session, session.begin():
        row = await session.get(SubscriptionSchedule, schedule_id)
        await session.execute(
            update(SubscriptionSchedulePhase)
            .where(SubscriptionSchedulePhase.schedule_id == schedule_id)
            .values(
                start_date=SubscriptionSchedulePhase.start_date - shift,
                end_date=SubscriptionSchedulePhase.end_date - shift,
            )
        )
        subscription_id = row.subscription_id or row.released_subscription_id
        if subscription_id is not None:
            await session.execute(
                update(Subscription)
                .where(Subscription.id == subscription_id)
                .values(
                    start_date=Subscription.start_date - shift,
                    billing_cycle_anchor=Subscription.billing_cycle_anchor - shift,
                    current_period_start=Subscription.current_period_start - shift,
                    current_period_end=Subscription.current_period_end - shift,
                )
            )


async def scheduler_pass(client: TenantClient, session_factory: Any) -> list[str]:
    """Scheduler passes for the client's organization until one publishes nothing, each
    once the consumer applied what it published: the command types, in the order
    published. (A row the consumer holds locked is skipped by a pass and taken by the
    next, a second later in `billing dev`.)"""
    published: list[str] = []
    while True:
        scheduler = Pass(session_factory, client.tenant.organization_id)
        await scheduler.run()
        if not scheduler.published:
            return published
        records = await applied(session_factory, [work.command_id for work in scheduler.published])
        for record in records.values():
            assert record.error is None, record.error
        published.extend(work.command.command_type for work in scheduler.published)


async def stored(session_factory: Any, subscription_id: str) -> Subscription:
    async with session_factory() as session:
        return await session.get(Subscription, subscription_id)


async def pending_prorations(session_factory: Any, subscription_id: str) -> list[tuple[str, int, int]]:
    async with session_factory() as session:
        rows = (
            await session.scalars(
                select(InvoiceItem)
                .where(InvoiceItem.subscription_id == subscription_id, InvoiceItem.invoice_id.is_(None))
                .order_by(InvoiceItem.position)
            )
        ).all()
    return [(row.price_id, row.quantity, row.amount) for row in rows]


def share(amount: int, period_start: datetime, period_end: datetime, at: datetime) -> int:
    """`amount` for the part of the period left at `at`, rounded as the platform rounds."""
    return round_ratio_to_minor(
        amount, milliseconds_between(at, period_end), milliseconds_between(period_start, period_end)
    )


def as_requested(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored phases as an update sends them back."""
    return [
        {
            "items": [{"price": item["priceId"], "quantity": item["quantity"]} for item in phase["items"]],
            "startDate": phase["startDate"],
            "endDate": phase["endDate"],
            "prorationBehavior": phase["prorationBehavior"],
        }
        for phase in phases
    ]


async def told(client: TenantClient, session_factory: Any, *ids: str) -> list[str]:
    """The schedule and subscription events told of these objects, in order."""
    found = await events(session_factory, client.tenant.organization_id, *TOLD)
    return [name for name, data in found if data["id"] in ids]


async def latest_invoice(client: TenantClient, subscription_id: str) -> dict[str, Any]:
    subscription = await ok(await client.get(f"/v1/subscriptions/{subscription_id}"))
    return await ok(await client.get(f"/v1/invoices/{subscription['latestInvoice']}"))


async def test_three_phases_follow_their_boundaries_and_proration_then_release(api: Any, session_factory: Any) -> None:
    api_client = await fresh_client(api, session_factory, "Three-phase schedule")
    buyer = await customer(api_client)
    seats = await price(api_client, name="Scheduled seats", unitAmount=1000)
    pro = await price(api_client, name="Scheduled pro", unitAmount=5000)
    first_end = clock.now() + timedelta(days=15)
    created = await schedule(
        api_client,
        customer=buyer["id"],
        startDate="now",
        endBehavior="release",
        **SENT,
        phases=[
            {"items": [{"price": seats["id"], "quantity": 1}], "endDate": first_end.isoformat()},
            {"items": [{"price": seats["id"], "quantity": 3}], "iterations": 2},
            {"items": [{"price": pro["id"]}], "iterations": 1, "prorationBehavior": "always_invoice"},
        ],
    )
    assert created["id"].startswith("sub_sched_") and created["status"] == "active"
    assert created["currentPhaseIndex"] == 0 and created["subscriptionId"]
    phases = created["phases"]
    assert [phase["position"] for phase in phases] == [0, 1, 2]
    assert parse(phases[0]["endDate"]) == parse(phases[1]["startDate"])
    assert parse(phases[1]["endDate"]) == parse(phases[2]["startDate"])
    assert created["currentPhase"] == {"startDate": phases[0]["startDate"], "endDate": phases[0]["endDate"]}
    subscription_id = created["subscriptionId"]
    first_invoice = await latest_invoice(api_client, subscription_id)
    assert (first_invoice["billingReason"], first_invoice["total"]) == ("subscription_create", 1000)

    # phase 1 starts mid-period (create_prorations): 3 seats, the change's lines wait
    await travel_to(session_factory, created["id"], parse(phases[1]["startDate"]))
    assert await scheduler_pass(api_client, session_factory) == [ADVANCE]
    row = await stored(session_factory, subscription_id)
    moved = await ok(await api_client.get(f"/v1/subscription-schedules/{created['id']}"))
    boundary = parse(moved["phases"][1]["startDate"])
    credit = -share(1000, row.current_period_start, row.current_period_end, boundary)
    charge = share(3000, row.current_period_start, row.current_period_end, boundary)
    assert await pending_prorations(session_factory, subscription_id) == [
        (seats["id"], 1, credit),
        (seats["id"], 3, charge),
    ]
    assert moved["currentPhaseIndex"] == 1 and moved["currentPhase"]["startDate"] == moved["phases"][1]["startDate"]
    subscription = await ok(await api_client.get(f"/v1/subscriptions/{subscription_id}"))
    assert [(item["priceId"], item["quantity"]) for item in subscription["items"]] == [(seats["id"], 3)]
    assert await scheduler_pass(api_client, session_factory) == []  # nothing more is due
    # phase 0 has ended: an update must send it as it was
    changed_past = [
        {**phase, "items": [{"price": pro["id"]}]} if index == 0 else phase
        for index, phase in enumerate(as_requested(moved["phases"]))
    ]
    assert_error(
        await api_client.post(f"/v1/subscription-schedules/{created['id']}", json={"phases": changed_past}),
        400,
        "parameter_invalid",
        "phases[0]",
    )
    unchanged = await ok(
        await api_client.post(
            f"/v1/subscription-schedules/{created['id']}", json={"phases": as_requested(moved["phases"])}
        )
    )
    assert [(p["startDate"], p["endDate"], p["items"]) for p in unchanged["phases"]] == [
        (p["startDate"], p["endDate"], p["items"]) for p in moved["phases"]
    ]

    # the period ends inside phase 1: the renewal invoices 3 seats and the prorations
    await travel_to(session_factory, created["id"], row.current_period_end)
    assert await scheduler_pass(api_client, session_factory) == [RENEW]
    renewal = await latest_invoice(api_client, subscription_id)
    assert renewal["billingReason"] == "subscription_cycle"
    assert [line["amount"] for line in renewal["lines"]] == [credit, charge, 3000]

    # and once more before phase 2
    row = await stored(session_factory, subscription_id)
    await travel_to(session_factory, created["id"], row.current_period_end)
    assert await scheduler_pass(api_client, session_factory) == [RENEW]
    assert (await latest_invoice(api_client, subscription_id))["total"] == 3000

    # phase 2 starts mid-period (always_invoice): an invoice now for the change
    moved = await ok(await api_client.get(f"/v1/subscription-schedules/{created['id']}"))
    await travel_to(session_factory, created["id"], parse(moved["phases"][2]["startDate"]))
    assert await scheduler_pass(api_client, session_factory) == [ADVANCE]
    row = await stored(session_factory, subscription_id)
    moved = await ok(await api_client.get(f"/v1/subscription-schedules/{created['id']}"))
    boundary = parse(moved["phases"][2]["startDate"])
    change = await latest_invoice(api_client, subscription_id)
    assert change["billingReason"] == "subscription_update" and change["status"] == "open"
    assert [(line["priceId"], line["amount"], line["proration"]) for line in change["lines"]] == [
        (seats["id"], -share(3000, row.current_period_start, row.current_period_end, boundary), True),
        (pro["id"], share(5000, row.current_period_start, row.current_period_end, boundary), True),
    ]
    assert await pending_prorations(session_factory, subscription_id) == []

    # the renewal inside phase 2 bills pro; then the last phase ends: released
    await travel_to(session_factory, created["id"], row.current_period_end)
    assert await scheduler_pass(api_client, session_factory) == [RENEW]
    assert (await latest_invoice(api_client, subscription_id))["total"] == 5000
    await travel_to(session_factory, created["id"], parse(moved["phases"][2]["endDate"]))
    assert await scheduler_pass(api_client, session_factory) == [ADVANCE]
    ended = await ok(await api_client.get(f"/v1/subscription-schedules/{created['id']}"))
    assert (ended["status"], ended["subscriptionId"], ended["releasedSubscriptionId"]) == (
        "released",
        None,
        subscription_id,
    )
    assert ended["releasedAt"] and ended["completedAt"] and ended["currentPhase"] is None
    subscription = await ok(await api_client.get(f"/v1/subscriptions/{subscription_id}"))
    assert subscription["status"] == "active"  # it goes on by itself
    assert [(item["priceId"], item["quantity"]) for item in subscription["items"]] == [(pro["id"], 1)]
    assert await scheduler_pass(api_client, session_factory) == []
    update, renewed = SUBSCRIPTION_SCHEDULE_UPDATED.name, SUBSCRIPTION_UPDATED.name
    assert await told(api_client, session_factory, created["id"], subscription_id) == [
        SUBSCRIPTION_SCHEDULE_CREATED.name,
        SUBSCRIPTION_CREATED.name,
        *(update, renewed),  # phase 1
        update,  # the update that kept the phases
        renewed,
        renewed,
        *(update, renewed),  # phase 2
        renewed,
        SUBSCRIPTION_SCHEDULE_COMPLETED.name,
        SUBSCRIPTION_SCHEDULE_RELEASED.name,
    ]


async def test_boundaries_at_period_ends_are_the_renewals_then_cancel_ends_the_subscription(
    api: Any, session_factory: Any
) -> None:
    api_client = await fresh_client(api, session_factory, "Cycle schedule")
    buyer = await customer(api_client)
    seats = await price(api_client, name="Cycle seats", unitAmount=1000)
    created = await schedule(
        api_client,
        customer=buyer["id"],
        endBehavior="cancel",
        **SENT,
        phases=[
            {"items": [{"price": seats["id"], "quantity": 1}], "iterations": 1, "startDate": "now"},
            {"items": [{"price": seats["id"], "quantity": 2}], "iterations": 1},
        ],
    )
    subscription_id = created["subscriptionId"]
    row = await stored(session_factory, subscription_id)
    assert parse(created["phases"][0]["endDate"]) == row.current_period_end

    # the boundary is the period's end: the items change unprorated, the renewal bills them
    await travel_months(session_factory, created["id"], 1)
    assert await scheduler_pass(api_client, session_factory) == [ADVANCE, RENEW]
    assert await pending_prorations(session_factory, subscription_id) == []
    renewal = await latest_invoice(api_client, subscription_id)
    assert (renewal["billingReason"], [line["amount"] for line in renewal["lines"]]) == ("subscription_cycle", [2000])

    # the last phase ends with the period: the subscription ends, no new period is billed
    await travel_months(session_factory, created["id"], 1)
    # the renewal too, unless the consumer ended the subscription before the pass looked for it
    assert (await scheduler_pass(api_client, session_factory))[:1] == [ADVANCE]
    ended = await ok(await api_client.get(f"/v1/subscription-schedules/{created['id']}"))
    assert (ended["status"], ended["subscriptionId"]) == ("completed", subscription_id)
    subscription = await ok(await api_client.get(f"/v1/subscriptions/{subscription_id}"))
    assert subscription["status"] == "canceled" and subscription["endedAt"]
    async with session_factory() as session:
        cycles = await session.scalar(
            select(func.count())
            .select_from(Invoice)
            .where(Invoice.subscription_id == subscription_id, Invoice.billing_reason == "subscription_cycle")
        )
    assert cycles == 1
    names = await told(api_client, session_factory, created["id"], subscription_id)
    completed = names.index(SUBSCRIPTION_SCHEDULE_COMPLETED.name)
    assert names[completed : completed + 2] == [SUBSCRIPTION_SCHEDULE_COMPLETED.name, SUBSCRIPTION_DELETED.name]


async def test_a_future_schedule_starts_its_subscription_at_its_start(api: Any, session_factory: Any) -> None:
    api_client = await fresh_client(api, session_factory, "Future schedule")
    buyer = await customer(api_client)
    seats = await price(api_client, name="Later seats", unitAmount=1000)
    start = clock.now() + timedelta(days=3)
    created = await schedule(
        api_client,
        customer=buyer["id"],
        startDate=start.isoformat(),
        **SENT,
        phases=[{"items": [{"price": seats["id"], "quantity": 4}], "iterations": 1}],
        metadata={"deal": "Q1"},
    )
    assert (created["status"], created["subscriptionId"], created["currentPhase"]) == ("not_started", None, None)
    assert created["metadata"] == {"deal": "Q1"}
    assert await scheduler_pass(api_client, session_factory) == []
    await travel_to(session_factory, created["id"], start)
    assert await scheduler_pass(api_client, session_factory) == [ADVANCE]
    started = await ok(await api_client.get(f"/v1/subscription-schedules/{created['id']}"))
    assert started["status"] == "active" and started["currentPhaseIndex"] == 0
    subscription = await ok(await api_client.get(f"/v1/subscriptions/{started['subscriptionId']}"))
    assert [(item["priceId"], item["quantity"]) for item in subscription["items"]] == [(seats["id"], 4)]
    assert subscription["status"] == "active"
    # it starts where the phase does, however late the pass: its periods meet the phases
    assert parse(subscription["currentPeriodStart"]) == parse(started["phases"][0]["startDate"])
    assert parse(subscription["currentPeriodEnd"]) == parse(started["phases"][0]["endDate"])

    # a repeat of that boundary changes nothing; the next one, not come yet, is refused
    again = await publish(
        api_client,
        session_factory,
        SubscriptionScheduleAdvance(id=created["id"], boundary=parse(started["phases"][0]["startDate"])),
    )
    assert again.status is CommandStatus.succeeded
    early = await publish(
        api_client,
        session_factory,
        SubscriptionScheduleAdvance(id=created["id"], boundary=parse(started["phases"][0]["endDate"])),
    )
    assert (early.status, early.error["code"], early.error["param"]) == (
        CommandStatus.failed,
        "subscription_schedule_not_due",
        "boundary",
    )
    assert (await ok(await api_client.get(f"/v1/subscription-schedules/{created['id']}"))) == started
    async with session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(Subscription).where(Subscription.customer_id == buyer["id"])
        )
    assert count == 1


async def test_a_subscription_canceled_under_its_schedule_cancels_the_schedule_at_the_boundary(
    api: Any, session_factory: Any
) -> None:
    api_client = await fresh_client(api, session_factory, "Canceled under a schedule")
    buyer = await customer(api_client)
    seats = await price(api_client, name="Dropped seats", unitAmount=1000)
    created = await schedule(
        api_client,
        customer=buyer["id"],
        startDate="now",
        **SENT,
        phases=[
            {"items": [{"price": seats["id"]}], "endDate": (clock.now() + timedelta(days=10)).isoformat()},
            {"items": [{"price": seats["id"], "quantity": 2}], "iterations": 1},
        ],
    )
    await ok(await api_client.delete(f"/v1/subscriptions/{created['subscriptionId']}"))
    await travel_to(session_factory, created["id"], parse(created["phases"][1]["startDate"]))
    assert await scheduler_pass(api_client, session_factory) == [ADVANCE]
    ended = await ok(await api_client.get(f"/v1/subscription-schedules/{created['id']}"))
    assert ended["status"] == "canceled" and ended["currentPhaseIndex"] == 0
    assert (await told(api_client, session_factory, created["id"]))[-1] == SUBSCRIPTION_SCHEDULE_CANCELED.name


async def test_a_schedule_from_a_subscription_releases_it_at_the_period_end(api: Any, session_factory: Any) -> None:
    api_client = await fresh_client(api, session_factory, "Wrapped subscription")
    buyer = await customer(api_client)
    seats = await price(api_client, name="Wrapped seats", unitAmount=1000)
    subscription = await subscribe(api_client, customer=buyer["id"], items=[{"price": seats["id"]}], **SENT)
    wrapped = await schedule(api_client, fromSubscription=subscription["id"], metadata={"from": "sub"})
    assert (wrapped["customerId"], wrapped["collectionMethod"], wrapped["currentPhase"]) == (
        buyer["id"],
        "send_invoice",
        {"startDate": subscription["currentPeriodStart"], "endDate": subscription["currentPeriodEnd"]},
    )
    # its end is the period's: released first, then the renewal bills the period as before
    await travel_months(session_factory, wrapped["id"], 1)
    assert await scheduler_pass(api_client, session_factory) == [ADVANCE, RENEW]
    ended = await ok(await api_client.get(f"/v1/subscription-schedules/{wrapped['id']}"))
    assert (ended["status"], ended["releasedSubscriptionId"]) == ("released", subscription["id"])
    renewed = await latest_invoice(api_client, subscription["id"])
    assert (renewed["billingReason"], renewed["total"]) == ("subscription_cycle", 1000)


async def test_list_update_release_and_cancel(api: Any, session_factory: Any) -> None:
    api_client = await fresh_client(api, session_factory, "Managed schedules")
    buyer = await customer(api_client)
    seats = await price(api_client, name="Managed seats", unitAmount=1000)
    gold = await price(api_client, name="Managed gold", unitAmount=2000)
    later = (clock.now() + timedelta(days=10)).isoformat()
    waiting = await schedule(
        api_client,
        customer=buyer["id"],
        startDate=later,
        **SENT,
        phases=[{"items": [{"price": seats["id"]}], "iterations": 1}],
    )
    running = await schedule(
        api_client,
        customer=buyer["id"],
        startDate="now",
        **SENT,
        phases=[
            {"items": [{"price": seats["id"]}], "iterations": 1},
            {"items": [{"price": seats["id"], "quantity": 2}], "iterations": 1},
        ],
    )

    listed = await ok(await api_client.get("/v1/subscription-schedules", params={"customer": buyer["id"]}))
    assert [s["id"] for s in listed["data"]] == [running["id"], waiting["id"]] and not listed["hasMore"]
    first = await ok(await api_client.get("/v1/subscription-schedules", params={"limit": 1}))
    assert first["hasMore"] and first["data"][0]["id"] == running["id"]
    rest = await ok(
        await api_client.get("/v1/subscription-schedules", params={"limit": 1, "startingAfter": running["id"]})
    )
    assert [s["id"] for s in rest["data"]] == [waiting["id"]]
    by_status = await ok(await api_client.get("/v1/subscription-schedules", params={"status": "not_started"}))
    assert [s["id"] for s in by_status["data"]] == [waiting["id"]]

    # the current phase's items change now (always_invoice), its start is kept, a third phase is added
    phases = running["phases"]
    replaced = [
        {
            "items": [{"price": gold["id"]}],
            "startDate": phases[0]["startDate"],
            "endDate": phases[0]["endDate"],
            "prorationBehavior": "none",
        },
        {"items": [{"price": seats["id"], "quantity": 2}], "iterations": 1},
        {"items": [{"price": seats["id"], "quantity": 5}], "iterations": 2},
    ]
    updated = await ok(
        await api_client.post(
            f"/v1/subscription-schedules/{running['id']}",
            json={"phases": replaced, "endBehavior": "cancel", "metadata": {"note": "grown"}},
        )
    )
    assert (len(updated["phases"]), updated["endBehavior"], updated["metadata"]) == (3, "cancel", {"note": "grown"})
    assert updated["phases"][0]["startDate"] == phases[0]["startDate"]
    subscription = await ok(await api_client.get(f"/v1/subscriptions/{running['subscriptionId']}"))
    assert [item["priceId"] for item in subscription["items"]] == [gold["id"]]

    # the current phase's start cannot move
    moved = [{**replaced[0], "startDate": (parse(phases[0]["startDate"]) + timedelta(hours=1)).isoformat()}]
    assert_error(
        await api_client.post(f"/v1/subscription-schedules/{running['id']}", json={"phases": moved}),
        400,
        "parameter_invalid",
        "phases[0][startDate]",
    )

    released = await ok(await api_client.post(f"/v1/subscription-schedules/{running['id']}/release"))
    assert (released["status"], released["subscriptionId"]) == ("released", None)
    assert released["releasedSubscriptionId"] == running["subscriptionId"]
    subscription = await ok(await api_client.get(f"/v1/subscriptions/{running['subscriptionId']}"))
    assert subscription["status"] == "active"
    assert_error(
        await api_client.post(f"/v1/subscription-schedules/{running['id']}/cancel"),
        400,
        "subscription_schedule_status_invalid",
        None,
    )

    # the released subscription may be wrapped again; canceling that schedule ends it
    wrapped = await schedule(api_client, fromSubscription=running["subscriptionId"])
    assert (wrapped["status"], wrapped["subscriptionId"], len(wrapped["phases"])) == (
        "active",
        running["subscriptionId"],
        1,
    )
    assert wrapped["phases"][0]["endDate"] == subscription["currentPeriodEnd"]
    assert wrapped["phases"][0]["items"] == [{"priceId": gold["id"], "quantity": 1}]
    assert_error(
        await api_client.post("/v1/subscription-schedules", json={"fromSubscription": running["subscriptionId"]}),
        400,
        "subscription_schedule_exists",
        "fromSubscription",
    )
    canceled = await ok(await api_client.post(f"/v1/subscription-schedules/{wrapped['id']}/cancel"))
    assert canceled["status"] == "canceled" and canceled["canceledAt"]
    subscription = await ok(await api_client.get(f"/v1/subscriptions/{running['subscriptionId']}"))
    assert subscription["status"] == "canceled"

    # a schedule that has not started cancels alone
    assert (await ok(await api_client.post(f"/v1/subscription-schedules/{waiting['id']}/cancel")))["status"] == (
        "canceled"
    )


async def test_bad_input_is_refused_in_stripes_shape_with_nothing_written(
    api_client: TenantClient, other_api_client: TenantClient, session_factory: Any
) -> None:
    buyer = await customer(api_client)
    seats = await price(api_client, name="Refused seats")
    yearly = await price(api_client, name="Refused yearly", recurring={"interval": "year"})
    one_time = await price(api_client, name="Refused one-time", recurring=None, type="one_time")
    item = {"price": seats["id"]}

    async def refused(body: dict[str, Any], code: str, param: str | None, status: int = 400) -> None:
        assert_error(await api_client.post("/v1/subscription-schedules", json=body), status, code, param)

    base = {"customer": buyer["id"], **SENT}
    await refused(
        {**base, "phases": [{"items": [{"price": "price_missing"}], "iterations": 1}]},
        "resource_missing",
        "phases[0][items][0][price]",
        404,
    )
    await refused(
        {
            **base,
            "phases": [{"items": [item], "iterations": 1}, {"items": [{"price": one_time["id"]}], "iterations": 1}],
        },
        "price_not_recurring",
        "phases[1][items][0][price]",
    )
    await refused(
        {**base, "phases": [{"items": [item, {"price": yearly["id"]}], "iterations": 1}]},
        "price_interval_mismatch",
        "phases[0][items][1][price]",
    )
    await refused({**base, "phases": [{"items": [item]}]}, "parameter_missing", "phases[0][endDate]")
    await refused(
        {**base, "phases": [{"items": [item], "iterations": 1, "endDate": clock.now().isoformat()}]},
        "parameter_invalid",
        "phases[0][endDate]",
    )
    await refused(
        {
            **base,
            "phases": [
                {"items": [item], "iterations": 1},
                {"items": [item], "iterations": 1, "startDate": (clock.now() + timedelta(days=2)).isoformat()},
            ],
        },
        "parameter_invalid",
        "phases[1][startDate]",
    )
    await refused(
        {**base, "phases": [{"items": [item], "iterations": 1}, {"items": [item], "iterations": 1, "trial": True}]},
        "parameter_invalid",
        "phases[1][trial]",
    )
    await refused(
        {
            **base,
            "startDate": (clock.now() - timedelta(days=1)).isoformat(),
            "phases": [{"items": [item], "iterations": 1}],
        },
        "parameter_invalid",
        "startDate",
    )
    await refused(
        {**base, "phases": [{"items": [item], "iterations": 0}]}, "parameter_invalid", "phases[0][iterations]"
    )
    await refused({"phases": [{"items": [item], "iterations": 1}]}, "parameter_missing", "customer")
    await refused({"customer": buyer["id"]}, "parameter_missing", "phases")
    await refused(
        {"customer": "cus_missing", "phases": [{"items": [item], "iterations": 1}]}, "resource_missing", "customer", 404
    )
    await refused({"fromSubscription": "sub_missing"}, "resource_missing", "fromSubscription", 404)
    async with session_factory() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(SubscriptionSchedule)
            .where(SubscriptionSchedule.customer_id == buyer["id"])
        )
        subscriptions = await session.scalar(
            select(func.count()).select_from(Subscription).where(Subscription.customer_id == buyer["id"])
        )
    assert (count, subscriptions) == (0, 0)

    # another organization's schedule does not exist here
    mine = await schedule(api_client, **base, phases=[{"items": [item], "iterations": 1}])
    for response in (
        await other_api_client.get(f"/v1/subscription-schedules/{mine['id']}"),
        await other_api_client.post(f"/v1/subscription-schedules/{mine['id']}/release"),
        await other_api_client.post(f"/v1/subscription-schedules/{mine['id']}", json={"metadata": {"a": "b"}}),
    ):
        assert_error(response, 404, "resource_missing", "id")
