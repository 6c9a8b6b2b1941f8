"""Exchange rates through the real API, Kafka and Postgres: global reference data that
only the operator's organizations (BILLING_FX_WRITER_ORGANIZATIONS) write; everyone reads."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from billing.fx.service import FX_WRITERS_ENV
from billing.models import ExchangeRate
from tests.api.conftest import TenantClient, assert_error


@pytest.fixture
def source() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def operator(api_client: TenantClient, monkeypatch: pytest.MonkeyPatch) -> TenantClient:
    monkeypatch.setenv(FX_WRITERS_ENV, f"org_someone_else,{api_client.tenant.organization_id}")
    return api_client


async def rate_count(session_factory, source: str) -> int:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        return await session.scalar(select(func.count()).select_from(ExchangeRate).where(ExchangeRate.source == source))


def body(source_: str, **changes: object) -> dict:
    return {
        "base": "EUR",
        "quote": "USD",
        "rate": "1.0842",
        "source": source_,
        "asOf": "2025-01-02T16:00:00Z",
        **changes,
    }


async def test_only_operator_organizations_write_rates(
    api_client: TenantClient,
    other_api_client: TenantClient,
    session_factory,
    source: str,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.delenv(FX_WRITERS_ENV, raising=False)
    assert_error(await api_client.post("/v1/exchange-rates", json=body(source)), 403, "permission_denied", None)
    monkeypatch.setenv(FX_WRITERS_ENV, api_client.tenant.organization_id)
    assert_error(await other_api_client.post("/v1/exchange-rates", json=body(source)), 403, "permission_denied", None)
    assert await rate_count(session_factory, source) == 0

    created = await api_client.post("/v1/exchange-rates", json=body(source))
    assert created.status_code == 201, created.text
    rate = created.json()
    assert (rate["base"], rate["quote"], rate["rate"], rate["source"]) == ("eur", "usd", "1.0842", source)
    assert rate["asOf"].startswith("2025-01-02T16:00:00")
    shifted = await api_client.post("/v1/exchange-rates", json=body(source, asOf="2025-01-02T17:00:00+01:00"))
    assert shifted.json() == rate  # the same instant: the same rate, written in UTC

    # every organization reads them
    listed = (await other_api_client.get("/v1/exchange-rates", params={"source": source})).json()
    assert listed["object"] == "list" and [r["id"] for r in listed["data"]] == [rate["id"]]
    assert listed["data"][0]["rate"] == "1.0842"


async def test_rates_are_history(operator: TenantClient, session_factory, source: str) -> None:  # type: ignore[no-untyped-def]
    first = (await operator.post("/v1/exchange-rates", json=body(source))).json()
    again = await operator.post("/v1/exchange-rates", json=body(source))
    assert again.status_code == 201 and again.json()["id"] == first["id"]  # the same rate: answered, not duplicated
    assert_error(
        await operator.post("/v1/exchange-rates", json=body(source, rate="1.09")), 409, "exchange_rate_exists", "rate"
    )
    later = await operator.post("/v1/exchange-rates", json=body(source, rate="1.09", asOf="2025-01-03T16:00:00Z"))
    assert later.status_code == 201
    await operator.post("/v1/exchange-rates", json=body(source, quote="jpy", rate="162.5"))
    assert await rate_count(session_factory, source) == 3

    async def listed(**params: object) -> list[tuple[str, str, str]]:
        response = await operator.get("/v1/exchange-rates", params={"source": source, **params})
        assert response.status_code == 200, response.text
        return [(r["quote"], r["rate"], r["asOf"][:10]) for r in response.json()["data"]]

    assert await listed() == [
        ("jpy", "162.5", "2025-01-02"),
        ("usd", "1.09", "2025-01-03"),
        ("usd", "1.0842", "2025-01-02"),
    ]
    assert await listed(quote="USD") == [("usd", "1.09", "2025-01-03"), ("usd", "1.0842", "2025-01-02")]
    assert await listed(base="eur", limit=1) == [("jpy", "162.5", "2025-01-02")]
    assert_error(await operator.get("/v1/exchange-rates", params={"base": "eux"}), 400, "invalid_currency", "base")


@pytest.mark.parametrize(
    ("changes", "code", "param"),
    [
        ({"rate": 1.0842}, "parameter_invalid", "rate"),
        ({"rate": "1,08"}, "parameter_invalid", "rate"),
        ({"rate": "0"}, "parameter_invalid", "rate"),
        ({"rate": "-1.2"}, "parameter_invalid", "rate"),
        ({"rate": "1.0000000000001"}, "parameter_invalid", "rate"),
        ({"base": "EUX"}, "invalid_currency", "base"),
        ({"quote": "eur"}, "parameter_invalid", "quote"),
        ({"asOf": "2025-01-02T16:00:00"}, "parameter_invalid", "asOf"),
        ({"source": ""}, "parameter_invalid_string_empty", "source"),
        ({"note": "x"}, "parameter_unknown", "note"),
    ],
)
async def test_bad_rates_are_400_and_write_nothing(
    operator: TenantClient,
    session_factory,
    source: str,
    changes: dict,
    code: str,
    param: str,  # type: ignore[no-untyped-def]
) -> None:
    assert_error(await operator.post("/v1/exchange-rates", json=body(source, **changes)), 400, code, param)
    assert await rate_count(session_factory, source) == 0
