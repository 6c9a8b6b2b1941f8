"""Tenant-scoped test clock reads for the API (the tenant session adds the filter)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.models import TestClock


async def get_test_clock(session: AsyncSession, test_clock_id: str) -> TestClock | None:
    return await get_one(session, TestClock, TestClock.id, test_clock_id)


async def list_test_clocks(session: AsyncSession, page: PageRequest) -> Page[TestClock]:
    tenant_of(session)
    return await paginate(session, select(TestClock), TestClock, page, "test_clock")
