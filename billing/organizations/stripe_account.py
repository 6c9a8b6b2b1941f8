"""An organization's own Stripe account: its secret key and webhook signing secret.

Both are stored encrypted (`billing.secrets.encryption`, Fernet under the key ring from
``BILLING_ENCRYPTION_KEYS`` or the development key file) in
``organizations.stripe_secret_key_encrypted`` and ``stripe_webhook_secret_encrypted``. The
API encrypts them (so the plaintexts never cross Kafka nor reach the consumers) and never
returns them: `account_view` shows whether they are set, the key's mode and its last 4.

Writes (`connect`, `disconnect`) take a tenant session and never commit, like every service.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.db.sessions import matched_rows, tenant_of
from billing.errors import ResourceMissing
from billing.models import Organization
from billing.organizations.service import get_organization
from billing.secrets.encryption import (
    Keyring,
    SecretDecryptionError,
    default_key_file,
    keyring_from_settings,
    load_keys,
    write_key_file,
)
from contracts.payments import ConnectStripeAccountCommand, StripeAccount
from contracts.settings import Settings


def ensure_keyring(settings: Settings) -> Keyring:
    """The process's key ring. On the local stack (``BILLING_ENV=local``) with
    ``BILLING_ENCRYPTION_KEYS`` empty, the development key file under the data dir is
    created on first use (never overwritten), so a fresh checkout works; anywhere else the
    variable is required (`EncryptionKeyMissing`): a key file appearing by itself on a
    server would be a key nobody backs up or rotates."""
    if not settings.local:
        return Keyring(load_keys(settings))
    if not settings.secret_encryption_keys.strip():
        write_key_file(default_key_file(settings))
    return keyring_from_settings(settings)


def key_mode(secret_key: str) -> Literal["live", "test"]:
    return "live" if "_live_" in secret_key[:8] else "test"


def webhook_url(organization_id: str) -> str:
    return f"/v1/webhooks/stripe/{organization_id}"


def encrypt_credentials(secret_key: str, webhook_secret: str, keyring: Keyring) -> ConnectStripeAccountCommand:
    """The connect command's payload: both secrets encrypted, plus what may be shown."""
    return ConnectStripeAccountCommand(
        secretKeyEncrypted=keyring.encrypt(secret_key),
        webhookSecretEncrypted=keyring.encrypt(webhook_secret),
        secretKeyLast4=secret_key[-4:],
        mode=key_mode(secret_key),
    )


def view_of_command(organization_id: str, command: ConnectStripeAccountCommand | None) -> StripeAccount:
    if command is None:
        return StripeAccount(connected=False, webhookUrl=webhook_url(organization_id))
    return StripeAccount(
        connected=True,
        mode=command.mode,
        secretKeyLast4=command.secretKeyLast4,
        webhookSecretConfigured=True,
        webhookUrl=webhook_url(organization_id),
    )


def account_view(organization: Organization, keyring: Keyring) -> StripeAccount:
    """What GET /v1/stripe-account shows: never a secret."""
    if not organization.stripe_secret_key_encrypted:
        return StripeAccount(
            connected=False,
            webhookSecretConfigured=bool(organization.stripe_webhook_secret_encrypted),
            webhookUrl=webhook_url(organization.id),
        )
    try:
        key = keyring.decrypt(organization.stripe_secret_key_encrypted)
    except SecretDecryptionError:
        # stored under a key no longer configured: connected, but the key cannot be used
        return StripeAccount(
            connected=True,
            webhookSecretConfigured=bool(organization.stripe_webhook_secret_encrypted),
            webhookUrl=webhook_url(organization.id),
        )
    return StripeAccount(
        connected=True,
        mode=key_mode(key),
        secretKeyLast4=key[-4:],
        webhookSecretConfigured=bool(organization.stripe_webhook_secret_encrypted),
        webhookUrl=webhook_url(organization.id),
    )


def webhook_secret(organization: Organization, keyring: Keyring) -> str | None:
    """The decrypted webhook signing secret, or None when none is stored."""
    if not organization.stripe_webhook_secret_encrypted:
        return None
    return keyring.decrypt(organization.stripe_webhook_secret_encrypted)


async def organization_with_secrets(sessions: async_sessionmaker[AsyncSession], organization_id: str) -> Organization:
    """The organization's row with its encrypted secrets, for the id authentication gave.
    The tenant role may not read those columns (migration b41d7e9c2a63: no tenant query,
    careless or injected, can return them), so this reads in a session of its own that
    runs as the connecting role."""
    async with sessions() as session:
        return await get_organization(session, organization_id)


async def _store_secrets(session: AsyncSession, secret_key: str | None, webhook_secret: str | None) -> str:
    """Writes the tenant's own secrets without reading them back (the tenant role may
    update those columns, never select them); the organization's id."""
    organization_id = tenant_of(session)
    stored = await session.execute(
        update(Organization)
        .where(Organization.id == organization_id)
        .values(stripe_secret_key_encrypted=secret_key, stripe_webhook_secret_encrypted=webhook_secret)
        .execution_options(synchronize_session=False)
    )
    if matched_rows(stored) != 1:
        raise ResourceMissing("organization", organization_id)
    return organization_id


async def connect(session: AsyncSession, command: ConnectStripeAccountCommand) -> str:
    """Store the (already encrypted) secrets; a new key replaces the old one."""
    return await _store_secrets(session, command.secretKeyEncrypted, command.webhookSecretEncrypted)


async def disconnect(session: AsyncSession) -> str:
    return await _store_secrets(session, None, None)


__all__ = [
    "account_view",
    "connect",
    "disconnect",
    "encrypt_credentials",
    "ensure_keyring",
    "key_mode",
    "organization_with_secrets",
    "view_of_command",
    "webhook_secret",
    "webhook_url",
]
