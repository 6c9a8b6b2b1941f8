"""Subscriptions and their first invoices through the real API, Kafka and Postgres: trial,
sent invoice, charge pending, customer credit, a short first period prorated to the
minor unit, one currency per customer, every currency's exponent, and the bad input of the
issue answered in Stripe's shape with nothing written."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import func, select

from billing.models import Invoice, Subscription
from tests.api.conftest import TenantClient, assert_error

MONTHLY = {"recurring": {"interval": "month"}}


async def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()


async def customer(client: TenantClient, **fields: Any) -> dict[str, Any]:
    return await ok(
        await client.post("/v1/customers", json={"email": f"{uuid.uuid4().hex[:8]}@example.com", **fields}), 201
    )


async def price(client: TenantClient, name: str = "Team plan", **fields: Any) -> dict[str, Any]:
    product = await ok(await client.post("/v1/products", json={"name": name}), 201)
    body = {"product": product["id"], "currency": "usd", "unitAmount": 3000, **MONTHLY, **fields}
    return await ok(await client.post("/v1/prices", json=body), 201)


async def subscribe(client: TenantClient, **body: Any) -> dict[str, Any]:
    return await ok(await client.post("/v1/subscriptions", json=body), 201)


async def invoice_of(client: TenantClient, subscription: dict[str, Any]) -> dict[str, Any]:
    assert subscription["latestInvoice"], subscription
    return await ok(await client.get(f"/v1/invoices/{subscription['latestInvoice']}"))


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def test_a_sent_invoice_subscription_is_active_with_an_open_numbered_invoice(api_client: TenantClient) -> None:
    buyer = await customer(api_client)
    plan = await price(api_client)
    created = await subscribe(
        api_client,
        customer=buyer["id"],
        items=[{"price": plan["id"], "quantity": 2}],
        collectionMethod="send_invoice",
        daysUntilDue=30,
        metadata={"order": "42"},
    )
    assert created["id"].startswith("sub_") and created["status"] == "active"
    assert [(item["priceId"], item["quantity"]) for item in created["items"]] == [(plan["id"], 2)]
    start, end = parse(created["currentPeriodStart"]), parse(created["currentPeriodEnd"])
    assert end.day == min(start.day, end.day) and (end.year * 12 + end.month) - (start.year * 12 + start.month) == 1
    assert created["currency"] == "usd" and created["metadata"] == {"order": "42"}

    invoice = await invoice_of(api_client, created)
    assert (invoice["status"], invoice["billingReason"], invoice["collectionMethod"]) == (
        "open",
        "subscription_create",
        "send_invoice",
    )
    assert re.fullmatch(r"[0-9A-F]{8}-[0-9]{4,}", invoice["number"]), invoice["number"]
    assert (invoice["subtotal"], invoice["total"], invoice["amountDue"], invoice["amountRemaining"]) == (
        6000,
        6000,
        6000,
        6000,
    )
    assert parse(invoice["dueDate"]) - parse(invoice["finalizedAt"]) == timedelta(days=30)
    (line,) = invoice["lines"]
    assert (line["amount"], line["quantity"], line["proration"], line["priceId"]) == (6000, 2, False, plan["id"])
    assert line["description"] == "2 × Team plan (at 30.00 USD / month)"
    assert (line["periodStart"], line["periodEnd"]) == (created["currentPeriodStart"], created["currentPeriodEnd"])

    assert (await ok(await api_client.get(f"/v1/subscriptions/{created['id']}"))) == created
    listed = await ok(await api_client.get("/v1/subscriptions", params={"customer": buyer["id"]}))
    assert [s["id"] for s in listed["data"]] == [created["id"]]
    by_price = await ok(await api_client.get("/v1/subscriptions", params={"price": plan["id"], "status": "active"}))
    assert [s["id"] for s in by_price["data"]] == [created["id"]]
    invoices = await ok(await api_client.get("/v1/invoices", params={"subscription": created["id"]}))
    assert [i["id"] for i in invoices["data"]] == [invoice["id"]]
    fixed = await ok(await api_client.get(f"/v1/customers/{buyer['id']}"))
    assert fixed["currency"] == "usd"  # the first subscription fixes the customer's currency


async def test_a_trial_is_trialing_with_a_paid_zero_invoice(api_client: TenantClient) -> None:
    buyer = await customer(api_client)
    plan = await price(api_client)
    created = await subscribe(api_client, customer=buyer["id"], items=[{"price": plan["id"]}], trialPeriodDays=14)
    assert created["status"] == "trialing"
    trial_start, trial_end = parse(created["trialStart"]), parse(created["trialEnd"])
    assert trial_end - trial_start == timedelta(days=14)
    assert created["currentPeriodEnd"] == created["trialEnd"] == created["billingCycleAnchor"]
    invoice = await invoice_of(api_client, created)
    assert (invoice["status"], invoice["total"], invoice["amountDue"]) == ("paid", 0, 0) and invoice["paidAt"]
    assert [line["description"] for line in invoice["lines"]] == ["Trial period for Team plan"]


async def test_charge_automatically_waits_incomplete_and_a_credit_balance_is_applied(api_client: TenantClient) -> None:
    buyer = await customer(api_client, balance=-1000)
    plan = await price(api_client)
    created = await subscribe(api_client, customer=buyer["id"], items=[{"price": plan["id"]}])
    assert created["status"] == "incomplete"  # the first invoice must be paid to activate it
    invoice = await invoice_of(api_client, created)
    assert (invoice["status"], invoice["total"], invoice["startingBalance"], invoice["endingBalance"]) == (
        "open",
        3000,
        -1000,
        0,
    )
    assert (invoice["amountDue"], invoice["amountRemaining"], invoice["amountPaid"]) == (2000, 2000, 0)
    assert (await ok(await api_client.get(f"/v1/customers/{buyer['id']}")))["balance"] == 0

    rich = await customer(api_client, balance=-5000)
    covered = await subscribe(api_client, customer=rich["id"], items=[{"price": plan["id"]}])
    paid = await invoice_of(api_client, covered)
    assert (covered["status"], paid["status"], paid["amountDue"], paid["endingBalance"]) == ("active", "paid", 0, -2000)
    assert (await ok(await api_client.get(f"/v1/customers/{rich['id']}")))["balance"] == -2000


async def test_a_later_billing_cycle_anchor_prorates_the_first_period(api_client: TenantClient) -> None:
    buyer = await customer(api_client)
    plan = await price(api_client, unitAmount=3100)
    today = datetime.now(UTC)
    anchor = (today.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
    created = await subscribe(
        api_client,
        customer=buyer["id"],
        items=[{"price": plan["id"]}],
        billingCycleAnchor=anchor.isoformat(),
        collectionMethod="send_invoice",
        daysUntilDue=7,
    )
    start = parse(created["currentPeriodStart"])
    assert parse(created["currentPeriodEnd"]) == anchor == parse(created["billingCycleAnchor"])
    month_before = (anchor - timedelta(days=1)).replace(day=1)  # the full period ending at the anchor
    share = Fraction(
        int((anchor - start) / timedelta(milliseconds=1)), int((anchor - month_before) / timedelta(milliseconds=1))
    )
    expected = int(3100 * share + Fraction(1, 2))  # half up, once
    (line,) = (await invoice_of(api_client, created))["lines"]
    assert (line["amount"], line["proration"]) == (expected, True)
    assert line["description"].startswith("Remaining time on 1 × Team plan after ")


# 3 units, with 8.875 % sales tax added, rounded once in each currency's minor unit (half
# away from zero): 9000 -> 798.75 -> 799; 8250 -> 732.1875 -> 732; 13200 yen -> 1171.5 ->
# 1172; 27750 fils -> 2462.8125 -> 2463
@pytest.mark.parametrize(
    ("currency", "amount", "tax"), [("usd", 3000, 799), ("eur", 2750, 732), ("jpy", 4400, 1172), ("kwd", 9250, 2463)]
)
async def test_each_currency_charges_its_own_amount_in_its_minor_unit(
    api_client: TenantClient, currency: str, amount: int, tax: int
) -> None:
    plan = await price(
        api_client,
        currencyOptions={"eur": {"unitAmount": 2750}, "jpy": {"unitAmount": 4400}, "kwd": {"unitAmount": 9250}},
    )
    sales = await ok(
        await api_client.post(
            "/v1/tax-rates", json={"displayName": "Sales tax", "percentage": "8.875", "inclusive": False}
        ),
        201,
    )
    buyer = await customer(api_client)
    created = await subscribe(
        api_client,
        customer=buyer["id"],
        items=[{"price": plan["id"], "quantity": 3}],
        currency=currency.upper(),
        defaultTaxRates=[sales["id"]],
        collectionMethod="send_invoice",
        daysUntilDue=0,
    )
    invoice = await invoice_of(api_client, created)
    assert (created["currency"], invoice["currency"], invoice["subtotal"]) == (currency, currency, 3 * amount)
    assert (invoice["tax"], invoice["total"]) == (tax, 3 * amount + tax)
    assert invoice["lines"][0]["currency"] == currency


async def test_a_customer_keeps_one_currency(api_client: TenantClient) -> None:
    plan = await price(api_client, currencyOptions={"eur": {"unitAmount": 2750}})
    buyer = await customer(api_client)
    await subscribe(api_client, customer=buyer["id"], items=[{"price": plan["id"]}], currency="eur")
    refused = await api_client.post(
        "/v1/subscriptions", json={"customer": buyer["id"], "items": [{"price": plan["id"]}], "currency": "usd"}
    )
    assert_error(refused, 400, "currency_mismatch", "currency")
    # without a currency the customer's applies
    second = await subscribe(api_client, customer=buyer["id"], items=[{"price": plan["id"]}])
    assert second["currency"] == "eur"


async def test_bad_subscriptions_are_refused_in_stripes_shape_and_write_nothing(
    api_client: TenantClient, other_api_client: TenantClient, session_factory: Any
) -> None:
    buyer = await customer(api_client)
    plan = await price(api_client)
    yearly = await price(api_client, recurring={"interval": "year"})
    one_time = await price(api_client, recurring=None, type="one_time")
    archived = await price(api_client)
    await ok(await api_client.patch(f"/v1/prices/{archived['id']}", json={"active": False}))
    foreign = await price(other_api_client)
    euro_only = await price(api_client, currency="eur")

    async def counts() -> tuple[int, int]:
        async with session_factory() as session:
            subscriptions = await session.scalar(
                select(func.count()).select_from(Subscription).where(Subscription.customer_id == buyer["id"])
            )
            invoices = await session.scalar(
                select(func.count()).select_from(Invoice).where(Invoice.customer_id == buyer["id"])
            )
        return subscriptions, invoices

    def body(*prices: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return {"customer": buyer["id"], "items": [{"price": p["id"]} for p in prices], **fields}

    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    cases = [
        (body(plan, yearly), 400, "price_interval_mismatch", "items[1][price]"),
        (body(foreign), 404, "resource_missing", "items[0][price]"),
        (body(archived), 400, "price_inactive", "items[0][price]"),
        (body(one_time), 400, "price_not_recurring", "items[0][price]"),
        (body(plan, plan), 400, "parameter_invalid", "items[1][price]"),
        (body(plan, euro_only), 400, "currency_not_supported", "items[1][price]"),
        (body(plan, trialEnd=past), 400, "parameter_invalid", "trialEnd"),
        (body(plan, collectionMethod="send_invoice"), 400, "parameter_missing", "daysUntilDue"),
        (body(plan, daysUntilDue=3), 400, "parameter_invalid", "daysUntilDue"),
        ({"customer": "cus_missing", "items": [{"price": plan["id"]}]}, 404, "resource_missing", "customer"),
        ({"customer": buyer["id"], "items": [{"price": plan["id"], "quantity": -1}]}, 400, None, "items[0][quantity]"),
        ({"customer": buyer["id"], "items": [{"price": plan["id"], "quantity": 1.5}]}, 400, None, "items[0][quantity]"),
        ({"customer": buyer["id"], "items": []}, 400, None, "items"),
    ]
    for request, status, code, param in cases:
        response = await api_client.post("/v1/subscriptions", json=request)
        assert response.status_code == status, (request, response.text)
        error = response.json()["error"]
        assert error["param"] == param, (request, error)
        if code is not None:
            assert error["code"] == code, (request, error)
    assert await counts() == (0, 0)
    assert (await ok(await api_client.get(f"/v1/customers/{buyer['id']}")))["currency"] is None


async def test_another_organizations_subscription_and_invoice_do_not_exist(
    api_client: TenantClient, other_api_client: TenantClient
) -> None:
    buyer = await customer(api_client)
    plan = await price(api_client)
    created = await subscribe(api_client, customer=buyer["id"], items=[{"price": plan["id"]}])
    assert_error(await other_api_client.get(f"/v1/subscriptions/{created['id']}"), 404, "resource_missing", "id")
    assert_error(await other_api_client.get(f"/v1/invoices/{created['latestInvoice']}"), 404, "resource_missing", "id")
    assert created["id"] not in [s["id"] for s in (await ok(await other_api_client.get("/v1/subscriptions")))["data"]]
    refused = await other_api_client.post(
        "/v1/subscriptions", json={"customer": buyer["id"], "items": [{"price": plan["id"]}]}
    )
    assert_error(refused, 404, "resource_missing", "customer")


async def test_cancel_at_period_end_and_undo_it(api_client: TenantClient) -> None:
    buyer = await customer(api_client)
    plan = await price(api_client)
    created = await subscribe(
        api_client,
        customer=buyer["id"],
        items=[{"price": plan["id"]}],
        metadata={"a": "1"},
        collectionMethod="send_invoice",
        daysUntilDue=7,
    )
    url = f"/v1/subscriptions/{created['id']}"
    pending = await ok(await api_client.patch(url, json={"cancelAtPeriodEnd": True, "metadata": {"b": "2"}}))
    assert (pending["cancelAtPeriodEnd"], pending["cancelAt"]) == (True, created["currentPeriodEnd"])
    assert pending["metadata"] == {"a": "1", "b": "2"} and pending["status"] == created["status"]
    undone = await ok(await api_client.patch(url, json={"cancelAtPeriodEnd": False, "metadata": {"a": None}}))
    assert (undone["cancelAtPeriodEnd"], undone["cancelAt"], undone["metadata"]) == (False, None, {"b": "2"})
    assert_error(await api_client.patch(url, json={"nickname": "x"}), 400, "parameter_unknown", "nickname")


async def test_cancel_now_with_proration_credits_the_unused_time(api_client: TenantClient) -> None:
    buyer = await customer(api_client, balance=-6000)  # the first invoice is paid from the balance
    plan = await price(api_client)
    created = await subscribe(api_client, customer=buyer["id"], items=[{"price": plan["id"], "quantity": 2}])
    assert created["status"] == "active"
    canceled = await ok(
        await api_client.delete(
            f"/v1/subscriptions/{created['id']}", params={"prorate": "true", "feedback": "too_expensive"}
        )
    )
    assert (canceled["status"], canceled["cancellationReason"]) == ("canceled", "too_expensive")
    assert canceled["canceledAt"] == canceled["endedAt"] and canceled["latestInvoice"] != created["latestInvoice"]
    start, end, at = (
        parse(canceled["currentPeriodStart"]),
        parse(canceled["currentPeriodEnd"]),
        parse(canceled["canceledAt"]),
    )
    ms = timedelta(milliseconds=1)
    share = Fraction(int((end - at) / ms), int((end - start) / ms))
    credit = -int(6000 * share + Fraction(1, 2))  # 2 x 3000 for the time left, rounded once
    final = await invoice_of(api_client, canceled)
    (line,) = final["lines"]
    assert (line["amount"], line["proration"], final["billingReason"]) == (credit, True, "subscription_cancel")
    assert line["description"].startswith("Unused time on 2 × Team plan after ")
    assert (final["total"], final["amountDue"], final["status"]) == (credit, 0, "paid")
    assert (await ok(await api_client.get(f"/v1/customers/{buyer['id']}")))["balance"] == credit


async def test_canceling_an_incomplete_subscription_expires_it_and_voids_its_invoice(api_client: TenantClient) -> None:
    buyer = await customer(api_client)
    plan = await price(api_client)
    created = await subscribe(api_client, customer=buyer["id"], items=[{"price": plan["id"]}])
    assert created["status"] == "incomplete"
    url = f"/v1/subscriptions/{created['id']}"
    refused = await api_client.patch(url, json={"cancelAtPeriodEnd": True})
    assert_error(refused, 400, "subscription_incomplete", "cancelAtPeriodEnd")
    assert (await ok(await api_client.patch(url, json={"metadata": {"k": "v"}})))["metadata"] == {"k": "v"}
    ended = await ok(await api_client.delete(url))
    assert ended["status"] == "incomplete_expired"
    invoice = await invoice_of(api_client, ended)
    assert (invoice["id"], invoice["status"]) == (created["latestInvoice"], "void") and invoice["voidedAt"]


async def test_a_canceled_subscription_cannot_change(api_client: TenantClient) -> None:
    buyer = await customer(api_client)
    plan = await price(api_client)
    created = await subscribe(api_client, customer=buyer["id"], items=[{"price": plan["id"]}], trialPeriodDays=3)
    url = f"/v1/subscriptions/{created['id']}"
    ended = await ok(await api_client.delete(url, params={"prorate": "true"}))
    assert ended["status"] == "canceled" and ended["latestInvoice"] == created["latestInvoice"]  # a trial: no credit
    assert_error(await api_client.patch(url, json={"metadata": {"x": "1"}}), 400, "subscription_inactive", None)
    assert_error(await api_client.delete(url), 400, "subscription_inactive", None)
    assert_error(
        await api_client.delete("/v1/subscriptions/sub_missing00000000000000000"), 404, "resource_missing", "id"
    )


async def test_search_by_status_and_metadata(api_client: TenantClient, other_api_client: TenantClient) -> None:
    buyer, plan = await customer(api_client), await price(api_client)
    tag = uuid.uuid4().hex[:10]
    body = {"customer": buyer["id"], "items": [{"price": plan["id"]}], "collectionMethod": "send_invoice"}
    pro = await subscribe(api_client, **body, daysUntilDue=7, metadata={"plan": "pro", "batch": tag})
    basic = await subscribe(api_client, **body, daysUntilDue=7, metadata={"plan": "basic", "batch": tag})
    trial = await subscribe(
        api_client, customer=buyer["id"], items=[{"price": plan["id"]}], trialPeriodDays=7, metadata={"batch": tag}
    )
    await ok(await api_client.delete(f"/v1/subscriptions/{basic['id']}"))

    async def found(query: str, client: TenantClient = api_client) -> list[str]:
        result = await ok(await client.get("/v1/subscriptions/search", params={"query": query}))
        assert result["object"] == "search_result"
        return [s["id"] for s in result["data"]]

    assert await found(f"metadata['batch']:'{tag}'") == [trial["id"], basic["id"], pro["id"]]  # newest first
    assert await found(f"status:'active' AND metadata['batch']:'{tag}'") == [pro["id"]]
    assert await found(f"status:'canceled' AND metadata['batch']:'{tag}'") == [basic["id"]]
    either = await found("status:'trialing' OR metadata['plan']:'pro'")
    assert {trial["id"], pro["id"]} <= set(either) and basic["id"] not in either
    assert await found(f"metadata['batch']:'{tag}'", other_api_client) == []
    for query in ("status:'sleeping'", "status~'act'", "customer:'x'"):
        response = await api_client.get("/v1/subscriptions/search", params={"query": query})
        assert_error(response, 400, "invalid_search_query", "query")
