"""The authentication cache: a checked key is trusted for a few seconds, never past its
own expiry, and forgotten by every API process as soon as a key is revoked or rolled."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from api.auth import Caller, KeyCache
from contracts.settings import get_settings
from tests.api.conftest import new_tenant, serve


@pytest.mark.unit
def test_a_key_is_trusted_for_the_configured_seconds_only(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = KeyCache(seconds=2)
    caller = Caller("org_1", "key_1")
    cache.put("h", caller, None)
    assert cache.get("h") == caller
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 2.5)
    assert cache.get("h") is None


@pytest.mark.unit
def test_a_key_expiring_sooner_is_trusted_until_its_expiry_only() -> None:
    cache = KeyCache(seconds=60)
    cache.put("soon", Caller("org_1", "key_1"), datetime.now(UTC) + timedelta(milliseconds=50))
    cache.put("gone", Caller("org_1", "key_2"), datetime.now(UTC) - timedelta(seconds=1))
    assert cache.get("soon") is not None
    assert cache.get("gone") is None
    time.sleep(0.1)
    assert cache.get("soon") is None


@pytest.mark.unit
def test_clear_forgets_everything() -> None:
    cache = KeyCache(seconds=60)
    cache.put("h", Caller("org_1", "key_1"), None)
    cache.clear()
    assert cache.get("h") is None


async def test_a_key_revoked_through_one_api_process_stops_working_on_another(
    command_consumer, session_factory
) -> None:  # type: ignore[no-untyped-def]
    # both processes trust a checked key for a minute: only the revocation event can end it sooner
    patient = dataclasses.replace(get_settings(), auth_cache_seconds=60)
    tenant = await new_tenant(session_factory, "Two API processes")
    spare = await new_tenant(session_factory, "Two API processes, other org")
    async with serve(patient) as first, serve(patient) as second:
        created = await first.post("/v1/api-keys", json={"name": "short-lived"}, headers=tenant.headers)
        assert created.status_code == 201, created.text
        doomed = {"Authorization": f"Bearer {created.json()['secret']}"}
        assert (await second.get("/v1/customers", headers=doomed)).status_code == 200  # now in second's cache
        assert (await first.delete(f"/v1/api-keys/{created.json()['id']}", headers=tenant.headers)).status_code == 200
        async with asyncio.timeout(10):
            while (status := (await second.get("/v1/customers", headers=doomed)).status_code) == 200:
                await asyncio.sleep(0.05)
        assert status == 401
        # another organization's cached key is checked again, and still works
        assert (await second.get("/v1/customers", headers=spare.headers)).status_code == 200
