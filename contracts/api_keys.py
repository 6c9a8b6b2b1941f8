"""API key requests. The secret is made by the API and shown once; commands carry only
its hash, so no secret ever crosses Kafka."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from contracts.commands import Command
from contracts.common import RequestModel
from contracts.resources import ApiKey


class ApiKeyCreate(RequestModel):
    name: str = Field(default="Secret key", min_length=1, max_length=200)


class ApiKeyRoll(RequestModel):
    expiresInSeconds: int = Field(
        default=0, ge=0, le=7 * 24 * 3600, description="How long the old key keeps working (0: revoked now)"
    )


class NewApiKey(RequestModel):
    id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    secretHash: str = Field(min_length=64, max_length=64)
    prefix: str = Field(max_length=32)


class IssueApiKeyCommand(NewApiKey, Command[ApiKey]):
    command_type: ClassVar[str] = "api_key.create"


class RollApiKeyCommand(Command[ApiKey]):
    command_type: ClassVar[str] = "api_key.roll"

    oldKeyId: str = Field(max_length=64)
    newKey: NewApiKey
    expiresInSeconds: int = Field(ge=0, le=7 * 24 * 3600)


class RevokeApiKeyCommand(Command[ApiKey]):
    command_type: ClassVar[str] = "api_key.revoke"

    id: str = Field(max_length=64)


MAX_USES = 1000  # keys per api_key.record_use command


class ApiKeyUse(RequestModel):
    id: str = Field(max_length=64)
    usedAt: datetime


class RecordApiKeyUseCommand(Command[dict[str, Any]]):
    command_type: ClassVar[str] = "api_key.record_use"

    """When an API process last saw each key authenticate (published once a minute, off the
    request path): `lastUsedAt` only ever moves forward."""

    uses: list[ApiKeyUse] = Field(min_length=1, max_length=MAX_USES)
