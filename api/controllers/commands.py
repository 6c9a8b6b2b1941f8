"""/v1/commands/{id}: the status of a write that answered 202."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from sqlalchemy.ext.asyncio import AsyncSession

from billing.commands import get_outcome


class CommandController(Controller):
    path = "/v1/commands"
    tags = ["commands"]

    @get("/{command_id:str}", summary="The status of a command: pending, succeeded (with its result) or failed")
    async def retrieve(self, command_id: str, db: AsyncSession) -> dict[str, Any]:
        outcome = await get_outcome(db, command_id)
        if outcome is None:
            # not applied yet (or not this organization's): both read as pending
            return {"object": "command", "id": command_id, "status": "pending", "result": None, "error": None}
        error = {k: v for k, v in (outcome.error or {}).items() if k != "status"} or None
        return {"object": "command", "id": command_id, "status": outcome.status, "result": outcome.result, "error": error}
