"""Organizations and their API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from billing.db.sessions import get_one, matched_rows, tenant_of
from billing.errors import ResourceMissing
from billing.ids import new_id
from billing.models import ApiKey, Organization
from billing.organizations.keys import NewKey, hash_secret, new_key

T = TypeVar("T")


async def own_column(session: AsyncSession, column: InstrumentedAttribute[T]) -> T:
    """One column of the tenant session's own organization: the tenant role is granted the
    organizations table column by column (never the Stripe secrets), so never the row."""
    value = await session.scalar(select(column).where(Organization.id == tenant_of(session)))
    assert value is not None  # the tenant's own organization exists, its columns are required
    return value


async def create_organization(
    session: AsyncSession, name: str, key_name: str = "Default key"
) -> tuple[Organization, NewKey]:
    """An organization and its first key (the CLI's bootstrap: no key exists yet to ask with)."""
    organization = Organization(id=new_id("organization"), name=name)
    session.add(organization)
    key = new_key()
    session.add(
        ApiKey(
            id=key.id, organization_id=organization.id, name=key_name, prefix=key.prefix, secret_hash=key.secret_hash
        )
    )
    await session.flush()
    return organization, key


async def require_organization(session: AsyncSession, organization_id: str) -> None:
    """ResourceMissing unless the organization exists. Reads its id only: in a tenant
    session the encrypted secrets' columns are out of reach."""
    if await session.scalar(select(Organization.id).where(Organization.id == organization_id)) is None:
        raise ResourceMissing("organization", organization_id)


async def get_organization(session: AsyncSession, organization_id: str) -> Organization:
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise ResourceMissing("organization", organization_id)
    return organization


async def issue_api_key(session: AsyncSession, key_id: str, name: str, secret_hash: str, prefix: str) -> ApiKey:
    key = ApiKey(id=key_id, organization_id=tenant_of(session), name=name, prefix=prefix, secret_hash=secret_hash)
    session.add(key)
    await session.flush()
    return key


def is_usable(key: ApiKey, at: datetime) -> bool:
    """Whether a key authenticates at this moment: not revoked, not past its expiry."""
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > at)


async def _active_key(session: AsyncSession, key_id: str) -> ApiKey:
    key = await get_one(session, ApiKey, ApiKey.id, key_id, for_update=True)
    if key is None or not is_usable(key, datetime.now(UTC)):
        raise ResourceMissing("api key", key_id)
    return key


async def revoke_api_key(session: AsyncSession, key_id: str) -> ApiKey:
    key = await _active_key(session, key_id)
    key.revoked_at = datetime.now(UTC)
    await session.flush()
    return key


async def record_api_key_use(session: AsyncSession, uses: dict[str, datetime]) -> int:
    """Move each key's `last_used_at` forward to when it was seen (never back: the reports
    of several API processes arrive in any order); how many keys moved. Keys of another
    organization are not visible to the tenant session and are left alone."""
    if not uses:
        return 0
    moved = await session.execute(
        update(ApiKey)
        .where(ApiKey.organization_id == tenant_of(session), ApiKey.id.in_(uses))
        .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < case(uses, value=ApiKey.id)))
        .values(last_used_at=case(uses, value=ApiKey.id))
        .execution_options(synchronize_session=False)
    )
    return matched_rows(moved)


async def roll_api_key(
    session: AsyncSession, old_key_id: str, key_id: str, secret_hash: str, prefix: str, expires_in_seconds: int
) -> ApiKey:
    """A new key with the old one's name; the old one stops working now or after a grace period."""
    old = await _active_key(session, old_key_id)
    if expires_in_seconds:
        # a grace period shortens the old key's life, never lengthens it
        grace_ends = datetime.now(UTC) + timedelta(seconds=expires_in_seconds)
        old.expires_at = grace_ends if old.expires_at is None else min(old.expires_at, grace_ends)
    else:
        old.revoked_at = datetime.now(UTC)
    return await issue_api_key(session, key_id, old.name, secret_hash, prefix)


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    tenant_of(session)
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id))).all())


async def authenticate(session: AsyncSession, secret: str) -> ApiKey | None:
    """The active key with this secret, across all organizations (this is how a request
    learns its organization)."""
    key = (await session.scalars(select(ApiKey).where(ApiKey.secret_hash == hash_secret(secret)))).one_or_none()
    return key if key is not None and is_usable(key, datetime.now(UTC)) else None
