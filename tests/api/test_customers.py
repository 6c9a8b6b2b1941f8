"""Customers through the real API, Kafka and Postgres."""

from __future__ import annotations

import uuid

from tests.api.conftest import TenantClient


async def create(client: TenantClient, **body: object) -> dict:
    response = await client.post("/v1/customers", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_read_update_delete(api_client: TenantClient) -> None:
    created = await create(api_client, email="jenny@example.com", name="Jenny Rosen", metadata={"plan": "pro"})
    assert created["id"].startswith("cus_")
    assert created["organizationId"] == api_client.tenant.organization_id
    assert created["balance"] == 0 and created["deleted"] is False

    read = (await api_client.get(f"/v1/customers/{created['id']}")).json()
    assert read == created

    updated = await api_client.patch(
        f"/v1/customers/{created['id']}", json={"name": "Jenny R.", "metadata": {"tier": "1"}}
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["name"] == "Jenny R."
    assert body["email"] == "jenny@example.com"  # absent: unchanged
    assert body["metadata"] == {"plan": "pro", "tier": "1"}  # merged, as in Stripe

    cleared = (
        await api_client.patch(f"/v1/customers/{created['id']}", json={"email": None, "metadata": {"plan": None}})
    ).json()
    assert cleared["email"] is None  # null: cleared
    assert cleared["metadata"] == {"tier": "1"}

    deleted = await api_client.delete(f"/v1/customers/{created['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    again = (await api_client.get(f"/v1/customers/{created['id']}")).json()
    assert again["deleted"] is True and again["deletedAt"] is not None
    after = await api_client.patch(f"/v1/customers/{created['id']}", json={"name": "x"})
    assert after.status_code == 404 and after.json()["error"]["code"] == "resource_missing"


async def test_list_paginates_newest_first_with_cursors(api_client: TenantClient) -> None:
    marker = uuid.uuid4().hex[:8]
    ids = [
        (await create(api_client, email=f"{marker}-{i}@example.com", metadata={"batch": marker}))["id"]
        for i in range(5)
    ]
    query = f"metadata['batch']:'{marker}'"

    first = (await api_client.get("/v1/customers/search", params={"query": query, "limit": 2})).json()
    assert [c["id"] for c in first["data"]] == ids[::-1][:2]
    assert first["hasMore"] is True and first["nextPage"] == ids[3]

    listed = (await api_client.get("/v1/customers", params={"limit": 3})).json()
    assert listed["object"] == "list" and listed["url"] == "/v1/customers"
    assert [c["id"] for c in listed["data"]] == ids[::-1][:3]
    assert listed["hasMore"] is True

    after = (await api_client.get("/v1/customers", params={"limit": 2, "startingAfter": ids[2]})).json()
    assert [c["id"] for c in after["data"]] == [ids[1], ids[0]]

    before = (await api_client.get("/v1/customers", params={"limit": 2, "endingBefore": ids[1]})).json()
    assert [c["id"] for c in before["data"]] == [ids[3], ids[2]]
    assert before["hasMore"] is True


async def test_list_filters_by_email_and_created(api_client: TenantClient) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    customer = await create(api_client, email=email)
    by_email = (await api_client.get("/v1/customers", params={"email": email})).json()
    assert [c["id"] for c in by_email["data"]] == [customer["id"]]
    later = (
        await api_client.get("/v1/customers", params={"email": email, "created[gt]": customer["createdAt"]})
    ).json()
    assert later["data"] == []
    since = (
        await api_client.get("/v1/customers", params={"email": email, "created[gte]": customer["createdAt"]})
    ).json()
    assert [c["id"] for c in since["data"]] == [customer["id"]]


async def test_search_by_email_name_and_metadata(api_client: TenantClient) -> None:
    marker = uuid.uuid4().hex[:8]
    wanted = await create(
        api_client, email=f"ada-{marker}@example.com", name=f"Ada {marker}", metadata={"team": marker}
    )
    await create(api_client, email=f"bob-{marker}@example.com", name=f"Bob {marker}")

    async def search(query: str) -> list[str]:
        response = await api_client.get("/v1/customers/search", params={"query": query})
        assert response.status_code == 200, response.text
        assert response.json()["object"] == "search_result"
        return [c["id"] for c in response.json()["data"]]

    assert await search(f"email:'ADA-{marker}@example.com'") == [wanted["id"]]
    assert await search(f"name~'Ada {marker}'") == [wanted["id"]]
    assert await search(f"metadata['team']:'{marker}' AND name~'{marker}'") == [wanted["id"]]
    assert len(await search(f"name~'Ada {marker}' OR name~'Bob {marker}'")) == 2

    bad = await api_client.get("/v1/customers/search", params={"query": "nickname:'x'"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "query"


async def test_another_organizations_customer_does_not_exist(
    api_client: TenantClient, other_api_client: TenantClient
) -> None:
    mine = await create(api_client, email="mine@example.com")
    for response in (
        await other_api_client.get(f"/v1/customers/{mine['id']}"),
        await other_api_client.patch(f"/v1/customers/{mine['id']}", json={"name": "stolen"}),
        await other_api_client.delete(f"/v1/customers/{mine['id']}"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"] == {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": f"No such customer: '{mine['id']}'",
            "param": "id",
        }
    others = (await other_api_client.get("/v1/customers", params={"limit": 100})).json()
    assert mine["id"] not in {c["id"] for c in others["data"]}
    cursor = await other_api_client.get("/v1/customers", params={"startingAfter": mine["id"]})
    assert cursor.status_code == 404 and cursor.json()["error"]["param"] == "startingAfter"
    assert (await api_client.get(f"/v1/customers/{mine['id']}")).json()["name"] is None
