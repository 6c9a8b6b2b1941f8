"""ApiKey.lastUsedAt: written at most once a report interval per key, by the consumer, from
what the API process saw; requests never wait for it."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from billing.db.sessions import tenant_session
from billing.models import ApiKey, ProcessedCommand
from billing.organizations.service import record_api_key_use
from contracts.api_keys import RecordApiKeyUseCommand
from contracts.settings import get_settings
from tests.api.conftest import new_tenant, serve


async def last_used(session_factory: Any, organization_id: str, key_id: str) -> datetime | None:
    async with session_factory() as session:
        return await session.scalar(
            select(ApiKey.last_used_at).where(ApiKey.id == key_id, ApiKey.organization_id == organization_id)
        )


async def reports(session_factory: Any, organization_id: str) -> int:
    async with session_factory() as session:
        return await session.scalar(
            select(func.count())
            .select_from(ProcessedCommand)
            .where(
                ProcessedCommand.organization_id == organization_id,
                ProcessedCommand.type == RecordApiKeyUseCommand.command_type,
            )
        )


async def wait_for_use(session_factory: Any, organization_id: str, key_id: str, after: datetime | None) -> datetime:
    for _ in range(200):
        used = await last_used(session_factory, organization_id, key_id)
        if used is not None and (after is None or used > after):
            return used
        await asyncio.sleep(0.05)
    raise AssertionError(f"lastUsedAt of {key_id} did not move past {after}")


async def test_last_used_at_follows_the_key_a_report_at_a_time(command_consumer: None, session_factory: Any) -> None:
    tenant = await new_tenant(session_factory, "Key use")
    settings = dataclasses.replace(get_settings(), key_use_report_seconds=0.5)
    async with serve(settings) as client:
        assert await last_used(session_factory, tenant.organization_id, tenant.api_key_id) is None
        before = datetime.now(UTC)
        for _ in range(20):  # reads only: no command of their own
            assert (await client.get("/v1/customers", headers=tenant.headers)).status_code == 200
        first = await wait_for_use(session_factory, tenant.organization_id, tenant.api_key_id, None)
        assert before - timedelta(seconds=1) <= first <= datetime.now(UTC)
        # twenty requests, one report (per interval, not per request)
        assert await reports(session_factory, tenant.organization_id) == 1
        await asyncio.sleep(1.2)  # idle: nothing to report, nothing written
        assert await reports(session_factory, tenant.organization_id) == 1
        assert await last_used(session_factory, tenant.organization_id, tenant.api_key_id) == first
        assert (await client.get("/v1/customers", headers=tenant.headers)).status_code == 200
        second = await wait_for_use(session_factory, tenant.organization_id, tenant.api_key_id, first)
    assert second > first
    listed = await reports(session_factory, tenant.organization_id)
    assert listed == 2


async def test_last_used_at_never_moves_back_nor_across_tenants(session_factory: Any) -> None:
    mine = await new_tenant(session_factory, "Key use A")
    theirs = await new_tenant(session_factory, "Key use B")
    now = datetime.now(UTC).replace(microsecond=123_000)  # what timestamptz(3) keeps
    async with tenant_session(session_factory, mine.organization_id) as session, session.begin():
        assert await record_api_key_use(session, {mine.api_key_id: now}) == 1
        assert await record_api_key_use(session, {mine.api_key_id: now - timedelta(minutes=5)}) == 0  # an older report
        assert await record_api_key_use(session, {theirs.api_key_id: now}) == 0  # another organization's key
    assert await last_used(session_factory, mine.organization_id, mine.api_key_id) == now
    assert await last_used(session_factory, theirs.organization_id, theirs.api_key_id) is None
