"""The authentication cache: a checked key is trusted for a few seconds, never past its
own expiry, and forgotten at once when this process revokes or rolls a key."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from api.auth import Caller, KeyCache


def test_a_key_is_trusted_for_the_configured_seconds_only(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = KeyCache(seconds=2)
    caller = Caller("org_1", "key_1")
    cache.put("h", caller, None)
    assert cache.get("h") == caller
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 2.5)
    assert cache.get("h") is None


def test_a_key_expiring_sooner_is_trusted_until_its_expiry_only() -> None:
    cache = KeyCache(seconds=60)
    cache.put("soon", Caller("org_1", "key_1"), datetime.now(UTC) + timedelta(milliseconds=50))
    cache.put("gone", Caller("org_1", "key_2"), datetime.now(UTC) - timedelta(seconds=1))
    assert cache.get("soon") is not None
    assert cache.get("gone") is None
    time.sleep(0.1)
    assert cache.get("soon") is None


def test_clear_forgets_everything() -> None:
    cache = KeyCache(seconds=60)
    cache.put("h", Caller("org_1", "key_1"), None)
    cache.clear()
    assert cache.get("h") is None
