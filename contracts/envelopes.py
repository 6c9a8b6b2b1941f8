"""The messages on Kafka: a command envelope on `billing.commands` and an event envelope
on `billing.events`. Other systems may publish commands; the JSON Schema and AsyncAPI
exported by `billing contracts export` describe them."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["api_key", "system", "portal", "stripe_webhook", "cli"]
    id: str = Field(max_length=255)


class CommandEnvelope(BaseModel):
    """A request to change state. Keyed on Kafka by organizationId: one tenant's commands
    are applied in order."""

    model_config = ConfigDict(extra="forbid")

    schemaVersion: Literal[1] = SCHEMA_VERSION
    commandId: str = Field(min_length=1, max_length=255, description="The dedupe key: applying it twice has one effect")
    type: str = Field(min_length=1, max_length=100, description="e.g. customer.create")
    organizationId: str = Field(min_length=1, max_length=64)
    actor: Actor
    issuedAt: datetime
    idempotencyKey: str | None = Field(default=None, max_length=255)
    payload: dict[str, Any]

    def request_hash(self) -> str:
        return request_hash(self.type, self.payload)


class EventEnvelope(BaseModel):
    """A fact: a command's outcome (`command.succeeded` / `command.failed`, carrying the
    commandId the API waits on) or a domain event such as `customer.created`."""

    model_config = ConfigDict(extra="forbid")

    schemaVersion: Literal[1] = SCHEMA_VERSION
    eventId: str
    type: str
    organizationId: str
    occurredAt: datetime
    commandId: str | None = None
    data: dict[str, Any]


class CommandOutcome(BaseModel):
    """The data of a `command.succeeded` / `command.failed` event."""

    commandId: str
    commandType: str
    status: Literal["succeeded", "failed"]
    requestHash: str
    resourceType: str | None = None
    resourceId: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def request_hash(command_type: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"type": command_type, "payload": payload}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def command_id_for(organization_id: str, idempotency_key: str | None) -> str:
    """The client's Idempotency-Key scoped to its organization (two tenants may pick the
    same key), or a fresh id; either way followed by the check `command_id_issued` reads."""
    if idempotency_key is None:
        body = secrets.token_hex(12)
    else:
        body = hashlib.sha256(f"{organization_id}\x00{idempotency_key}".encode()).hexdigest()[:24]
    return f"cmd_{body}{_command_check(organization_id, body)}"


def _command_check(organization_id: str, body: str) -> str:
    return hashlib.sha256(f"command\x00{organization_id}\x00{body}".encode()).hexdigest()[:8]


def command_id_issued(organization_id: str, command_id: str) -> bool:
    """Whether `command_id_for` could have made `command_id` for this organization: a
    made-up id, or another organization's, fails (but for one in 2**32), so the API can
    answer "no such command" for an id nobody was given without a lookup. Not a secret:
    whoever forges one only reads their own organization's "pending"."""
    if len(command_id) != 36 or not command_id.startswith("cmd_"):
        return False
    body, check = command_id[4:28], command_id[28:]
    return secrets.compare_digest(check, _command_check(organization_id, body))


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(16)


def utcnow() -> datetime:
    return datetime.now(UTC)
