"""Plan changes through the real API, Kafka and Postgres, with the upcoming-invoice preview:
an upgrade mid-period invoiced now (always_invoice) and one left for the next invoice
(create_prorations), amounts computed by hand here; the preview equals the invoice (and
the pending items) to the minor unit; bad changes are refused in Stripe's shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from tests.api.conftest import TenantClient, assert_error
from tests.api.test_subscriptions import customer, ok, parse, price, subscribe

COMPARED = ("description", "amount", "quantity", "priceId", "proration", "periodStart", "periodEnd")


def share_left(start: datetime, end: datetime, at: datetime) -> Fraction:
    ms = timedelta(milliseconds=1)
    return Fraction(int((end - at) / ms), int((end - start) / ms))


def half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


async def basic_and_pro(client: TenantClient) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    buyer = await customer(client)
    basic = await price(client, "Basic plan", unitAmount=3000)
    pro = await price(client, "Pro plan", unitAmount=6000)
    created = await subscribe(
        client,
        customer=buyer["id"],
        items=[{"price": basic["id"]}],
        collectionMethod="send_invoice",
        daysUntilDue=30,
    )
    return created, basic, pro


async def test_an_upgrade_invoiced_now_matches_its_preview_and_the_hand_computed_amounts(
    api_client: TenantClient,
) -> None:
    created, basic, pro = await basic_and_pro(api_client)
    start, end = parse(created["currentPeriodStart"]), parse(created["currentPeriodEnd"])
    at = start + timedelta(days=10, hours=3)
    change = [{"id": created["items"][0]["id"], "price": pro["id"]}]
    preview = await ok(
        await api_client.post(
            "/v1/invoices/upcoming",
            json={
                "customer": created["customerId"],
                "subscription": created["id"],
                "subscriptionItems": change,
                "subscriptionProrationBehavior": "always_invoice",
                "subscriptionProrationDate": at.isoformat(),
            },
        )
    )
    left = share_left(start, end, at)
    credit, charge = -half_up(3000 * left), half_up(6000 * left)
    assert [line["amount"] for line in preview["lines"]] == [credit, charge]
    assert preview["total"] == credit + charge and preview["billingReason"] == "subscription_update"
    assert [line["priceId"] for line in preview["lines"]] == [basic["id"], pro["id"]]

    updated = await ok(
        await api_client.patch(
            f"/v1/subscriptions/{created['id']}",
            json={"items": change, "prorationBehavior": "always_invoice", "prorationDate": at.isoformat()},
        )
    )
    assert [item["priceId"] for item in updated["items"]] == [pro["id"]]
    assert updated["items"][0]["id"] == created["items"][0]["id"]  # the item keeps its id
    invoice = await ok(await api_client.get(f"/v1/invoices/{updated['latestInvoice']}"))
    assert invoice["id"] != created["latestInvoice"] and invoice["billingReason"] == "subscription_update"
    assert [{k: line[k] for k in COMPARED} for line in invoice["lines"]] == [
        {k: line[k] for k in COMPARED} for line in preview["lines"]
    ]
    assert (invoice["total"], invoice["amountDue"], invoice["status"]) == (
        preview["total"],
        preview["amountDue"],
        "open",
    )


async def test_create_prorations_waits_for_the_next_invoice_and_the_preview_shows_it(api_client: TenantClient) -> None:
    created, _, pro = await basic_and_pro(api_client)
    start, end = parse(created["currentPeriodStart"]), parse(created["currentPeriodEnd"])
    at = start + timedelta(days=3)
    change = [{"id": created["items"][0]["id"], "price": pro["id"], "quantity": 2}]
    body = {"customer": created["customerId"], "subscription": created["id"]}
    before = await ok(
        await api_client.post(
            "/v1/invoices/upcoming",
            json={**body, "subscriptionItems": change, "subscriptionProrationDate": at.isoformat()},
        )
    )
    left = share_left(start, end, at)
    assert [line["amount"] for line in before["lines"]] == [-half_up(3000 * left), half_up(12000 * left), 12000]
    assert [line["proration"] for line in before["lines"]] == [True, True, False]
    assert before["billingReason"] == "subscription_cycle" and before["periodStart"] == created["currentPeriodEnd"]

    updated = await ok(
        await api_client.patch(
            f"/v1/subscriptions/{created['id']}", json={"items": change, "prorationDate": at.isoformat()}
        )
    )
    assert updated["latestInvoice"] == created["latestInvoice"]  # nothing invoiced now
    after = await ok(await api_client.post("/v1/invoices/upcoming", json=body))
    assert [{k: line[k] for k in COMPARED} for line in after["lines"]] == [
        {k: line[k] for k in COMPARED} for line in before["lines"]
    ]
    assert after["total"] == before["total"]


async def test_no_proration_changes_the_next_renewal_only(api_client: TenantClient) -> None:
    created, _, pro = await basic_and_pro(api_client)
    change = [{"id": created["items"][0]["id"], "price": pro["id"]}]
    updated = await ok(
        await api_client.patch(
            f"/v1/subscriptions/{created['id']}", json={"items": change, "prorationBehavior": "none"}
        )
    )
    assert updated["latestInvoice"] == created["latestInvoice"]
    upcoming = await ok(
        await api_client.post(
            "/v1/invoices/upcoming", json={"customer": created["customerId"], "subscription": created["id"]}
        )
    )
    assert [line["amount"] for line in upcoming["lines"]] == [6000]


async def test_an_interval_change_restarts_the_cycle_and_invoices_the_new_period_now(
    api_client: TenantClient,
) -> None:
    """Monthly at 3000 to yearly at 30000 a quarter into the month (Stripe's rule): the
    unused time credited, the first year charged in full, invoiced at once; the cycle is
    anchored at the change. The preview shows that invoice to the minor unit."""
    created, _, _ = await basic_and_pro(api_client)
    yearly = await price(api_client, "Basic yearly", unitAmount=30000, recurring={"interval": "year"})
    period_start, period_end = parse(created["currentPeriodStart"]), parse(created["currentPeriodEnd"])
    moment = period_start + (period_end - period_start) / 4
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    at = moment.isoformat()
    credit = -half_up(3000 * share_left(period_start, period_end, moment))
    change = [{"id": created["items"][0]["id"], "price": yearly["id"]}]
    preview = await ok(
        await api_client.post(
            "/v1/invoices/upcoming",
            json={
                "customer": created["customerId"],
                "subscription": created["id"],
                "subscriptionItems": change,
                "subscriptionProrationDate": at,
            },
        )
    )
    changed = await ok(
        await api_client.patch(f"/v1/subscriptions/{created['id']}", json={"items": change, "prorationDate": at})
    )
    assert (parse(changed["billingCycleAnchor"]), parse(changed["currentPeriodStart"])) == (moment, moment)
    assert parse(changed["currentPeriodEnd"]) == moment.replace(year=moment.year + 1)
    invoice = await ok(await api_client.get(f"/v1/invoices/{changed['latestInvoice']}"))
    assert invoice["billingReason"] == "subscription_update"
    assert [(line["amount"], line["proration"]) for line in invoice["lines"]] == [(credit, True), (30000, False)]
    assert (invoice["total"], invoice["periodEnd"]) == (30000 + credit, changed["currentPeriodEnd"])
    assert [{k: line[k] for k in COMPARED} for line in preview["lines"]] == [
        {k: line[k] for k in COMPARED} for line in invoice["lines"]
    ]
    assert (preview["total"], preview["periodStart"], preview["billingReason"]) == (
        invoice["total"],
        invoice["periodStart"],
        "subscription_update",
    )


async def test_bad_plan_changes_are_refused_and_change_nothing(api_client: TenantClient) -> None:
    created, basic, _ = await basic_and_pro(api_client)
    yearly = await price(api_client, "Yearly", recurring={"interval": "year"})
    url = f"/v1/subscriptions/{created['id']}"
    item = created["items"][0]["id"]
    after_end = (parse(created["currentPeriodEnd"]) + timedelta(days=1)).isoformat()
    cases = [
        ({"items": [{"price": yearly["id"]}]}, 400, "price_interval_mismatch", "items"),  # mixed intervals
        ({"items": [{"id": "si_missing0000000000000000"}]}, 404, "resource_missing", "items[0][id]"),
        ({"items": [{"id": item, "deleted": True}]}, 400, "parameter_invalid", "items"),
        ({"items": [{"price": basic["id"]}]}, 400, "parameter_invalid", "items[0][price]"),
        (
            {"items": [{"id": item, "quantity": 2}], "prorationDate": after_end},
            400,
            "parameter_invalid",
            "prorationDate",
        ),
        ({"items": [{"id": item, "quantity": -1}]}, 400, None, "items[0][quantity]"),
    ]
    for body, status, code, param in cases:
        response = await api_client.patch(url, json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["param"] == param and (code is None or error["code"] == code), (body, error)
    unchanged = await ok(await api_client.get(url))
    assert unchanged["items"] == created["items"]
    await ok(await api_client.delete(url))
    refused = await api_client.post(
        "/v1/invoices/upcoming",
        json={"customer": created["customerId"], "subscription": created["id"], "subscriptionItems": []},
    )
    assert_error(refused, 400, "subscription_inactive", None)


async def test_a_paused_collection_handles_the_invoices_it_makes_as_told_until_resumed(
    api_client: TenantClient,
) -> None:
    """While paused, an always_invoice upgrade's invoice is kept a draft, marked
    uncollectible or voided, as the pause says; resumed, it is open."""
    created, _, _ = await basic_and_pro(api_client)
    url = f"/v1/subscriptions/{created['id']}"
    item = created["items"][0]["id"]
    statuses = []
    for quantity, behavior in enumerate(("keep_as_draft", "mark_uncollectible", "void"), start=2):
        paused = await ok(await api_client.patch(url, json={"pauseCollection": {"behavior": behavior}}))
        assert paused["pauseCollection"] == {"behavior": behavior, "resumesAt": None}
        assert paused["status"] == "active"  # a pause is not a status
        changed = await ok(
            await api_client.patch(
                url, json={"items": [{"id": item, "quantity": quantity}], "prorationBehavior": "always_invoice"}
            )
        )
        invoice = await ok(await api_client.get(f"/v1/invoices/{changed['latestInvoice']}"))
        statuses.append((invoice["status"], invoice["number"] is not None, invoice["amountDue"] > 0))
    assert statuses == [("draft", False, True), ("uncollectible", True, True), ("void", True, True)]

    resumed = await ok(await api_client.patch(url, json={"pauseCollection": None}))
    assert resumed["pauseCollection"] is None
    changed = await ok(
        await api_client.patch(
            url, json={"items": [{"id": item, "quantity": 5}], "prorationBehavior": "always_invoice"}
        )
    )
    assert (await ok(await api_client.get(f"/v1/invoices/{changed['latestInvoice']}")))["status"] == "open"

    # until a moment (when it ends by itself: tests/billing/subscriptions/test_pause.py)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    paused = await ok(
        await api_client.patch(url, json={"pauseCollection": {"behavior": "void", "resumesAt": until.isoformat()}})
    )
    assert parse(paused["pauseCollection"]["resumesAt"]) == until
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refused = await api_client.patch(url, json={"pauseCollection": {"behavior": "void", "resumesAt": past}})
    assert_error(refused, 400, "parameter_invalid", "pauseCollection[resumesAt]")
    for body, code, param in (
        ({"pauseCollection": {"behavior": "sleep"}}, "parameter_invalid", "pauseCollection[behavior]"),
        ({"pauseCollection": {}}, "parameter_missing", "pauseCollection[behavior]"),
    ):
        assert_error(await api_client.patch(url, json=body), 400, code, param)
