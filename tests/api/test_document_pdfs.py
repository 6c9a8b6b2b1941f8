"""Invoice and credit note PDFs through the real stack: an invoice made by the command
pipeline is fetched as a PDF whose extracted text (pypdf) carries its number, lines, taxes
and totals in the customer's locale and currency, JPY without decimals and KWD with three;
a credit note's PDF says where the credit went; another organization's do not exist."""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader

from billing.documents.formatting import format_money
from tests.api.conftest import TenantClient, assert_error
from tests.api.test_subscriptions import customer, ok, price, subscribe


def pdf_text(response: Any) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)


async def test_an_invoice_pdf_has_its_number_lines_taxes_and_totals(api_client: TenantClient) -> None:
    buyer = await customer(
        api_client,
        name="Ada Lovelace",
        email="ada@example.com",
        address={"line1": "12 St James's Square", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"},
        preferredLocales=["xx-nope", "en-US"],
    )
    assert buyer["preferredLocales"] == ["xx-nope", "en-US"]
    sales = await ok(
        await api_client.post(
            "/v1/tax-rates", json={"displayName": "Sales tax", "percentage": "8.875", "inclusive": False}
        ),
        201,
    )
    plan = await price(api_client, name="Analytics seats", currency="usd", unitAmount=1500)
    created = await subscribe(
        api_client,
        customer=buyer["id"],
        items=[{"price": plan["id"], "quantity": 2}],
        defaultTaxRates=[sales["id"]],
        collectionMethod="send_invoice",
        daysUntilDue=30,
    )
    invoice = (await api_client.get(f"/v1/invoices/{created['latestInvoice']}")).json()
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (3000, 266, 3266)  # 266.25 rounded once

    text = pdf_text(await api_client.get(f"/v1/invoices/{invoice['id']}/pdf"))
    for expected in (
        "Invoice",
        invoice["number"],
        "Ada Lovelace",
        "ada@example.com",
        "SW1Y 4JH London",
        invoice["lines"][0]["description"],
        "$15.00",  # the unit price, two seats
        "$30.00",
        "Sales tax 8.875 %",
        "$2.66",
        "$32.66",
        "Amount due",
        "Date due",
        "Page 1 of 1",
    ):
        assert expected in text, (expected, text)

    note = await ok(
        await api_client.post(
            "/v1/credit-notes",
            json={"invoice": invoice["id"], "amount": 500, "memo": "One seat started late", "reason": "order_change"},
        ),
        201,
    )
    credit_text = pdf_text(await api_client.get(f"/v1/credit-notes/{note['id']}/pdf"))
    for expected in (
        "Credit note",
        f"{invoice['number']}-CN-01",
        "One seat started late",
        "Order change",
        "Total credited",
        f"$5.00 taken off the amount due on invoice {invoice['number']}.",
    ):
        assert expected in credit_text, (expected, credit_text)
    credited_text = pdf_text(await api_client.get(f"/v1/invoices/{invoice['id']}/pdf"))
    assert "Credit notes" in credited_text and "-$5.00" in credited_text and "$27.66" in credited_text


async def test_amounts_follow_each_currency_and_the_customers_locale(api_client: TenantClient) -> None:
    # (currency, preferred locales, the locale the PDF uses, amount in minor units, written by hand)
    cases = [
        ("jpy", ["ja-JP"], "en-US", 1235, "¥1,235"),  # the font has no Japanese: en-US
        ("kwd", [], "en-US", 1235, "KWD\xa01.235"),
        ("eur", ["de-DE"], "de-DE", 123456, "1.234,56\xa0€"),
    ]
    for currency, locales, used, amount, written in cases:
        buyer = await customer(api_client, name=f"Buyer in {currency}", preferredLocales=locales)
        item = {"customer": buyer["id"], "amount": amount, "currency": currency, "description": f"Work in {currency}"}
        await ok(await api_client.post("/v1/invoiceitems", json=item), 201)
        draft = await ok(await api_client.post("/v1/invoices", json={"customer": buyer["id"]}), 201)
        draft_text = pdf_text(await api_client.get(f"/v1/invoices/{draft['id']}/pdf"))
        assert "Draft" in draft_text and f"Work in {currency}" in draft_text
        finalized = await ok(await api_client.post(f"/v1/invoices/{draft['id']}/finalize"))
        text = pdf_text(await api_client.get(f"/v1/invoices/{finalized['id']}/pdf"))
        assert format_money(amount, currency, used) == written
        assert finalized["number"] in text and written in text, (written, text)


async def test_another_organizations_documents_do_not_exist(
    api_client: TenantClient, other_api_client: TenantClient
) -> None:
    buyer = await customer(api_client, name="Private")
    await ok(
        await api_client.post("/v1/invoiceitems", json={"customer": buyer["id"], "amount": 900, "currency": "usd"}),
        201,
    )
    draft = await ok(await api_client.post("/v1/invoices", json={"customer": buyer["id"]}), 201)
    opened = await ok(await api_client.post(f"/v1/invoices/{draft['id']}/finalize"))
    note = await ok(await api_client.post("/v1/credit-notes", json={"invoice": opened["id"], "amount": 100}), 201)
    assert_error(await other_api_client.get(f"/v1/invoices/{opened['id']}/pdf"), 404, "resource_missing", "id")
    assert_error(await other_api_client.get(f"/v1/credit-notes/{note['id']}/pdf"), 404, "resource_missing", "id")
    bad_locale = await api_client.patch(f"/v1/customers/{buyer['id']}", json={"preferredLocales": ["not a tag"]})
    assert_error(bad_locale, 400, "parameter_invalid_format", "preferredLocales[0]")
    cleared = await ok(await api_client.patch(f"/v1/customers/{buyer['id']}", json={"preferredLocales": None}))
    assert cleared["preferredLocales"] == []
