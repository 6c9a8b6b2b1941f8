"""/v1/meters through the command pipeline (API -> Kafka -> consumer -> Postgres)."""

from __future__ import annotations

import uuid

from tests.api.conftest import TenantClient, assert_error


def _name() -> str:
    return f"api_call_{uuid.uuid4().hex[:8]}"


async def test_create_retrieve_update_list(api_client: TenantClient) -> None:
    name = _name()
    created = await api_client.post(
        "/v1/meters",
        json={
            "displayName": "Tokens",
            "eventName": name,
            "aggregation": "max",
            "valueKey": "tokens",
            "filters": {"model": "large"},
        },
    )
    assert created.status_code == 201, created.text
    meter = created.json()
    assert meter["id"].startswith("mtr_")
    assert (meter["eventName"], meter["aggregation"], meter["valueKey"], meter["filters"], meter["active"]) == (
        name,
        "max",
        "tokens",
        {"model": "large"},
        True,
    )
    assert (await api_client.get(f"/v1/meters/{meter['id']}")).json() == meter

    renamed = await api_client.patch(f"/v1/meters/{meter['id']}", json={"displayName": "Tokens (max)", "active": False})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["displayName"], renamed.json()["active"], renamed.json()["eventName"]) == (
        "Tokens (max)",
        False,
        name,
    )

    default = await api_client.post("/v1/meters", json={"displayName": "Calls", "eventName": _name()})
    assert default.json()["aggregation"] == "sum" and default.json()["filters"] == {}

    listed = (await api_client.get("/v1/meters", params={"limit": 100})).json()
    assert listed["object"] == "list" and {meter["id"], default.json()["id"]} <= {m["id"] for m in listed["data"]}
    inactive = (await api_client.get("/v1/meters", params={"active": "false", "limit": 100})).json()["data"]
    assert meter["id"] in {m["id"] for m in inactive} and default.json()["id"] not in {m["id"] for m in inactive}


async def test_event_name_is_unique_per_organization(api_client: TenantClient, other_api_client: TenantClient) -> None:
    name = _name()
    first = await api_client.post("/v1/meters", json={"displayName": "A", "eventName": name})
    assert first.status_code == 201
    error = assert_error(
        await api_client.post("/v1/meters", json={"displayName": "B", "eventName": name}),
        400,
        "resource_already_exists",
        "eventName",
    )
    assert first.json()["id"] in error["message"]
    # another organization may use the same event name
    assert (await other_api_client.post("/v1/meters", json={"displayName": "B", "eventName": name})).status_code == 201


async def test_bad_meters_are_refused(api_client: TenantClient) -> None:
    cases = [
        ({"eventName": _name()}, "parameter_missing", "displayName"),
        ({"displayName": "x"}, "parameter_missing", "eventName"),
        ({"displayName": "x", "eventName": _name(), "aggregation": "avg"}, "parameter_invalid", "aggregation"),
        ({"displayName": "x", "eventName": "has space"}, "parameter_invalid_format", "eventName"),
        ({"displayName": "x", "eventName": "e" * 101}, "parameter_invalid_string_too_long", "eventName"),
        ({"displayName": "x", "eventName": _name(), "filters": {"k": 1}}, "parameter_invalid", "filters[k]"),
        (
            {"displayName": "x", "eventName": _name(), "filters": {f"k{i}": "v" for i in range(11)}},
            "parameter_invalid",
            "filters",
        ),
        ({"displayName": "x", "eventName": _name(), "unknown": 1}, "parameter_unknown", "unknown"),
    ]
    for body, code, param in cases:
        assert_error(await api_client.post("/v1/meters", json=body), 400, code, param)
    meter = (await api_client.post("/v1/meters", json={"displayName": "x", "eventName": _name()})).json()
    # what was measured cannot change: a different definition is a new meter
    assert_error(
        await api_client.patch(f"/v1/meters/{meter['id']}", json={"eventName": "other"}),
        400,
        "parameter_unknown",
        "eventName",
    )
    assert_error(
        await api_client.patch(f"/v1/meters/{meter['id']}", json={"displayName": None}),
        400,
        "parameter_invalid",
        "displayName",
    )


async def test_another_organizations_meter_does_not_exist(
    api_client: TenantClient, other_api_client: TenantClient
) -> None:
    meter = (await api_client.post("/v1/meters", json={"displayName": "x", "eventName": _name()})).json()
    assert_error(await other_api_client.get(f"/v1/meters/{meter['id']}"), 404, "resource_missing", "id")
    assert_error(
        await other_api_client.patch(f"/v1/meters/{meter['id']}", json={"active": False}), 404, "resource_missing", "id"
    )
    assert meter["id"] not in {
        m["id"] for m in (await other_api_client.get("/v1/meters", params={"limit": 100})).json()["data"]
    }
