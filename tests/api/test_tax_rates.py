"""/v1/tax-rates through the command pipeline (API -> Kafka -> consumer -> Postgres)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import TenantClient, assert_error, commands_applied
from tests.api.test_subscriptions import customer, invoice_of, ok, price, subscribe

VAT = {"displayName": "VAT", "percentage": "20", "inclusive": True, "country": "DE", "jurisdiction": "DE"}


async def create(client: TenantClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/tax-rates", json={**VAT, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_retrieve_update_archive_list(api_client: TenantClient) -> None:
    rate = await create(
        api_client,
        displayName="Sales tax",
        percentage="8.875",
        inclusive=False,
        country="US",
        state="NY",
        taxType="sales_tax",
        description="New York City",
        metadata={"filing": "quarterly"},
    )
    assert rate["id"].startswith("txr_")
    assert (rate["percentage"], rate["inclusive"], rate["active"], rate["taxType"], rate["state"]) == (
        "8.875",
        False,
        True,
        "sales_tax",
        "NY",
    )
    assert (await api_client.get(f"/v1/tax-rates/{rate['id']}")).json() == rate

    changed = await api_client.patch(
        f"/v1/tax-rates/{rate['id']}",
        json={"displayName": "NYC sales tax", "description": None, "metadata": {"filing": None, "code": "NY-1"}},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["displayName"], changed.json()["description"], changed.json()["metadata"]) == (
        "NYC sales tax",
        None,
        {"code": "NY-1"},
    )
    assert changed.json()["percentage"] == "8.875" and changed.json()["state"] == "NY"

    vat = await create(api_client)
    archived = await api_client.patch(f"/v1/tax-rates/{vat['id']}", json={"active": False})
    assert archived.status_code == 200 and archived.json()["active"] is False

    def ids(listed: dict[str, Any]) -> set[str]:
        return {r["id"] for r in listed["data"]}

    everything = (await api_client.get("/v1/tax-rates", params={"limit": 100})).json()
    assert everything["object"] == "list" and {rate["id"], vat["id"]} <= ids(everything)
    active = (await api_client.get("/v1/tax-rates", params={"active": "true", "limit": 100})).json()
    assert rate["id"] in ids(active) and vat["id"] not in ids(active)
    inclusive = (await api_client.get("/v1/tax-rates", params={"inclusive": "true", "limit": 100})).json()
    assert vat["id"] in ids(inclusive) and rate["id"] not in ids(inclusive)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"percentage": "100.01"}, "parameter_invalid", "percentage"),
        ({"percentage": "-1"}, "parameter_invalid", "percentage"),
        ({"percentage": "8.87501"}, "parameter_invalid", "percentage"),
        ({"percentage": "ten"}, "parameter_invalid", "percentage"),
        ({"inclusive": None}, "parameter_invalid", "inclusive"),
        ({"displayName": ""}, "parameter_invalid_string_empty", "displayName"),
        ({"country": "Germany"}, "parameter_invalid_format", "country"),
        ({"taxType": "luxury"}, "parameter_invalid", "taxType"),
    ],
)
async def test_bad_tax_rates_are_refused_and_write_nothing(
    api_client: TenantClient, session_factory: Any, body: dict[str, Any], code: str, param: str
) -> None:
    before = await commands_applied(session_factory, api_client.tenant.organization_id)
    assert_error(await api_client.post("/v1/tax-rates", json={**VAT, **body}), 400, code, param)
    assert await commands_applied(session_factory, api_client.tenant.organization_id) == before


async def test_percentage_and_inclusive_never_change(api_client: TenantClient) -> None:
    rate = await create(api_client)
    for field, value in (("percentage", "19"), ("inclusive", False)):
        response = await api_client.patch(f"/v1/tax-rates/{rate['id']}", json={field: value})
        assert_error(response, 400, "parameter_unknown", field)
    assert_error(
        await api_client.patch(f"/v1/tax-rates/{rate['id']}", json={"displayName": None}),
        400,
        "parameter_invalid",
        "displayName",
    )
    assert (await api_client.get(f"/v1/tax-rates/{rate['id']}")).json() == rate


async def test_another_organizations_tax_rate_is_missing(
    api_client: TenantClient, other_api_client: TenantClient
) -> None:
    rate = await create(api_client)
    assert_error(await other_api_client.get(f"/v1/tax-rates/{rate['id']}"), 404, "resource_missing", "id")
    patched = await other_api_client.patch(f"/v1/tax-rates/{rate['id']}", json={"active": False})
    assert_error(patched, 404, "resource_missing", "id")
    listed = (await other_api_client.get("/v1/tax-rates", params={"limit": 100})).json()
    assert rate["id"] not in {r["id"] for r in listed["data"]}
    assert (await api_client.get(f"/v1/tax-rates/{rate['id']}")).json()["active"] is True


# ---------------------------------------------------------------- on a subscription's invoices


async def test_a_subscription_taxed_by_its_default_and_an_items_own_rates(api_client: TenantClient) -> None:
    """Amounts by hand, each tax rounded once, half away from zero:
    team 2 x 30.00 = 6000 with 8.875 % sales tax added: 532.5 -> 533;
    addon 9.99 = 999 with 20 % VAT inside it: net 999 / 1.2 = 832.5 -> 833, VAT 166.5 -> 167.
    subtotal 6999, tax 700, total 6999 + 533 = 7532."""
    sales = await create(api_client, displayName="Sales tax", percentage="8.875", inclusive=False, country="US")
    vat = await create(api_client)
    buyer = await customer(api_client)
    team, addon = await price(api_client), await price(api_client, "Add-on", unitAmount=999)
    created = await subscribe(
        api_client,
        customer=buyer["id"],
        items=[{"price": team["id"], "quantity": 2}, {"price": addon["id"], "taxRates": [vat["id"]]}],
        defaultTaxRates=[sales["id"]],
        collectionMethod="send_invoice",
        daysUntilDue=30,
    )
    assert created["defaultTaxRates"] == [sales["id"]]
    assert [item["taxRates"] for item in created["items"]] == [[], [vat["id"]]]
    assert (await api_client.get(f"/v1/subscriptions/{created['id']}")).json() == created

    invoice = await invoice_of(api_client, created)
    assert [(line["amount"], line["taxAmounts"]) for line in invoice["lines"]] == [
        (6000, [{"taxRateId": sales["id"], "inclusive": False, "taxableAmount": 6000, "amount": 533}]),
        (999, [{"taxRateId": vat["id"], "inclusive": True, "taxableAmount": 833, "amount": 167}]),
    ]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"], invoice["amountDue"]) == (6999, 700, 7532, 7532)

    upcoming = {"customer": buyer["id"], "subscription": created["id"]}
    renewal = await ok(await api_client.post("/v1/invoices/upcoming", json=upcoming))
    assert [line["taxAmounts"] for line in renewal["lines"]] == [line["taxAmounts"] for line in invoice["lines"]]
    assert (renewal["subtotal"], renewal["tax"], renewal["total"]) == (6999, 700, 7532)

    # the defaults change for the invoices to come; the invoice made keeps its taxes
    cleared = await ok(await api_client.patch(f"/v1/subscriptions/{created['id']}", json={"defaultTaxRates": None}))
    assert cleared["defaultTaxRates"] == [] and cleared["items"][1]["taxRates"] == [vat["id"]]
    renewal = await ok(await api_client.post("/v1/invoices/upcoming", json=upcoming))
    assert [len(line["taxAmounts"]) for line in renewal["lines"]] == [0, 1]
    assert (renewal["tax"], renewal["total"]) == (167, 6999)
    assert (await invoice_of(api_client, created))["tax"] == 700


async def test_tax_rates_a_subscription_cannot_use_are_refused_and_write_nothing(
    api_client: TenantClient, other_api_client: TenantClient, session_factory: Any
) -> None:
    archived = await create(api_client, active=False)
    foreign = await create(other_api_client)
    usable = await create(api_client)
    buyer = await customer(api_client)
    plan = await price(api_client)
    body = {"customer": buyer["id"], "collectionMethod": "send_invoice", "daysUntilDue": 30}
    before = await commands_applied(session_factory, api_client.tenant.organization_id)
    cases = [
        ({"defaultTaxRates": [foreign["id"]]}, 404, "resource_missing", "defaultTaxRates[0]"),
        ({"defaultTaxRates": [usable["id"], archived["id"]]}, 400, "tax_rate_inactive", "defaultTaxRates[1]"),
        ({"defaultTaxRates": [usable["id"], usable["id"]]}, 400, "parameter_invalid", "defaultTaxRates[1]"),
    ]
    for fields, status, code, param in cases:
        response = await api_client.post("/v1/subscriptions", json={**body, "items": [{"price": plan["id"]}], **fields})
        assert_error(response, status, code, param)
    items = [{"price": plan["id"], "taxRates": [archived["id"]]}]
    response = await api_client.post("/v1/subscriptions", json={**body, "items": items})
    assert_error(response, 400, "tax_rate_inactive", "items[0][taxRates][0]")
    assert await commands_applied(session_factory, api_client.tenant.organization_id) == before + 4  # applied, failed
    listed = (await api_client.get("/v1/subscriptions", params={"customer": buyer["id"]})).json()
    assert listed["data"] == []

    created = await subscribe(api_client, **body, items=[{"price": plan["id"]}], defaultTaxRates=[usable["id"]])
    refused = await api_client.patch(f"/v1/subscriptions/{created['id']}", json={"defaultTaxRates": [foreign["id"]]})
    assert_error(refused, 404, "resource_missing", "defaultTaxRates[0]")
    assert (await api_client.get(f"/v1/subscriptions/{created['id']}")).json()["defaultTaxRates"] == [usable["id"]]
