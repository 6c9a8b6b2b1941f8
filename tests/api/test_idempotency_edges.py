"""Idempotency keys at their edges, and every write naming its command."""

from __future__ import annotations

import uuid

import pytest

from api.bus import Pending
from api.responses import command_response
from contracts.envelopes import command_id_for
from tests.api.conftest import TenantClient, assert_error, commands_applied


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_an_empty_or_overlong_key_is_refused(
    api_client: TenantClient,
    session_factory,
    key: str,  # type: ignore[no-untyped-def]
) -> None:
    before = await commands_applied(session_factory, api_client.tenant.organization_id)
    response = await api_client.post("/v1/customers", json={"name": "Keyed"}, headers={"Idempotency-Key": key})
    code = "parameter_invalid_string_too_long" if key else "parameter_invalid_string_empty"
    error = assert_error(response, 400, code, "Idempotency-Key")
    assert "Idempotency-Key" in error["message"]
    assert await commands_applied(session_factory, api_client.tenant.organization_id) == before


async def test_a_key_of_255_characters_replays(api_client: TenantClient) -> None:
    key = (uuid.uuid4().hex * 8)[:255]
    first = await api_client.post("/v1/customers", json={"name": "Long key"}, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    replay = await api_client.post("/v1/customers", json={"name": "Long key"}, headers={"Idempotency-Key": key})
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (
        replay.headers["Command-Id"]
        == first.headers["Command-Id"]
        == command_id_for(api_client.tenant.organization_id, key)
    )


async def test_every_write_names_its_command(api_client: TenantClient) -> None:
    created = await api_client.post("/v1/customers", json={"name": "Named"})
    assert created.status_code == 201
    command_id = created.headers["Command-Id"]
    status = (await api_client.get(f"/v1/commands/{command_id}")).json()
    assert (status["status"], status["result"]["id"]) == ("succeeded", created.json()["id"])

    updated = await api_client.patch(f"/v1/customers/{created.json()['id']}", json={"name": "Renamed"})
    assert updated.status_code == 200 and updated.headers["Command-Id"] not in ("", command_id)

    failed = await api_client.delete("/v1/customers/cus_neverexisted")  # applied, and failed
    assert_error(failed, 404, "resource_missing", "id")
    status = (await api_client.get(f"/v1/commands/{failed.headers['Command-Id']}")).json()
    assert status["status"] == "failed" and status["error"]["code"] == "resource_missing"


@pytest.mark.unit
def test_a_pending_answer_names_its_command() -> None:
    response = command_response(Pending("cmd_pending"))
    assert response.status_code == 202
    assert response.headers["Command-Id"] == "cmd_pending"
    assert response.headers["Location"] == "/v1/commands/cmd_pending"


async def test_a_command_id_never_issued_is_404(api_client: TenantClient, other_api_client: TenantClient) -> None:
    organization = api_client.tenant.organization_id
    for made_up in (
        "cmd_" + "0" * 32,
        "cmd_madeup",
        "anything",
        command_id_for(other_api_client.tenant.organization_id, "k"),
    ):
        assert_error(await api_client.get(f"/v1/commands/{made_up}"), 404, "resource_missing", "id")
    # issued to this organization (here: computed as the API would) and not applied yet: pending
    pending = await api_client.get(f"/v1/commands/{command_id_for(organization, f'not-sent-{uuid.uuid4()}')}")
    assert pending.status_code == 200 and pending.json()["status"] == "pending"
    # another organization's applied command is not this one's
    theirs = await other_api_client.post("/v1/customers", json={"name": "Theirs"})
    assert theirs.status_code == 201
    assert_error(await api_client.get(f"/v1/commands/{theirs.headers['Command-Id']}"), 404, "resource_missing", "id")
    assert (await other_api_client.get(f"/v1/commands/{theirs.headers['Command-Id']}")).json()["status"] == "succeeded"
