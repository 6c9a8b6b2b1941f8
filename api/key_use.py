"""`ApiKey.lastUsedAt`, kept off the request path.

Authenticating a request only notes, in memory, when the key was seen. Every
`report_seconds` (a minute by default) the API process publishes one
``api_key.record_use`` command per organization whose keys it saw; the command consumer
moves `last_used_at` forward (billing.organizations.service.record_api_key_use). So a key
costs at most one write a minute per API process, however busy it is, and no request
waits for it. When Kafka or Postgres is away the uses are kept for the next report (the
newest time per key wins); a process that stops reports what it saw before it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime

from api.bus import CommandBus
from contracts.api_keys import MAX_USES, ApiKeyUse, RecordApiKeyUseCommand
from contracts.envelopes import Actor

ACTOR = Actor(type="system", id="api-key-use")
log = logging.getLogger(__name__)


class KeyUseReporter:
    def __init__(self, bus: CommandBus, report_seconds: float) -> None:
        self._bus = bus
        self._report_seconds = report_seconds
        self._seen: dict[str, dict[str, datetime]] = {}  # organization -> key -> when last seen
        self._process = uuid.uuid4().hex[:12]  # with a counter, each report's idempotency key
        self._reports = 0

    def saw(self, organization_id: str, api_key_id: str) -> None:
        self._seen.setdefault(organization_id, {})[api_key_id] = datetime.now(UTC)

    async def report(self) -> int:
        """Publish what was seen since the last report; how many commands went out."""
        seen, self._seen = self._seen, {}
        published = 0
        for organization_id, uses in seen.items():
            items = list(uses.items())
            for start in range(0, len(items), MAX_USES):
                chunk = items[start : start + MAX_USES]
                self._reports += 1
                command = RecordApiKeyUseCommand(uses=[ApiKeyUse(id=key_id, usedAt=at) for key_id, at in chunk])
                try:
                    await self._bus.submit(
                        organization_id, ACTOR, command, f"api-key-use:{self._process}:{self._reports}"
                    )
                    published += 1
                except Exception as error:  # Kafka or Postgres away (or anything): kept for the next report
                    log.warning("key use not reported yet (%s); kept for the next report", type(error).__name__)
                    kept = self._seen.setdefault(organization_id, {})
                    for key_id, at in chunk:
                        kept[key_id] = max(at, kept.get(key_id, at))
        return published

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._report_seconds)
            await self.report()


__all__ = ["KeyUseReporter"]
