"""`/health`: whether this API process can reach what a write needs, by name, so an
operator (or a load balancer) sees which dependency is down."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from sqlalchemy import text

from api.services import services_of

# a dependency that does not answer within this long counts as down
CHECK_TIMEOUT_SECONDS = 1.0


async def _postgres_up(state: State) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with services_of(state).sessions() as session:
                await session.execute(text("SELECT 1"))
    except Exception:  # any failure to answer is "down"
        return False
    return True


async def _kafka_up(state: State) -> bool:
    try:
        return await services_of(state).publisher.broker.ping(timeout=CHECK_TIMEOUT_SECONDS)
    except Exception:
        return False


@get("/health", summary="Health of the API and its dependencies", include_in_schema=False, exclude_from_auth=True)
async def health(state: State) -> Response[dict[str, Any]]:
    postgres, kafka = await asyncio.gather(_postgres_up(state), _kafka_up(state))
    body = {
        "status": "ok" if postgres and kafka else "degraded",
        "postgres": "up" if postgres else "down",
        "kafka": "up" if kafka else "down",
    }
    if postgres and kafka:
        return Response(body)
    return Response(body, status_code=503, headers={"Retry-After": "1"})
