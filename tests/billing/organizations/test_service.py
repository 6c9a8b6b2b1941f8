"""API keys: one rule for "usable" (not revoked, not expired), which rolling and revoking
obey too (real Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.db.sessions import tenant_session
from billing.errors import ResourceMissing
from billing.models import ApiKey
from billing.organizations.keys import new_key
from billing.organizations.service import authenticate, create_organization, is_usable, revoke_api_key, roll_api_key


@pytest.mark.unit
def test_a_key_is_usable_until_revoked_or_expired() -> None:
    now = datetime.now(UTC)
    assert is_usable(ApiKey(revoked_at=None, expires_at=None), now)
    assert is_usable(ApiKey(revoked_at=None, expires_at=now + timedelta(seconds=1)), now)
    assert not is_usable(ApiKey(revoked_at=None, expires_at=now), now)
    assert not is_usable(ApiKey(revoked_at=now, expires_at=None), now)


async def _organization_with_key(session_factory, expires_at: datetime | None):  # type: ignore[no-untyped-def]
    async with session_factory() as session, session.begin():
        organization, key = await create_organization(session, "Keys")
        (await session.get(ApiKey, key.id)).expires_at = expires_at
    return organization.id, key


async def test_an_expired_key_cannot_be_rolled_back_to_life(session_factory) -> None:  # type: ignore[no-untyped-def]
    organization_id, key = await _organization_with_key(session_factory, datetime.now(UTC) - timedelta(minutes=1))
    replacement = new_key()
    with pytest.raises(ResourceMissing):
        async with tenant_session(session_factory, organization_id) as session, session.begin():
            await roll_api_key(session, key.id, replacement.id, replacement.secret_hash, replacement.prefix, 3600)
    with pytest.raises(ResourceMissing):
        async with tenant_session(session_factory, organization_id) as session, session.begin():
            await revoke_api_key(session, key.id)
    async with session_factory() as session:
        assert await authenticate(session, key.secret) is None
        assert (await session.get(ApiKey, key.id)).expires_at < datetime.now(UTC)


async def test_a_grace_period_never_lengthens_a_key_life(session_factory) -> None:  # type: ignore[no-untyped-def]
    soon = datetime.now(UTC) + timedelta(minutes=5)
    soon = soon.replace(microsecond=soon.microsecond // 1000 * 1000)  # the column keeps milliseconds
    organization_id, key = await _organization_with_key(session_factory, soon)
    replacement = new_key()
    async with tenant_session(session_factory, organization_id) as session, session.begin():
        await roll_api_key(session, key.id, replacement.id, replacement.secret_hash, replacement.prefix, 7 * 86400)
    async with session_factory() as session:
        assert (await session.get(ApiKey, key.id)).expires_at == soon
        assert (await authenticate(session, key.secret)) is not None  # still usable until then
        assert (await authenticate(session, replacement.secret)).id == replacement.id
