"""API key commands."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.organizations import service
from consumers.registry import Applied, CommandRouter
from contracts.api_keys import IssueApiKeyCommand, RecordApiKeyUseCommand, RevokeApiKeyCommand, RollApiKeyCommand
from contracts.resources import ApiKey

router = CommandRouter()


def _applied(key: object, event_type: str) -> Applied:
    resource = ApiKey.model_validate(key).model_dump(mode="json")
    return Applied("api_key", resource, [(event_type, resource)])


@router.command("api_key.create", IssueApiKeyCommand)
async def create(session: AsyncSession, payload: IssueApiKeyCommand) -> Applied:
    key = await service.issue_api_key(session, payload.id, payload.name, payload.secretHash, payload.prefix)
    return _applied(key, "api_key.created")


@router.command("api_key.roll", RollApiKeyCommand)
async def roll(session: AsyncSession, payload: RollApiKeyCommand) -> Applied:
    new = payload.newKey
    key = await service.roll_api_key(
        session, payload.oldKeyId, new.id, new.secretHash, new.prefix, payload.expiresInSeconds
    )
    return _applied(key, "api_key.rolled")


@router.command("api_key.revoke", RevokeApiKeyCommand)
async def revoke(session: AsyncSession, payload: RevokeApiKeyCommand) -> Applied:
    return _applied(await service.revoke_api_key(session, payload.id), "api_key.revoked")


@router.command("api_key.record_use", RecordApiKeyUseCommand)
async def record_use(session: AsyncSession, payload: RecordApiKeyUseCommand) -> Applied:
    moved = await service.record_api_key_use(session, {use.id: use.usedAt for use in payload.uses})
    return Applied("api_key_use", {"keysUpdated": moved})  # bookkeeping: no domain event
