"""API keys (create, list, roll, revoke), command status, 202 on timeout, OpenAPI."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest
from litestar import Litestar
from litestar.testing import RequestFactory

from api.auth import Caller, KeyCache, rate_limit_identity
from billing.organizations.keys import hash_secret
from consumers.app import run_command_consumer
from contracts.settings import get_settings
from producers.topics import ensure_topics
from tests.api.conftest import Tenant, TenantClient, assert_error, new_tenant, serve


async def test_key_lifecycle(api: httpx.AsyncClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    tenant = await new_tenant(session_factory, "Key owner")
    client = TenantClient(api, tenant)

    created = await client.post("/v1/api-keys", json={"name": "backend"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["secret"].startswith("sk_") and key["prefix"] == key["secret"][:11]
    assert "secretHash" not in key

    listed = (await client.get("/v1/api-keys")).json()["data"]
    assert {k["id"] for k in listed} == {tenant.api_key_id, key["id"]}
    assert all("secret" not in k and "secretHash" not in k for k in listed)

    as_new_key = TenantClient(api, Tenant(tenant.organization_id, key["id"], key["secret"]))
    assert (await as_new_key.get("/v1/customers")).status_code == 200

    rolled = await client.post(f"/v1/api-keys/{key['id']}/roll", json={})
    assert rolled.status_code == 201, rolled.text
    assert (await as_new_key.get("/v1/customers")).status_code == 401  # rolled with no grace: revoked now
    as_rolled = TenantClient(api, Tenant(tenant.organization_id, rolled.json()["id"], rolled.json()["secret"]))
    assert (await as_rolled.get("/v1/customers")).status_code == 200

    revoked = await client.delete(f"/v1/api-keys/{rolled.json()['id']}")
    assert revoked.status_code == 200 and revoked.json()["revokedAt"] is not None
    refused = await as_rolled.get("/v1/customers")
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"


async def test_rolling_with_a_grace_period_keeps_the_old_key_working(api: httpx.AsyncClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    tenant = await new_tenant(session_factory, "Grace")
    client = TenantClient(api, tenant)
    rolled = await client.post(f"/v1/api-keys/{tenant.api_key_id}/roll", json={"expiresInSeconds": 3600})
    assert rolled.status_code == 201
    assert (await client.get("/v1/customers")).status_code == 200
    old = next(k for k in (await client.get("/v1/api-keys")).json()["data"] if k["id"] == tenant.api_key_id)
    assert old["expiresAt"] is not None and old["revokedAt"] is None


async def test_another_organizations_key_cannot_be_revoked(
    api_client: TenantClient, other_api_client: TenantClient
) -> None:
    response = await other_api_client.delete(f"/v1/api-keys/{api_client.tenant.api_key_id}")
    assert_error(response, 404, "resource_missing", "id")
    keys = (await api_client.get("/v1/api-keys")).json()["data"]  # read from Postgres, not the auth cache
    assert [key["revokedAt"] for key in keys if key["id"] == api_client.tenant.api_key_id] == [None]


async def test_a_command_not_applied_in_time_answers_202_with_a_status_url(
    command_consumer: None,
    tenant: Tenant,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    # topics of their own that no consumer reads yet: the command waits in Kafka
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", get_settings().kafka_topic_prefix + "late.")
    await ensure_topics(timeout=20)
    impatient = dataclasses.replace(get_settings(), command_timeout_seconds=0.2)
    async with serve(impatient) as client:
        response = await client.post("/v1/customers", json={"name": "Later"}, headers=tenant.headers)
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "pending" and response.headers["location"] == body["statusUrl"]
        assert (await client.get(body["statusUrl"], headers=tenant.headers)).json()["status"] == "pending"

        stop, ready = asyncio.Event(), asyncio.Event()
        consumer = asyncio.create_task(run_command_consumer(stop, ready=ready))
        try:
            for _ in range(200):
                status = (await client.get(body["statusUrl"], headers=tenant.headers)).json()
                if status["status"] != "pending":
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await consumer
        assert status["status"] == "succeeded"
        customer = (await client.get(f"/v1/customers/{status['result']['id']}", headers=tenant.headers)).json()
        assert customer["name"] == "Later"


async def test_openapi_documents_every_endpoint(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/schema/openapi.json")).json()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert len(operations) >= 11
    assert all(op.get("summary") for op in operations)
    create = schema["paths"]["/v1/customers"]["post"]
    assert "requestBody" in create and "201" in create["responses"]
    assert (await api.get("/schema/swagger")).status_code == 200


async def test_too_many_requests_answer_429_in_the_error_shape(command_consumer: None, tenant: Tenant) -> None:
    strict = dataclasses.replace(get_settings(), rate_limit_per_second=3)
    async with serve(strict) as client:
        statuses = [(await client.get("/v1/customers", headers=tenant.headers)) for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    error = limited[0].json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit"
    assert "retry-after" in {k.lower() for k in limited[0].headers}


async def test_the_rate_limit_counts_per_key_id_not_per_header_text(command_consumer: None, tenant: Tenant) -> None:
    """Ten spellings of one key's header (each a fresh bucket if the header's text were
    the identity) still run into the limit of two a second."""
    strict = dataclasses.replace(get_settings(), rate_limit_per_second=2)
    spellings = [f"{scheme}{' ' * spaces}{tenant.secret}" for scheme in ("Bearer", "bearer") for spaces in range(1, 6)]
    async with serve(strict) as client:
        assert (await client.get("/v1/customers", headers=tenant.headers)).status_code == 200  # the key is now known
        statuses = [(await client.get("/v1/customers", headers={"Authorization": a})).status_code for a in spellings]
    assert 429 in statuses, statuses


@pytest.mark.unit
def test_the_rate_limit_bucket_is_the_key_id_or_the_address() -> None:
    """The limiter's identity, without the clock: every spelling of a known key's header is
    its id; a key this process has not authenticated, or none, is the client's address."""
    cache = KeyCache(seconds=60)
    cache.put(hash_secret("sk_test_known"), Caller("org_a", "key_a"), None)
    cache.put(hash_secret("sk_test_other"), Caller("org_b", "key_b"), None)
    requests = RequestFactory(app=Litestar())
    bucket_of = rate_limit_identity(cache)

    def identity(authorization: str | None) -> str:
        headers = {"Authorization": authorization} if authorization is not None else {}
        return bucket_of(requests.get("/v1/customers", headers=headers))

    spellings = ["Bearer sk_test_known", "bearer sk_test_known", "BEARER  sk_test_known", "Bearer sk_test_known  "]
    assert {identity(a) for a in spellings} == {"key:key_a"}
    assert identity("Bearer sk_test_other") == "key:key_b"
    address = identity(None)
    assert address.startswith("address:")
    assert {identity(a) for a in ("Bearer sk_test_madeup", "Basic abc", "Bearer ", "")} == {address}
