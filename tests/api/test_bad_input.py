"""Bad input gets Stripe's error shape with the exact param, and writes nothing."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from billing.models import Customer, ProcessedCommand
from tests.api.conftest import TenantClient, assert_error


async def customer_count(session_factory, organization_id: str) -> int:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        return await session.scalar(
            select(func.count()).select_from(Customer).where(Customer.organization_id == organization_id)
        )


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ('{"email": "jenny@example.com",', "invalid_json", None),
        ('{"name": 42}', "parameter_invalid", "name"),
        ('{"balance": "lots"}', "parameter_invalid_integer", "balance"),
        ('{"balance": 1.5}', "parameter_invalid_integer", "balance"),
        ('{"nickname": "x"}', "parameter_unknown", "nickname"),
        ('{"address": {"line1": "1 Main St", "zip": "x"}}', "parameter_unknown", "address[zip]"),
        ('{"name": "' + "x" * 257 + '"}', "parameter_invalid_string_too_long", "name"),
        ('{"email": "not-an-email"}', "email_invalid", "email"),
        ('{"address": {"country": "usa"}}', "parameter_invalid_format", "address[country]"),
        ('{"metadata": {"k": "' + "v" * 501 + '"}}', "parameter_invalid_string_too_long", "metadata"),
        ('{"invoicePrefix": "ab"}', "parameter_invalid_format", "invoicePrefix"),
        ("[1, 2]", "parameter_invalid", None),
    ],
)
async def test_create_rejects_bad_bodies_and_writes_nothing(
    api_client: TenantClient,
    session_factory,
    body: str,
    code: str,
    param: str | None,  # type: ignore[no-untyped-def]
) -> None:
    before = await customer_count(session_factory, api_client.tenant.organization_id)
    response = await api_client.post("/v1/customers", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, code, param)
    assert await customer_count(session_factory, api_client.tenant.organization_id) == before


async def test_an_oversized_body_is_refused(api_client: TenantClient) -> None:
    response = await api_client.post("/v1/customers", content=b'{"description": "' + b"x" * 300_000 + b'"}')
    assert_error(response, 413, "request_too_large", None)


async def test_update_rejects_unknown_and_bad_fields(api_client: TenantClient) -> None:
    customer = (await api_client.post("/v1/customers", json={"name": "Ada"})).json()
    assert_error(
        await api_client.patch(f"/v1/customers/{customer['id']}", json={"colour": "red"}),
        400,
        "parameter_unknown",
        "colour",
    )
    assert_error(
        await api_client.patch(f"/v1/customers/{customer['id']}", json={"balance": None}),
        400,
        "parameter_invalid_integer",
        "balance",
    )
    assert (await api_client.get(f"/v1/customers/{customer['id']}")).json()["name"] == "Ada"


async def test_a_default_payment_method_that_is_not_the_customers_is_refused(api_client: TenantClient) -> None:
    customer = (await api_client.post("/v1/customers", json={"name": "Ada"})).json()
    response = await api_client.patch(
        f"/v1/customers/{customer['id']}", json={"invoiceSettings": {"defaultPaymentMethod": "pm_nothere"}}
    )
    assert_error(response, 400, "resource_missing", "invoiceSettings[defaultPaymentMethod]")
    assert (await api_client.get(f"/v1/customers/{customer['id']}")).json()["invoiceSettings"] == {}


async def test_missing_ids_are_404(api_client: TenantClient) -> None:
    assert_error(await api_client.get("/v1/customers/cus_missing"), 404, "resource_missing", "id")
    assert_error(await api_client.delete("/v1/customers/cus_missing"), 404, "resource_missing", "id")
    assert_error(await api_client.get("/v1/nothing-here"), 404, "url_invalid", None)


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "api_key_missing"),
        ("Basic abc", "api_key_invalid"),
        ("Bearer sk_notarealkeyatall", "api_key_invalid"),
    ],
)
async def test_bad_keys_are_401(api, authorization: str | None, code: str) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": authorization} if authorization else {}
    response = await api.post("/v1/customers", json={"name": "x"}, headers=headers)
    error = assert_error(response, 401, code, None, type_="authentication_error")
    assert "sk_notarealkeyatall" not in error["message"]  # secrets are never echoed whole


async def test_idempotency_key_replays_and_refuses_other_parameters(api_client: TenantClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    key = f"idem-{uuid.uuid4()}"
    first = await api_client.post("/v1/customers", json={"name": "Once"}, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    replay = await api_client.post("/v1/customers", json={"name": "Once"}, headers={"Idempotency-Key": key})
    assert replay.status_code == 201 and replay.json()["id"] == first.json()["id"]

    before = await customer_count(session_factory, api_client.tenant.organization_id)
    other = await api_client.post("/v1/customers", json={"name": "Twice"}, headers={"Idempotency-Key": key})
    assert_error(other, 400, "idempotency_key_in_use", None, type_="idempotency_error")
    assert await customer_count(session_factory, api_client.tenant.organization_id) == before


async def test_the_same_idempotency_key_in_two_organizations_is_two_requests(
    api_client: TenantClient, other_api_client: TenantClient
) -> None:
    key = f"shared-{uuid.uuid4()}"
    mine = await api_client.post("/v1/customers", json={"name": "A"}, headers={"Idempotency-Key": key})
    theirs = await other_api_client.post("/v1/customers", json={"name": "B"}, headers={"Idempotency-Key": key})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["organizationId"] == other_api_client.tenant.organization_id


async def test_a_failed_command_is_recorded_with_its_error(api_client: TenantClient, session_factory) -> None:  # type: ignore[no-untyped-def]
    key = f"fail-{uuid.uuid4()}"
    response = await api_client.delete("/v1/customers/cus_gone", headers={"Idempotency-Key": key})
    assert_error(response, 404, "resource_missing", "id")
    async with session_factory() as session:
        recorded = (
            await session.scalars(select(ProcessedCommand).where(ProcessedCommand.idempotency_key == key))
        ).one()
    assert recorded.status.value == "failed"
    assert recorded.error["code"] == "resource_missing"
    status = (await api_client.get(f"/v1/commands/{recorded.command_id}")).json()
    assert status["status"] == "failed" and status["error"]["param"] == "id"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"created[gt]": "yesterday"}, "created[gt]"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"startingAfter": "x" * 65}, "startingAfter"),
    ],
)
async def test_bad_query_parameters_are_named_as_sent(api_client: TenantClient, params: dict, param: str) -> None:
    response = await api_client.get("/v1/customers", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"name": "bad\\u0000name"}', "name"),
        (b'{"name": "\\ud800"}', "name"),
        (b'{"name": "\xff\xfe"}', "name"),
        (b'{"name": "Ada", "metadata": {"foo": "a\\u0000b"}}', "metadata[foo]"),
        (b'{"metadata": {"k\\u0000": "v"}}', "metadata"),
    ],
)
async def test_text_postgres_cannot_store_is_refused_by_name(
    api_client: TenantClient,
    session_factory,
    body: bytes,
    param: str,  # type: ignore[no-untyped-def]
) -> None:
    before = await customer_count(session_factory, api_client.tenant.organization_id)
    response = await api_client.post("/v1/customers", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_characters", param)
    assert await customer_count(session_factory, api_client.tenant.organization_id) == before


async def test_deep_json_is_400(api_client: TenantClient) -> None:
    for body in (b"[" * 5000 + b"]" * 5000, b'{"metadata": ' * 33 + b"{}" + b"}" * 33):
        response = await api_client.post("/v1/customers", content=body, headers={"content-type": "application/json"})
        assert_error(response, 400, "invalid_json", None)
    nested = await api_client.post("/v1/customers", json={"address": {"line1": "1 Main St"}})
    assert nested.status_code == 201, nested.text


async def test_metadata_has_stripes_limits(api_client: TenantClient) -> None:
    too_many, key_too_long = {f"k{i}": "v" for i in range(51)}, {"k" * 41: "v"}
    for metadata, code in ((too_many, "parameter_invalid_string_too_long"), (key_too_long, "parameter_invalid")):
        response = await api_client.post("/v1/customers", json={"metadata": metadata})
        assert_error(response, 400, code, "metadata")
        assert "Value error" not in response.json()["error"]["message"]
    fits = {f"{i:02d}" + "k" * 38: "v" * 500 for i in range(50)}
    response = await api_client.post("/v1/customers", json={"metadata": fits})
    assert response.status_code == 201 and response.json()["metadata"] == fits


async def test_oversized_headers_are_431(api_client: TenantClient) -> None:
    response = await api_client.get("/v1/customers", headers={"X-Big": "a" * 9000})
    assert_error(response, 431, "request_header_too_large", "X-Big".lower())
    response = await api_client.get("/v1/customers", headers={f"X-Part-{i}": "a" * 4000 for i in range(5)})
    assert_error(response, 431, "request_header_too_large", None)


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "param"),
    [
        ("/v1/customers", {"startingAfter": "cus_a\x00b"}, 400, "invalid_characters", "startingAfter"),
        ("/v1/customers", {"endingBefore": "cus <x>"}, 400, "parameter_invalid", "endingBefore"),
        ("/v1/customers", {"startingAfter": "cus_doesnotexist"}, 404, "resource_missing", "startingAfter"),
        ("/v1/exchange-rates", {"startingAfter": "not-a-uuid"}, 400, "parameter_invalid", "startingAfter"),
        ("/v1/customers/search", {"query": "name:'a\x00'"}, 400, "invalid_characters", "query"),
        ("/v1/customers/search", {"query": "name:'Ada'", "page": "cus_'x'"}, 400, "parameter_invalid", "page"),
        ("/v1/products/search", {"query": "name:'Ada'", "page": "prod_a\x00"}, 400, "invalid_characters", "page"),
        ("/v1/customers/cus_a%00b", {}, 404, "resource_missing", "id"),
        ("/v1/customers/cus_a%FFb", {}, 404, "resource_missing", "id"),
        ("/v1/customers/prod_abc", {}, 404, "resource_missing", "id"),
        ("/v1/products/prod_a%20b", {}, 404, "resource_missing", "id"),
        ("/v1/customers/cus_x/payment-methods/cus_x", {}, 404, "resource_missing", "id"),
    ],
)
async def test_ids_and_cursors_are_checked_by_shape(
    api_client: TenantClient, path: str, params: dict[str, str], status: int, code: str, param: str
) -> None:
    assert_error(await api_client.get(path, params=params), status, code, param)


async def test_a_uuid_cursor_still_pages_exchange_rates(api_client: TenantClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    response = await api_client.get("/v1/exchange-rates", params={"startingAfter": missing})
    assert_error(response, 404, "resource_missing", "startingAfter")


async def test_fullwidth_digits_never_crash(api_client: TenantClient) -> None:
    assert_error(
        await api_client.post("/v1/customers", json={"balance": "１２３"}), 400, "parameter_invalid_integer", "balance"
    )
    response = await api_client.post("/v1/customers", json={"name": "Ａｄａ １２３４５６７８９０１２３"})
    assert response.status_code == 201, response.text


async def test_a_bad_path_id_names_its_resource_without_echoing_it(api_client: TenantClient) -> None:
    customer = (await api_client.post("/v1/customers", json={"name": "Ada"})).json()
    for bad in ("pm_a%00b", "pm_%FF"):
        error = assert_error(
            await api_client.get(f"/v1/customers/{customer['id']}/payment-methods/{bad}"), 404, "resource_missing", "id"
        )
        assert error["message"].startswith("No such payment method") and "\x00" not in error["message"]
