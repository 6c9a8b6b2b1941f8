"""Organization commands: API keys and billing settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.organizations import billing_settings, service
from consumers.registry import Applied, CommandRouter
from contracts.api_keys import IssueApiKeyCommand, RecordApiKeyUseCommand, RevokeApiKeyCommand, RollApiKeyCommand
from contracts.billing_settings import BillingSettings, BillingSettingsUpdate
from contracts.events import API_KEY_CREATED, API_KEY_REVOKED, API_KEY_ROLLED, BILLING_SETTINGS_UPDATED, EventType
from contracts.resources import ApiKey

router = CommandRouter()


def _applied(key: object, event: EventType[ApiKey]) -> Applied[ApiKey]:
    resource = ApiKey.model_validate(key).model_dump(mode="json")
    return Applied("api_key", resource, [event.of(resource)])


@router.handles(IssueApiKeyCommand)
async def create(session: AsyncSession, command: IssueApiKeyCommand) -> Applied[ApiKey]:
    key = await service.issue_api_key(session, command.id, command.name, command.secretHash, command.prefix)
    return _applied(key, API_KEY_CREATED)


@router.handles(RollApiKeyCommand)
async def roll(session: AsyncSession, command: RollApiKeyCommand) -> Applied[ApiKey]:
    new = command.newKey
    key = await service.roll_api_key(
        session, command.oldKeyId, new.id, new.secretHash, new.prefix, command.expiresInSeconds
    )
    return _applied(key, API_KEY_ROLLED)


@router.handles(RevokeApiKeyCommand)
async def revoke(session: AsyncSession, command: RevokeApiKeyCommand) -> Applied[ApiKey]:
    return _applied(await service.revoke_api_key(session, command.id), API_KEY_REVOKED)


@router.handles(RecordApiKeyUseCommand)
async def record_use(session: AsyncSession, command: RecordApiKeyUseCommand) -> Applied[dict[str, Any]]:
    moved = await service.record_api_key_use(session, {use.id: use.usedAt for use in command.uses})
    return Applied("api_key_use", {"keysUpdated": moved})  # bookkeeping: no domain event


@router.handles(BillingSettingsUpdate)
async def update_billing_settings(session: AsyncSession, command: BillingSettingsUpdate) -> Applied[BillingSettings]:
    settings = (await billing_settings.update_billing_settings(session, command)).model_dump(mode="json")
    return Applied("billing_settings", settings, [BILLING_SETTINGS_UPDATED.of(settings)])
