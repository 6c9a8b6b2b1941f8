"""Product attribute definitions through the real API, Kafka and Postgres: define,
deprecate and remove them while products keep working."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from billing.models import ProductAttributeDefinition
from tests.api.conftest import TenantClient, assert_error, new_tenant


@pytest.fixture
async def client(api: httpx.AsyncClient, session_factory) -> TenantClient:  # type: ignore[no-untyped-def]
    """A fresh organization: definitions apply to all of an organization's products."""
    return TenantClient(api, await new_tenant(session_factory, "Attributes"))


async def definition_count(session_factory, organization_id: str) -> int:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        statement = select(func.count()).select_from(ProductAttributeDefinition)
        return await session.scalar(statement.where(ProductAttributeDefinition.organization_id == organization_id))


async def define(client: TenantClient, **body: object) -> dict:
    response = await client.post("/v1/product-attributes", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_define_read_list_update_and_remove(client: TenantClient, other_api_client: TenantClient) -> None:
    color = await define(client, key="color", label="Color", type="enum", enumValues=["red", "blue"], required=True)
    assert color["id"].startswith("attr_")
    assert color["organizationId"] == client.tenant.organization_id
    assert (color["deprecated"], color["deprecatedAt"], color["defaultValue"]) == (False, None, None)
    assert (await client.get(f"/v1/product-attributes/{color['id']}")).json() == color
    size = await define(client, key="size", label="Size", type="number", defaultValue=1)

    listed = (await client.get("/v1/product-attributes")).json()
    assert [d["id"] for d in listed["data"]] == [size["id"], color["id"]]
    assert listed["url"] == "/v1/product-attributes"

    updated = await client.patch(f"/v1/product-attributes/{color['id']}", json={"deprecated": True, "label": "Colour"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["deprecated"] is True and updated.json()["deprecatedAt"] is not None
    assert updated.json()["label"] == "Colour"
    only = (await client.get("/v1/product-attributes", params={"deprecated": "true"})).json()["data"]
    assert [d["id"] for d in only] == [color["id"]]

    # another organization does not see it
    assert_error(await other_api_client.get(f"/v1/product-attributes/{color['id']}"), 404, "resource_missing", "id")
    assert_error(await other_api_client.delete(f"/v1/product-attributes/{color['id']}"), 404, "resource_missing", "id")

    removed = await client.delete(f"/v1/product-attributes/{color['id']}")
    assert removed.status_code == 200 and removed.json() == {"id": color["id"], "key": "color", "deleted": True}
    assert_error(await client.get(f"/v1/product-attributes/{color['id']}"), 404, "resource_missing", "id")


async def test_products_keep_working_through_add_deprecate_remove(client: TenantClient) -> None:
    """The no-downtime path: a required attribute is added, deprecated and removed while
    products are created, read, filtered and updated."""
    old = (await client.post("/v1/products", json={"name": "Before"})).json()
    material = await define(client, key="material", label="Material", type="string", required=True)
    assert (await client.get(f"/v1/products/{old['id']}")).status_code == 200  # nothing rewritten
    assert (await client.patch(f"/v1/products/{old['id']}", json={"name": "Renamed"})).status_code == 200
    assert_error(
        await client.post("/v1/products", json={"name": "x"}), 400, "parameter_missing", "attributes[material]"
    )
    shirt = (await client.post("/v1/products", json={"name": "Shirt", "attributes": {"material": "linen"}})).json()
    assert shirt["attributes"] == {"material": "linen"}

    await client.patch(f"/v1/product-attributes/{material['id']}", json={"deprecated": True})
    plain = await client.post("/v1/products", json={"name": "Plain"})
    assert plain.status_code == 201, plain.text
    assert_error(
        await client.post("/v1/products", json={"name": "x", "attributes": {"material": "wool"}}),
        400,
        "attribute_deprecated",
        "attributes[material]",
    )
    found = (await client.get("/v1/products", params={"attributes[material]": "linen"})).json()["data"]
    assert [p["id"] for p in found] == [shirt["id"]]

    await client.delete(f"/v1/product-attributes/{material['id']}")
    assert (await client.get(f"/v1/products/{shirt['id']}")).json()["attributes"] == {"material": "linen"}
    found = (await client.get("/v1/products", params={"attributes[material]": "linen"})).json()["data"]
    assert [p["id"] for p in found] == [shirt["id"]]
    kept = await client.patch(f"/v1/products/{shirt['id']}", json={"description": "still linen"})
    assert kept.json()["attributes"] == {"material": "linen"}
    cleared = await client.patch(f"/v1/products/{shirt['id']}", json={"attributes": {"material": None}})
    assert cleared.status_code == 200 and cleared.json()["attributes"] == {}


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"key": "color", "label": "Color", "type": "enum"}, "parameter_missing", "enumValues"),
        (
            {"key": "color", "label": "Color", "type": "enum", "enumValues": ["a", "a"]},
            "parameter_invalid",
            "enumValues",
        ),
        ({"key": "color", "label": "Color", "type": "string", "enumValues": ["a"]}, "parameter_invalid", "enumValues"),
        (
            {"key": "color", "label": "Color", "type": "number", "defaultValue": "1"},
            "parameter_invalid",
            "defaultValue",
        ),
        ({"key": "Color!", "label": "Color", "type": "string"}, "parameter_invalid_format", "key"),
        ({"key": "color", "label": "Color", "type": "colour"}, "parameter_invalid", "type"),
        ({"key": "color", "type": "string"}, "parameter_missing", "label"),
        ({"key": "color", "label": "Color", "type": "string", "unique": True}, "parameter_unknown", "unique"),
    ],
)
async def test_bad_definitions_are_400_and_write_nothing(
    client: TenantClient,
    session_factory,
    body: dict,
    code: str,
    param: str,  # type: ignore[no-untyped-def]
) -> None:
    assert_error(await client.post("/v1/product-attributes", json=body), 400, code, param)
    assert await definition_count(session_factory, client.tenant.organization_id) == 0


async def test_a_key_is_defined_once_and_updates_are_checked(client: TenantClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    size = await define(client, key="size", label="Size", type="enum", enumValues=["s", "m"], defaultValue="m")
    assert_error(
        await client.post("/v1/product-attributes", json={"key": "size", "label": "Size", "type": "string"}),
        400,
        "attribute_key_in_use",
        "key",
    )
    assert await definition_count(session_factory, client.tenant.organization_id) == 1
    url = f"/v1/product-attributes/{size['id']}"
    assert_error(await client.patch(url, json={"enumValues": ["s", "l"]}), 400, "parameter_invalid", "enumValues")
    assert_error(await client.patch(url, json={"type": "string"}), 400, "parameter_unknown", "type")
    assert_error(await client.patch(url, json={"required": None}), 400, "parameter_invalid", "required")
    changed = await client.patch(url, json={"enumValues": ["s", "l"], "defaultValue": "l", "required": True})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["enumValues"], changed.json()["defaultValue"]) == (["s", "l"], "l")
    product = (await client.post("/v1/products", json={"name": "Defaulted"})).json()
    assert product["attributes"] == {"size": "l"}
    assert_error(
        await client.patch("/v1/product-attributes/attr_missing", json={"label": "x"}), 404, "resource_missing", "id"
    )
