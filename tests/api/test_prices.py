"""Prices and quotes through the real API, Kafka and Postgres: the same catalog priced
in USD, EUR, JPY and KWD; every bad input of the issue is a 400 with its exact param and
writes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from billing.models import Price
from contracts.resources import Price as PriceResource
from tests.api.conftest import TenantClient, assert_error, new_tenant

TIERED = {
    "currency": "usd",
    "billingScheme": "tiered",
    "tiersMode": "graduated",
    "recurring": {"interval": "month"},
    "tiers": [
        {"upTo": 10, "unitAmount": 1000},
        {"upTo": 100, "unitAmount": 800, "flatAmount": 500},
        {"upTo": "inf", "unitAmount": 600},
    ],
    "currencyOptions": {
        "eur": {
            "tiers": [
                {"upTo": 10, "unitAmount": 900},
                {"upTo": 100, "unitAmount": 750, "flatAmount": 450},
                {"upTo": "inf", "unitAmount": 550},
            ]
        },
        "jpy": {
            "tiers": [
                {"upTo": 10, "unitAmount": 1500},
                {"upTo": 100, "unitAmount": 1200, "flatAmount": 700},
                {"upTo": "inf", "unitAmount": 900},
            ]
        },
        "kwd": {
            "tiers": [
                {"upTo": 10, "unitAmountDecimal": "305.5"},
                {"upTo": 100, "unitAmount": 250, "flatAmount": 150},
                {"upTo": "inf", "unitAmount": 190},
            ]
        },
    },
}


@pytest.fixture
async def client(api: httpx.AsyncClient, session_factory) -> TenantClient:  # type: ignore[no-untyped-def]
    return TenantClient(api, await new_tenant(session_factory, "Prices"))


@pytest.fixture
async def product(client: TenantClient) -> dict:
    response = await client.post("/v1/products", json={"name": "Seats"})
    assert response.status_code == 201, response.text
    return response.json()


async def price_count(session_factory, organization_id: str) -> int:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        return await session.scalar(
            select(func.count()).select_from(Price).where(Price.organization_id == organization_id)
        )


async def create(client: TenantClient, product: dict, **body: Any) -> dict:
    response = await client.post("/v1/prices", json={"product": product["id"], **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_tiered_price_in_usd_with_options_quotes_in_each_currency(client: TenantClient, product: dict) -> None:
    price = await create(client, product, **TIERED, lookupKey="seats_monthly", nickname="Seats")
    PriceResource.model_validate(price)
    assert price["id"].startswith("price_")
    assert (price["type"], price["billingScheme"], price["tiersMode"], price["currency"]) == (
        "recurring",
        "tiered",
        "graduated",
        "usd",
    )
    assert (price["recurringInterval"], price["recurringIntervalCount"], price["recurringUsageType"]) == (
        "month",
        1,
        "licensed",
    )
    assert price["tiers"][-1] == {"upTo": None, "unitAmount": 600}
    assert price["currencyOptions"]["kwd"]["tiers"][0] == {"upTo": 10, "unitAmountDecimal": "305.5"}
    assert (await client.get(f"/v1/prices/{price['id']}")).json() == price

    expected = {
        # 10 x 1000 + 15 x 800 + 500
        "usd": (22500, [10000, 12500]),
        "eur": (9000 + 15 * 750 + 450, [9000, 11700]),
        "jpy": (15000 + 15 * 1200 + 700, [15000, 18700]),
        # 10 x 305.5 fils + 15 x 250 + 150
        "kwd": (3055 + 3750 + 150, [3055, 3900]),
    }
    for currency, (total, amounts) in expected.items():
        response = await client.post(f"/v1/prices/{price['id']}/quote", json={"quantity": 25, "currency": currency})
        assert response.status_code == 200, response.text
        quote = response.json()
        assert (quote["object"], quote["price"], quote["currency"], quote["quantity"]) == (
            "price_quote",
            price["id"],
            currency,
            25,
        )
        assert quote["total"] == total and isinstance(quote["total"], int)
        assert [line["amount"] for line in quote["lines"]] == amounts
        assert [(line["tierIndex"], line["quantity"], line["upTo"]) for line in quote["lines"]] == [
            (0, 10, 10),
            (1, 15, 100),
        ]
    default = (await client.post(f"/v1/prices/{price['id']}/quote", json={"quantity": 101})).json()
    assert default["currency"] == "usd" and default["total"] == 10000 + 90 * 800 + 500 + 600

    error = assert_error(
        await client.post(f"/v1/prices/{price['id']}/quote", json={"quantity": 1, "currency": "gbp"}),
        400,
        "currency_not_supported",
        "currency",
    )
    assert "usd" in error["message"] and "never converted" in error["message"]
    assert_error(
        await client.post(f"/v1/prices/{price['id']}/quote", json={"quantity": 1, "currency": "xyz"}),
        400,
        "invalid_currency",
        "currency",
    )
    assert_error(
        await client.post(f"/v1/prices/{price['id']}/quote", json={"quantity": -1}),
        400,
        "parameter_invalid",
        "quantity",
    )
    assert_error(
        await client.post(f"/v1/prices/{price['id']}/quote", json={"quantity": 2.5}),
        400,
        "parameter_invalid_integer",
        "quantity",
    )
    assert_error(await client.post(f"/v1/prices/{price['id']}/quote", json={}), 400, "parameter_missing", "quantity")
    assert_error(
        await client.post("/v1/prices/price_missing/quote", json={"quantity": 1}), 404, "resource_missing", "id"
    )


async def test_volume_package_and_decimal_prices(client: TenantClient, product: dict) -> None:
    volume = await create(
        client,
        product,
        currency="eur",
        billingScheme="tiered",
        tiersMode="volume",
        tiers=[{"upTo": 5, "unitAmount": 1000}, {"upTo": "inf", "unitAmount": 800, "flatAmount": 100}],
    )
    quote = (await client.post(f"/v1/prices/{volume['id']}/quote", json={"quantity": 6})).json()
    assert (quote["total"], len(quote["lines"]), quote["lines"][0]["tierIndex"]) == (6 * 800 + 100, 1, 1)

    package = await create(
        client, product, currency="jpy", unitAmount=1000, transformQuantity={"divideBy": 10, "round": "down"}
    )
    quote = (await client.post(f"/v1/prices/{package['id']}/quote", json={"quantity": 29})).json()
    assert (quote["billedQuantity"], quote["total"]) == (2, 2000)

    decimal = await create(client, product, currency="usd", unitAmountDecimal="0.125")
    assert decimal["unitAmountDecimal"] == "0.125" and decimal["unitAmount"] is None
    assert (await client.get(f"/v1/prices/{decimal['id']}")).json()["unitAmountDecimal"] == "0.125"
    quote = (await client.post(f"/v1/prices/{decimal['id']}/quote", json={"quantity": 4})).json()
    assert quote["total"] == 1 and quote["lines"][0]["unitAmountDecimal"] == "0.125"


OK = {"currency": "usd", "unitAmount": 1000}


def tiered(tiers: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"currency": "usd", "billingScheme": "tiered", "tiersMode": "graduated", "tiers": tiers, **more}


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"currency": "usd", "unitAmount": -1}, "parameter_invalid", "unitAmount"),
        ({"currency": "usd", "unitAmount": 12.5}, "parameter_invalid_integer", "unitAmount"),
        ({"currency": "usd", "unitAmount": 12.0}, "parameter_invalid_integer", "unitAmount"),
        ({"currency": "usd", "unitAmount": "1000"}, "parameter_invalid_integer", "unitAmount"),
        ({"currency": "usd", "unitAmount": 100_000_000}, "amount_too_large", "unitAmount"),
        ({"currency": "usd", "unitAmountDecimal": "1.0000000000001"}, "parameter_invalid", "unitAmountDecimal"),
        ({"currency": "usd", "unitAmountDecimal": 1.5}, "parameter_invalid", "unitAmountDecimal"),
        ({"currency": "usd", "unitAmount": 1, "unitAmountDecimal": "1"}, "parameter_invalid", "unitAmountDecimal"),
        ({"currency": "usd"}, "parameter_missing", "unitAmount"),
        (
            {"currency": "usd", "unitAmount": 1, "tiers": [{"upTo": "inf", "unitAmount": 1}]},
            "parameter_invalid",
            "tiers",
        ),
        ({"currency": "usd", "unitAmount": 1, "tiersMode": "volume"}, "parameter_invalid", "tiersMode"),
        (
            tiered([{"upTo": 10, "unitAmount": 1}, {"upTo": 10, "unitAmount": 1}, {"upTo": "inf", "unitAmount": 1}]),
            "parameter_invalid",
            "tiers[1][upTo]",
        ),
        (
            tiered([{"upTo": 10, "unitAmount": 1}, {"upTo": 5, "unitAmount": 1}, {"upTo": "inf", "unitAmount": 1}]),
            "parameter_invalid",
            "tiers[1][upTo]",
        ),
        (tiered([{"upTo": 10, "unitAmount": 1}, {"upTo": 20, "unitAmount": 1}]), "parameter_invalid", "tiers[1][upTo]"),
        (
            tiered([{"upTo": 10, "unitAmount": 1}, {"upTo": "inf", "unitAmount": -5}]),
            "parameter_invalid",
            "tiers[1][unitAmount]",
        ),
        (
            tiered([{"upTo": 10, "unitAmount": 1, "unitAmountDecimal": "1"}, {"upTo": "inf", "unitAmount": 1}]),
            "parameter_invalid",
            "tiers[0][unitAmountDecimal]",
        ),
        (tiered([{"upTo": "inf", "unitAmount": 1}], unitAmount=5), "parameter_invalid", "unitAmount"),
        (
            {"currency": "usd", "billingScheme": "tiered", "tiers": [{"upTo": "inf", "unitAmount": 1}]},
            "parameter_missing",
            "tiersMode",
        ),
        ({"currency": "usx", "unitAmount": 1}, "invalid_currency", "currency"),
        ({"unitAmount": 1}, "parameter_missing", "currency"),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"usd": {"unitAmount": 1}}},
            "parameter_invalid",
            "currencyOptions[usd]",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"USD": {"unitAmount": 1}}},
            "parameter_invalid",
            "currencyOptions[USD]",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"eux": {"unitAmount": 1}}},
            "invalid_currency",
            "currencyOptions[eux]",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "currencyOptions": {"eur": {"unitAmount": 1.5}}},
            "parameter_invalid_integer",
            "currencyOptions[eur][unitAmount]",
        ),
        (
            {
                "currency": "usd",
                "unitAmount": 1,
                "currencyOptions": {"eur": {"tiers": [{"upTo": "inf", "unitAmount": 1}]}},
            },
            "parameter_invalid",
            "currencyOptions[eur][tiers]",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "fortnight"}},
            "parameter_invalid",
            "recurring[interval]",
        ),
        (
            {"currency": "usd", "unitAmount": 1, "recurring": {"interval": "month", "intervalCount": 37}},
            "parameter_invalid",
            "recurring[intervalCount]",
        ),
        ({"currency": "usd", "unitAmount": 1, "type": "recurring"}, "parameter_missing", "recurring"),
        (
            {"currency": "usd", "unitAmount": 1, "transformQuantity": {"divideBy": 0, "round": "up"}},
            "parameter_invalid",
            "transformQuantity[divideBy]",
        ),
        ({"currency": "usd", "unitAmount": 1, "nickname": "x" * 251}, "parameter_invalid_string_too_long", "nickname"),
        ({"currency": "usd", "unitAmount": 1, "productData": {"name": "x"}}, "parameter_unknown", "productData"),
    ],
)
async def test_bad_prices_are_400_with_the_exact_param_and_write_nothing(
    client: TenantClient,
    product: dict,
    session_factory,
    body: dict,
    code: str,
    param: str,  # type: ignore[no-untyped-def]
) -> None:
    response = await client.post("/v1/prices", json={"product": product["id"], **body})
    assert_error(response, 400, code, param)
    assert await price_count(session_factory, client.tenant.organization_id) == 0


async def test_a_price_needs_an_existing_product_of_the_organization(
    client: TenantClient, other_api_client: TenantClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    theirs = (await other_api_client.post("/v1/products", json={"name": "Theirs"})).json()
    for product_id in ("prod_missing", theirs["id"]):
        assert_error(
            await client.post("/v1/prices", json={"product": product_id, **OK}), 400, "resource_missing", "product"
        )
    assert await price_count(session_factory, client.tenant.organization_id) == 0


async def test_lookup_keys_in_use_and_transfer(client: TenantClient, product: dict, session_factory) -> None:  # type: ignore[no-untyped-def]
    first = await create(client, product, **OK, lookupKey="standard")
    assert_error(
        await client.post("/v1/prices", json={"product": product["id"], **OK, "lookupKey": "standard"}),
        400,
        "lookup_key_in_use",
        "lookupKey",
    )
    assert await price_count(session_factory, client.tenant.organization_id) == 1
    second = await create(
        client, product, currency="usd", unitAmount=1200, lookupKey="standard", transferLookupKey=True
    )
    assert second["lookupKey"] == "standard"
    assert (await client.get(f"/v1/prices/{first['id']}")).json()["lookupKey"] is None
    listed = (await client.get("/v1/prices", params={"lookupKeys": ["standard", "other"]})).json()["data"]
    assert [p["id"] for p in listed] == [second["id"]]

    # and back, through an update
    url = f"/v1/prices/{first['id']}"
    assert_error(await client.patch(url, json={"lookupKey": "standard"}), 400, "lookup_key_in_use", "lookupKey")
    moved = await client.patch(url, json={"lookupKey": "standard", "transferLookupKey": True})
    assert moved.status_code == 200 and moved.json()["lookupKey"] == "standard"
    assert (await client.get(f"/v1/prices/{second['id']}")).json()["lookupKey"] is None


async def test_only_active_nickname_metadata_and_lookup_key_change(client: TenantClient, product: dict) -> None:
    price = await create(client, product, **OK, nickname="Base", metadata={"a": "1"})
    url = f"/v1/prices/{price['id']}"
    updated = await client.patch(
        url, json={"active": False, "nickname": None, "metadata": {"b": "2"}, "lookupKey": "base"}
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["active"], body["nickname"], body["metadata"], body["lookupKey"]) == (
        False,
        None,
        {"a": "1", "b": "2"},
        "base",
    )
    assert (body["unitAmount"], body["currency"]) == (1000, "usd")
    for field, value in (
        ("unitAmount", 5),
        ("currency", "eur"),
        ("tiers", []),
        ("currencyOptions", {}),
        ("recurring", None),
    ):
        assert_error(await client.patch(url, json={field: value}), 400, "parameter_unknown", field)
    assert_error(await client.patch(url, json={"active": None}), 400, "parameter_invalid", "active")
    assert_error(await client.patch(url, json={"transferLookupKey": True}), 400, "parameter_missing", "lookupKey")
    assert (await client.get(url)).json() == body
    assert_error(await client.patch("/v1/prices/price_missing", json={"active": True}), 404, "resource_missing", "id")


async def test_list_filters(client: TenantClient, product: dict, other_api_client: TenantClient) -> None:
    other_product = (await client.post("/v1/products", json={"name": "Other"})).json()
    monthly = await create(client, product, **TIERED)
    yearly = await create(
        client, product, currency="eur", unitAmount=9000, recurring={"interval": "year", "usageType": "metered"}
    )
    once = await create(client, other_product, currency="kwd", unitAmount=1500, active=False)

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/v1/prices", params=params)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["data"]]

    assert await ids() == [once["id"], yearly["id"], monthly["id"]]
    assert await ids(product=product["id"]) == [yearly["id"], monthly["id"]]
    assert await ids(type="one_time") == [once["id"]]
    assert await ids(active="false") == [once["id"]]
    assert await ids(currency="EUR") == [yearly["id"], monthly["id"]]  # own currency, or an option
    assert await ids(currency="kwd") == [once["id"], monthly["id"]]
    assert await ids(**{"recurring[interval]": "year"}) == [yearly["id"]]
    assert await ids(**{"recurring[usageType]": "metered"}) == [yearly["id"]]
    assert await ids(limit=1, startingAfter=yearly["id"]) == [monthly["id"]]
    assert_error(await client.get("/v1/prices", params={"currency": "xyz"}), 400, "invalid_currency", "currency")
    assert_error(await client.get("/v1/prices", params={"type": "sometimes"}), 400, "parameter_invalid", "type")
    assert_error(
        await client.get("/v1/prices", params={"recurring[interval]": "hour"}),
        400,
        "parameter_invalid",
        "recurring[interval]",
    )
    assert (await other_api_client.get("/v1/prices", params={"product": product["id"]})).json()["data"] == []
    assert_error(await other_api_client.get(f"/v1/prices/{monthly['id']}"), 404, "resource_missing", "id")
    assert_error(
        await other_api_client.post(f"/v1/prices/{monthly['id']}/quote", json={"quantity": 1}),
        404,
        "resource_missing",
        "id",
    )
