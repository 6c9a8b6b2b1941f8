"""Products through the real API, Kafka and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from billing.ids import new_id
from billing.models import Customer, Price, Product, Subscription, SubscriptionItem
from contracts.enums import SubscriptionStatus
from contracts.resources import Product as ProductResource
from tests.api.conftest import TenantClient, assert_error, new_tenant


@pytest.fixture
async def client(api: httpx.AsyncClient, session_factory) -> TenantClient:  # type: ignore[no-untyped-def]
    """A fresh organization, with a few attribute definitions."""
    client = TenantClient(api, await new_tenant(session_factory, "Products"))
    for body in (
        {"key": "color", "label": "Color", "type": "enum", "enumValues": ["red", "blue", "green"], "required": True},
        {"key": "size", "label": "Size", "type": "number"},
        {"key": "organic", "label": "Organic", "type": "boolean", "defaultValue": False},
        {"key": "released", "label": "Released", "type": "date"},
    ):
        assert (await client.post("/v1/product-attributes", json=body)).status_code == 201
    return client


async def counts(session_factory, organization_id: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        products = await session.scalar(
            select(func.count()).select_from(Product).where(Product.organization_id == organization_id)
        )
        prices = await session.scalar(
            select(func.count()).select_from(Price).where(Price.organization_id == organization_id)
        )
    return products, prices


async def create(client: TenantClient, **body: object) -> dict:
    body.setdefault("attributes", {"color": "red"})
    response = await client.post("/v1/products", json={"name": "Tee", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_read_update_archive(client: TenantClient, other_api_client: TenantClient) -> None:
    created = await create(
        client,
        name="Tee",
        description="Cotton tee",
        attributes={"color": "red", "size": 42, "released": "2025-03-01"},
        metadata={"sku": "T-1"},
        unitLabel="shirt",
    )
    assert created["id"].startswith("prod_")
    ProductResource.model_validate(created)
    assert created["attributes"] == {"color": "red", "size": 42, "released": "2025-03-01", "organic": False}
    assert (created["active"], created["unitLabel"], created["metadata"]) == (True, "shirt", {"sku": "T-1"})
    assert (await client.get(f"/v1/products/{created['id']}")).json() == created

    updated = await client.patch(
        f"/v1/products/{created['id']}",
        json={
            "name": "Tee 2",
            "description": None,
            "attributes": {"size": None, "organic": True},
            "metadata": {"batch": "7"},
        },
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["name"], body["description"]) == ("Tee 2", None)
    assert body["attributes"] == {"color": "red", "released": "2025-03-01", "organic": True}
    assert body["metadata"] == {"sku": "T-1", "batch": "7"}
    archived = (await client.patch(f"/v1/products/{created['id']}", json={"active": False})).json()
    assert archived["active"] is False

    assert_error(await other_api_client.get(f"/v1/products/{created['id']}"), 404, "resource_missing", "id")
    assert_error(
        await other_api_client.patch(f"/v1/products/{created['id']}", json={"name": "x"}), 404, "resource_missing", "id"
    )
    assert_error(await other_api_client.delete(f"/v1/products/{created['id']}"), 404, "resource_missing", "id")


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"name": "x", "attributes": {"color": "purple"}}, "parameter_invalid", "attributes[color]"),
        ({"name": "x", "attributes": {"color": "red", "size": "42"}}, "parameter_invalid", "attributes[size]"),
        ({"name": "x", "attributes": {"color": "red", "organic": "yes"}}, "parameter_invalid", "attributes[organic]"),
        (
            {"name": "x", "attributes": {"color": "red", "released": "2025-02-30"}},
            "parameter_invalid",
            "attributes[released]",
        ),
        ({"name": "x", "attributes": {"color": "red", "weight": 2}}, "parameter_unknown", "attributes[weight]"),
        ({"name": "x", "attributes": {"size": 2}}, "parameter_missing", "attributes[color]"),
        ({"name": "x"}, "parameter_missing", "attributes[color]"),
        ({"attributes": {"color": "red"}}, "parameter_missing", "name"),
        ({"name": "", "attributes": {"color": "red"}}, "parameter_invalid_string_empty", "name"),
        (
            {"name": "x", "attributes": {"color": "red"}, "unitLabel": "much too long!"},
            "parameter_invalid_string_too_long",
            "unitLabel",
        ),
        ({"name": "x", "attributes": {"color": "red"}, "price": 5}, "parameter_unknown", "price"),
    ],
)
async def test_bad_products_are_400_with_the_param_and_write_nothing(
    client: TenantClient,
    session_factory,
    body: dict,
    code: str,
    param: str,  # type: ignore[no-untyped-def]
) -> None:
    assert_error(await client.post("/v1/products", json=body), 400, code, param)
    assert await counts(session_factory, client.tenant.organization_id) == (0, 0)


async def test_bad_updates_are_400_and_change_nothing(client: TenantClient) -> None:
    created = await create(client)
    url = f"/v1/products/{created['id']}"
    assert_error(
        await client.patch(url, json={"attributes": {"color": None}}), 400, "parameter_missing", "attributes[color]"
    )
    assert_error(
        await client.patch(url, json={"attributes": {"size": "big"}}), 400, "parameter_invalid", "attributes[size]"
    )
    assert_error(await client.patch(url, json={"name": None}), 400, "parameter_invalid", "name")
    assert_error(await client.patch(url, json={"active": None}), 400, "parameter_invalid", "active")
    assert (await client.get(url)).json() == created


async def test_list_filters_and_paginates(client: TenantClient) -> None:
    red = await create(client, name="Red", attributes={"color": "red", "size": 10, "organic": True})
    blue = await create(client, name="Blue", attributes={"color": "blue", "size": 10.5})
    old_red = await create(client, name="Old red", attributes={"color": "red", "size": 10}, active=False)

    async def ids(**params: object) -> list[str]:
        response = await client.get("/v1/products", params=params)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["data"]]

    assert await ids() == [old_red["id"], blue["id"], red["id"]]
    assert await ids(**{"attributes[color]": "red"}) == [old_red["id"], red["id"]]
    assert await ids(**{"attributes[color]": "red", "active": "true"}) == [red["id"]]
    assert await ids(**{"attributes[size]": "10"}) == [old_red["id"], red["id"]]
    assert await ids(**{"attributes[size]": "10.5"}) == [blue["id"]]
    assert await ids(**{"attributes[organic]": "false"}) == [old_red["id"], blue["id"]]
    assert await ids(**{"attributes[color]": "green"}) == []
    assert await ids(active="false") == [old_red["id"]]
    assert await ids(ids=[red["id"], blue["id"]]) == [blue["id"], red["id"]]
    assert await ids(**{"created[gt]": blue["createdAt"]}) == [old_red["id"]]
    assert_error(
        await client.get("/v1/products", params={"attributes[size]": "big"}),
        400,
        "parameter_invalid",
        "attributes[size]",
    )
    assert_error(await client.get("/v1/products", params={"attributes": "red"}), 400, "parameter_invalid", "attributes")
    assert_error(await client.get("/v1/products", params={"limit": 0}), 400, "parameter_invalid", "limit")

    first = (await client.get("/v1/products", params={"limit": 2})).json()
    assert [p["id"] for p in first["data"]] == [old_red["id"], blue["id"]] and first["hasMore"] is True
    second = (await client.get("/v1/products", params={"limit": 2, "startingAfter": blue["id"]})).json()
    assert [p["id"] for p in second["data"]] == [red["id"]] and second["hasMore"] is False
    before = (await client.get("/v1/products", params={"limit": 2, "endingBefore": red["id"]})).json()
    assert [p["id"] for p in before["data"]] == [old_red["id"], blue["id"]]


async def test_search_by_name(client: TenantClient) -> None:
    red = await create(client, name="Red tee", metadata={"line": "basics"})
    await create(client, name="Blue hoodie")
    old = await create(client, name="Old red tee", active=False)

    async def search(query: str) -> list[str]:
        response = await client.get("/v1/products/search", params={"query": query})
        assert response.status_code == 200, response.text
        assert response.json()["object"] == "search_result"
        return [p["id"] for p in response.json()["data"]]

    assert await search("name~'red tee'") == [old["id"], red["id"]]
    assert await search("name~'red' AND active:'true'") == [red["id"]]
    assert await search("metadata['line']:'basics'") == [red["id"]]
    assert_error(
        await client.get("/v1/products/search", params={"query": "price:'5'"}), 400, "invalid_search_query", "query"
    )


async def _price(client: TenantClient, product_id: str, **body: object) -> dict:
    response = await client.post(
        "/v1/prices", json={"product": product_id, "currency": "usd", "unitAmount": 100, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_delete_with_unused_prices_removes_them_too(client: TenantClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    product = await create(client)
    prices = [await _price(client, product["id"]), await _price(client, product["id"], lookupKey="basic")]
    deleted = await client.delete(f"/v1/products/{product['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": product["id"], "deleted": True}
    assert_error(await client.get(f"/v1/products/{product['id']}"), 404, "resource_missing", "id")
    for price in prices:
        assert_error(await client.get(f"/v1/prices/{price['id']}"), 404, "resource_missing", "id")
    assert await counts(session_factory, client.tenant.organization_id) == (0, 0)
    assert_error(await client.delete(f"/v1/products/{product['id']}"), 404, "resource_missing", "id")


async def test_delete_is_refused_while_a_price_is_in_use(client: TenantClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    product = await create(client)
    price = await _price(client, product["id"])
    organization_id = client.tenant.organization_id
    async with session_factory() as session, session.begin():
        now = datetime.now(UTC)
        customer = Customer(
            id=new_id("customer"), organization_id=organization_id, balance=0, invoice_settings={}, metadata_={}
        )
        subscription = Subscription(
            id=new_id("subscription"),
            organization_id=organization_id,
            customer_id=customer.id,
            status=SubscriptionStatus.active,
            currency="usd",
            start_date=now,
            billing_cycle_anchor=now,
            current_period_start=now,
            current_period_end=now + timedelta(days=30),
        )
        session.add(customer)
        await session.flush()
        session.add(subscription)
        await session.flush()
        session.add(
            SubscriptionItem(
                id=new_id("subscription_item"),
                organization_id=organization_id,
                subscription_id=subscription.id,
                price_id=price["id"],
                quantity=1,
            )
        )
    error = assert_error(await client.delete(f"/v1/products/{product['id']}"), 400, "product_in_use", None)
    assert price["id"] in error["message"]
    assert (await client.get(f"/v1/products/{product['id']}")).status_code == 200
    assert (await client.get(f"/v1/prices/{price['id']}")).status_code == 200
    archived = await client.patch(f"/v1/products/{product['id']}", json={"active": False})
    assert archived.json()["active"] is False
