"""One-off invoices through the real API, Kafka and Postgres: invoice items (an amount, a
credit, a one_time price quoted by the pricing engine), a draft of them, deleted (the items
pending again) and made again, finalized with a gapless number, voided; another marked
uncollectible; Stripe's transition table refusing the rest, with nothing written."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import TenantClient, assert_error
from tests.api.test_subscriptions import customer, ok


async def item(client: TenantClient, **body: Any) -> dict[str, Any]:
    return await ok(await client.post("/v1/invoiceitems", json=body), 201)


async def one_time_price(client: TenantClient, unit_amount: int) -> dict[str, Any]:
    product = await ok(await client.post("/v1/products", json={"name": "Setup fee"}), 201)
    body = {"product": product["id"], "currency": "eur", "unitAmount": unit_amount}
    return await ok(await client.post("/v1/prices", json=body), 201)


async def test_a_one_off_invoice_from_draft_to_void(api_client: TenantClient) -> None:
    buyer = await customer(api_client)
    fee = await one_time_price(api_client, 2500)
    consulting = await item(
        api_client, customer=buyer["id"], amount=12000, currency="eur", description="Consulting, 2 hours"
    )
    assert (consulting["amount"], consulting["currency"], consulting["invoiceId"]) == (12000, "eur", None)
    setup = await item(api_client, customer=buyer["id"], price=fee["id"], quantity=3)
    assert (setup["amount"], setup["description"], setup["unitAmountDecimal"]) == (7500, "3 × Setup fee", "2500")
    goodwill = await item(api_client, customer=buyer["id"], amount=-1500, description="Goodwill credit")
    assert goodwill["currency"] == "eur"  # that of the customer's pending items
    pending = (await api_client.get("/v1/invoiceitems", params={"customer": buyer["id"], "pending": "true"})).json()
    assert {i["id"] for i in pending["data"]} == {consulting["id"], setup["id"], goodwill["id"]}

    body = {"customer": buyer["id"], "collectionMethod": "send_invoice", "daysUntilDue": 14}
    draft = await ok(await api_client.post("/v1/invoices", json=body), 201)
    assert (draft["status"], draft["number"], draft["billingReason"], draft["currency"]) == (
        "draft",
        None,
        "manual",
        "eur",
    )
    assert [(line["description"], line["amount"]) for line in draft["lines"]] == [
        ("Consulting, 2 hours", 12000),
        ("3 × Setup fee", 7500),
        ("Goodwill credit", -1500),
    ]
    assert (draft["subtotal"], draft["total"], draft["amountDue"]) == (18000, 18000, 18000)
    on_draft = (await api_client.get("/v1/invoiceitems", params={"invoice": draft["id"]})).json()["data"]
    assert len(on_draft) == 3
    assert_error(await api_client.delete(f"/v1/invoiceitems/{setup['id']}"), 400, "invoice_item_not_deletable", None)

    # deleting the draft makes its items pending again; the next draft takes them
    deleted = await ok(await api_client.delete(f"/v1/invoices/{draft['id']}"))
    assert deleted["id"] == draft["id"] and len(deleted["lines"]) == 3
    assert_error(await api_client.get(f"/v1/invoices/{draft['id']}"), 404, "resource_missing", "id")
    assert (await api_client.get(f"/v1/invoiceitems/{setup['id']}")).json()["invoiceId"] is None
    await ok(await api_client.delete(f"/v1/invoiceitems/{goodwill['id']}"))
    draft = await ok(await api_client.post("/v1/invoices", json=body), 201)
    assert (draft["total"], len(draft["lines"])) == (19500, 2)

    finalized = await ok(await api_client.post(f"/v1/invoices/{draft['id']}/finalize"))
    assert finalized["status"] == "open" and finalized["number"] and finalized["dueDate"]
    assert (finalized["amountDue"], finalized["amountRemaining"]) == (19500, 19500)
    assert_error(await api_client.post(f"/v1/invoices/{draft['id']}/finalize"), 400, "invoice_not_editable", None)
    assert_error(await api_client.delete(f"/v1/invoices/{draft['id']}"), 400, "invoice_not_editable", None)
    voided = await ok(await api_client.post(f"/v1/invoices/{draft['id']}/void"))
    assert voided["status"] == "void" and voided["voidedAt"]
    for action, code in (("void", "invoice_not_voidable"), ("mark-uncollectible", "invoice_not_open")):
        assert_error(await api_client.post(f"/v1/invoices/{draft['id']}/{action}"), 400, code, None)
    assert_error(await api_client.post(f"/v1/invoices/{draft['id']}/pay"), 400, "invoice_not_payable", None)


async def test_uncollectible_and_the_numbers_that_follow(api_client: TenantClient) -> None:
    buyer = await customer(api_client)
    numbers = []
    for amount in (1000, 2000):
        await item(api_client, customer=buyer["id"], amount=amount, currency="usd")
        draft = await ok(
            await api_client.post(
                "/v1/invoices", json={"customer": buyer["id"], "collectionMethod": "send_invoice", "daysUntilDue": 0}
            ),
            201,
        )
        numbers.append((await ok(await api_client.post(f"/v1/invoices/{draft['id']}/finalize")))["number"])
    prefix, first = numbers[0].rsplit("-", 1)
    assert numbers[1] == f"{prefix}-{int(first) + 1:0{len(first)}d}"  # the organization's next, no gap
    written_off = await ok(await api_client.post(f"/v1/invoices/{draft['id']}/mark-uncollectible"))
    assert written_off["status"] == "uncollectible" and written_off["amountRemaining"] == 2000
    assert (await ok(await api_client.post(f"/v1/invoices/{draft['id']}/void")))["status"] == "void"


async def test_bad_invoice_items_and_invoices_are_refused_and_write_nothing(
    api_client: TenantClient, other_api_client: TenantClient
) -> None:
    buyer = await customer(api_client)
    stranger = await customer(other_api_client)
    recurring = await ok(await api_client.post("/v1/products", json={"name": "Plan"}), 201)
    monthly = await ok(
        await api_client.post(
            "/v1/prices",
            json={"product": recurring["id"], "currency": "usd", "unitAmount": 100, "recurring": {"interval": "month"}},
        ),
        201,
    )
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({"customer": buyer["id"]}, 400, "parameter_missing", "amount"),
        ({"customer": buyer["id"], "amount": 100, "price": monthly["id"]}, 400, "parameter_invalid", "amount"),
        ({"customer": buyer["id"], "amount": 100}, 400, "parameter_missing", "currency"),
        ({"customer": buyer["id"], "price": monthly["id"]}, 400, "price_not_one_time", "price"),
        ({"customer": stranger["id"], "amount": 100, "currency": "usd"}, 404, "resource_missing", "customer"),
        ({"customer": buyer["id"], "amount": 1.5, "currency": "usd"}, 400, "parameter_invalid_integer", "amount"),
        ({"customer": buyer["id"], "amount": 100, "currency": "xxx"}, 400, "invalid_currency", "currency"),
    ]
    for body, status, code, param in cases:
        response = await api_client.post("/v1/invoiceitems", json=body)
        assert_error(response, status, code, param)
    nothing = await api_client.post("/v1/invoices", json={"customer": buyer["id"]})
    assert_error(nothing, 400, "invoice_no_customer_line_items", "customer")
    sent = {"customer": buyer["id"], "collectionMethod": "send_invoice"}
    assert_error(await api_client.post("/v1/invoices", json=sent), 400, "parameter_missing", "daysUntilDue")
    listed = (await api_client.get("/v1/invoiceitems", params={"customer": buyer["id"]})).json()["data"]
    assert (
        listed == [] and (await api_client.get("/v1/invoices", params={"customer": buyer["id"]})).json()["data"] == []
    )
    for path in (
        "/v1/invoices/in_missing000000000000000000/finalize",
        "/v1/invoices/in_missing000000000000000000/void",
    ):
        assert_error(await api_client.post(path), 404, "resource_missing", "id")


async def test_a_customer_bills_in_the_currency_its_first_invoice_fixed(api_client: TenantClient) -> None:
    buyer = await customer(api_client)
    await item(api_client, customer=buyer["id"], amount=1000, currency="usd")
    await ok(await api_client.post("/v1/invoices", json={"customer": buyer["id"]}), 201)
    refused = await api_client.post(
        "/v1/invoiceitems", json={"customer": buyer["id"], "amount": 500, "currency": "eur"}
    )
    assert_error(refused, 400, "currency_mismatch", "currency")
    assert (await item(api_client, customer=buyer["id"], amount=500))["currency"] == "usd"
    charged = {"customer": buyer["id"], "daysUntilDue": 3}  # charge_automatically takes no due date
    assert_error(await api_client.post("/v1/invoices", json=charged), 400, "parameter_invalid", "daysUntilDue")
