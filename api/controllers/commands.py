"""/v1/commands/{id}: the status of a write that answered 202."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from billing.delivery.outcomes import get_outcome
from billing.errors import ResourceMissing
from contracts.envelopes import command_id_issued


class CommandController(Controller):
    path = "/v1/commands"
    tags = ["commands"]

    @get("/{command_id:str}", summary="The status of a command: pending, succeeded (with its result) or failed")
    async def retrieve(self, command_id: str, db: AsyncSession, caller: Caller) -> dict[str, Any]:
        outcome = await get_outcome(db, command_id)
        if outcome is None:
            # applied commands are found above whoever made their id; one not applied yet
            # is pending only if this API could have issued it to this organization
            if not command_id_issued(caller.organization_id, command_id):
                raise ResourceMissing("command", command_id)
            return {"object": "command", "id": command_id, "status": "pending", "result": None, "error": None}
        error = {k: v for k, v in (outcome.error or {}).items() if k != "status"} or None
        return {
            "object": "command",
            "id": command_id,
            "status": outcome.status,
            "result": outcome.result,
            "error": error,
        }
