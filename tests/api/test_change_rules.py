"""An organization's plan change rules through the real stack: stored with
PATCH /v1/billing-settings, then applied to subscription updates by the change's
direction (the amount per billing interval): a downgrade kept for the period's end and
made by the renewal exactly as the preview showed, an upgrade invoiced now with
always_invoice (amounts by hand), a credit product never prorated."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import TenantClient, assert_error, new_tenant
from tests.api.test_renewals import period_ended, renew
from tests.api.test_subscriptions import customer, invoice_of, ok, price, subscribe

DEFAULT_RULE = {"timing": "immediately", "prorationBehavior": None}


async def organization(api: Any, session_factory: Any, name: str) -> TenantClient:
    return TenantClient(api, await new_tenant(session_factory, name))


async def invoices_of(client: TenantClient, subscription_id: str) -> list[dict[str, Any]]:
    return (await client.get("/v1/invoices", params={"subscription": subscription_id})).json()["data"]


async def test_a_downgrade_waits_for_the_period_end_and_an_upgrade_is_invoiced_now(
    api: Any, session_factory: Any
) -> None:
    client = await organization(api, session_factory, "Change rules")
    settings = await ok(await client.get("/v1/billing-settings"))
    assert settings["changeRules"] == {
        "upgrade": DEFAULT_RULE,
        "downgrade": DEFAULT_RULE,
        "lateral": DEFAULT_RULE,
        "creditProducts": [],
    }
    rules = {
        "upgrade": {"timing": "immediately", "prorationBehavior": "always_invoice"},
        "downgrade": {"timing": "period_end"},
    }
    stored = await ok(await client.patch("/v1/billing-settings", json={"changeRules": rules}))
    assert stored["changeRules"]["downgrade"] == {"timing": "period_end", "prorationBehavior": None}
    assert stored["changeRules"]["lateral"] == DEFAULT_RULE
    assert (await ok(await client.get("/v1/billing-settings"))) == stored

    seats = await price(client, name="Seats", unitAmount=1000)
    created = await subscribe(
        client,
        customer=(await customer(client))["id"],
        items=[{"price": seats["id"], "quantity": 3}],
        collectionMethod="send_invoice",
        daysUntilDue=30,
    )
    (item,) = created["items"]
    proposal = {"customer": created["customerId"], "subscription": created["id"]}
    one_seat = [{"id": item["id"], "quantity": 1}]
    previewed = await ok(await client.post("/v1/invoices/upcoming", json={**proposal, "subscriptionItems": one_seat}))
    # the rule keeps the downgrade for the period's end: the preview is that renewal
    assert previewed["billingReason"] == "subscription_cycle"
    assert [(line["quantity"], line["amount"], line["proration"]) for line in previewed["lines"]] == [(1, 1000, False)]
    downgraded = await ok(
        await client.patch(f"/v1/subscriptions/{created['id']}", json={"items": [{"id": item["id"], "quantity": 1}]})
    )
    assert downgraded["items"][0]["quantity"] == 3  # unchanged until the period ends
    assert downgraded["scheduledChange"] == {
        "items": [{"id": item["id"], "quantity": 1}],
        "effectiveAt": downgraded["currentPeriodEnd"].replace("Z", "+00:00"),
        "direction": "downgrade",
    }
    assert len(await invoices_of(client, created["id"])) == 1  # nothing prorated, nothing invoiced
    pending = (await client.get("/v1/invoiceitems", params={"customer": created["customerId"]})).json()["data"]
    assert pending == []

    period_end = await period_ended(session_factory, created["id"])
    preview = await ok(
        await client.post(
            "/v1/invoices/upcoming", json={"customer": created["customerId"], "subscription": created["id"]}
        )
    )
    assert [(line["quantity"], line["amount"]) for line in preview["lines"]] == [(1, 1000)]
    applied = await renew(client, session_factory, created["id"], period_end)
    assert applied.status == "succeeded", applied.error
    renewed = await ok(await client.get(f"/v1/subscriptions/{created['id']}"))
    assert (renewed["items"][0]["quantity"], renewed["scheduledChange"]) == (1, None)
    invoice = await invoice_of(client, renewed)
    assert [(line["quantity"], line["amount"]) for line in invoice["lines"]] == [(1, 1000)]
    assert (invoice["total"], invoice["periodStart"]) == (preview["total"], preview["periodStart"])

    # an upgrade at the new period's start: always_invoice by the rule, the full difference now
    five_seats = [{"id": item["id"], "quantity": 5}]
    upgrade_preview = await ok(
        await client.post(
            "/v1/invoices/upcoming",
            json={
                **proposal,
                "subscriptionItems": five_seats,
                "subscriptionProrationDate": renewed["currentPeriodStart"],
            },
        )
    )
    assert (upgrade_preview["billingReason"], upgrade_preview["total"]) == ("subscription_update", 4000)
    upgraded = await ok(
        await client.patch(
            f"/v1/subscriptions/{created['id']}",
            json={"items": [{"id": item["id"], "quantity": 5}], "prorationDate": renewed["currentPeriodStart"]},
        )
    )
    assert (upgraded["items"][0]["quantity"], upgraded["scheduledChange"]) == (5, None)
    update = await invoice_of(client, upgraded)
    assert update["billingReason"] == "subscription_update"
    assert sorted(line["amount"] for line in update["lines"]) == [-1000, 5000]  # 1 seat credited, 5 charged
    assert update["total"] == 4000


async def test_credit_products_are_never_prorated_and_bad_rules_are_refused(api: Any, session_factory: Any) -> None:
    client = await organization(api, session_factory, "Credit products")
    credits = await price(client, name="Prepaid credits", unitAmount=500)
    bad = [
        ({"changeRules": {"creditProducts": ["prod_missing0000000000000000"]}}, 404, "resource_missing"),
        ({"changeRules": {"upgrade": {"timing": "tomorrow"}}}, 400, "parameter_invalid"),
        ({"changeRules": {"upgrade": {"timing": "immediately", "prorate": True}}}, 400, "parameter_unknown"),
    ]
    params = ["changeRules[creditProducts][0]", "changeRules[upgrade][timing]", "changeRules[upgrade][prorate]"]
    for (body, status, code), param in zip(bad, params, strict=True):
        assert_error(await client.patch("/v1/billing-settings", json=body), status, code, param)
    rules = {"upgrade": {"prorationBehavior": "always_invoice"}, "creditProducts": [credits["productId"]]}
    await ok(await client.patch("/v1/billing-settings", json={"changeRules": rules}))
    created = await subscribe(
        client,
        customer=(await customer(client))["id"],
        items=[{"price": credits["id"], "quantity": 2}],
        collectionMethod="send_invoice",
        daysUntilDue=30,
    )
    (item,) = created["items"]
    changed = await ok(
        await client.patch(f"/v1/subscriptions/{created['id']}", json={"items": [{"id": item["id"], "quantity": 4}]})
    )
    assert changed["items"][0]["quantity"] == 4  # made now (an upgrade), not prorated
    assert len(await invoices_of(client, created["id"])) == 1
    pending = (await client.get("/v1/invoiceitems", params={"customer": created["customerId"]})).json()["data"]
    assert pending == []


async def test_dunning_settings_are_replaced_section_by_section_and_checked(api: Any, session_factory: Any) -> None:
    client = TenantClient(api, await new_tenant(session_factory, "Dunning settings"))
    initial = await ok(await client.get("/v1/billing-settings"))
    assert initial["dunning"] == {
        "retryAfterDays": [1, 3, 5, 7],
        "invoiceAfterLastRetry": "open",
        "subscriptionAfterLastRetry": "canceled",
    }
    changed = await ok(
        await client.patch(
            "/v1/billing-settings", json={"dunning": {"retryAfterDays": [2], "invoiceAfterLastRetry": "uncollectible"}}
        )
    )
    assert changed["dunning"] == {
        "retryAfterDays": [2],
        "invoiceAfterLastRetry": "uncollectible",
        "subscriptionAfterLastRetry": "canceled",
    }
    assert changed["changeRules"] == initial["changeRules"]  # a section left out is unchanged
    rules = {"downgrade": {"timing": "period_end", "prorationBehavior": None}}
    assert (await ok(await client.patch("/v1/billing-settings", json={"changeRules": rules})))["dunning"] == changed[
        "dunning"
    ]
    too_late = await client.patch("/v1/billing-settings", json={"dunning": {"retryAfterDays": [1, 61]}})
    assert_error(too_late, 400, "parameter_invalid", "dunning[retryAfterDays][1]")
    unknown = await client.patch("/v1/billing-settings", json={"dunning": {"subscriptionAfterLastRetry": "deleted"}})
    assert_error(unknown, 400, "parameter_invalid", "dunning[subscriptionAfterLastRetry]")
    assert (await ok(await client.get("/v1/billing-settings")))["dunning"] == changed["dunning"]
