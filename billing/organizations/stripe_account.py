"""An organization's own Stripe account: its secret key and webhook signing secret.

Both are stored encrypted (`billing.crypto`, Fernet under the key ring from
``BILLING_ENCRYPTION_KEYS`` or the development key file) in
``organizations.stripe_secret_key_encrypted`` and ``stripe_webhook_secret_encrypted``. The
API encrypts them (so the plaintexts never cross Kafka nor reach the consumers) and never
returns them: `account_view` shows whether they are set, the key's mode and its last 4.

Writes (`connect`, `disconnect`) take a tenant session and never commit, like every service.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.crypto import (
    Keyring,
    SecretDecryptionError,
    default_key_file,
    keyring_from_settings,
    load_keys,
    write_key_file,
)
from billing.db import tenant_of
from billing.errors import ResourceMissing
from billing.models import Organization
from contracts.payments import ConnectStripeAccountCommand, StripeAccount
from contracts.settings import Settings

CONNECT = "stripe_account.connect"
DISCONNECT = "stripe_account.disconnect"


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


def key_mode(secret_key: str) -> str:
    return "live" if "_live_" in secret_key[:8] else "test"


def webhook_url(organization_id: str) -> str:
    return f"/v1/webhooks/stripe/{organization_id}"


def encrypt_credentials(secret_key: str, webhook_secret: str, keyring: Keyring) -> ConnectStripeAccountCommand:
    """The connect command's payload: both secrets encrypted, plus what may be shown."""
    return ConnectStripeAccountCommand(
        secretKeyEncrypted=keyring.encrypt(secret_key),
        webhookSecretEncrypted=keyring.encrypt(webhook_secret),
        secretKeyLast4=secret_key[-4:],
        mode=key_mode(secret_key),  # type: ignore[arg-type]
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
        mode=key_mode(key),  # type: ignore[arg-type]
        secretKeyLast4=key[-4:],
        webhookSecretConfigured=bool(organization.stripe_webhook_secret_encrypted),
        webhookUrl=webhook_url(organization.id),
    )


def webhook_secret(organization: Organization, keyring: Keyring) -> str | None:
    """The decrypted webhook signing secret, or None when none is stored."""
    if not organization.stripe_webhook_secret_encrypted:
        return None
    return keyring.decrypt(organization.stripe_webhook_secret_encrypted)


async def _own_organization(session: AsyncSession) -> Organization:
    organization_id = tenant_of(session)
    organization = await session.get(Organization, organization_id, with_for_update=True)
    if organization is None:
        raise ResourceMissing("organization", organization_id)
    return organization


async def connect(session: AsyncSession, command: ConnectStripeAccountCommand) -> Organization:
    """Store the (already encrypted) secrets; a new key replaces the old one."""
    organization = await _own_organization(session)
    organization.stripe_secret_key_encrypted = command.secretKeyEncrypted
    organization.stripe_webhook_secret_encrypted = command.webhookSecretEncrypted
    await session.flush()
    return organization


async def disconnect(session: AsyncSession) -> Organization:
    organization = await _own_organization(session)
    organization.stripe_secret_key_encrypted = None
    organization.stripe_webhook_secret_encrypted = None
    await session.flush()
    return organization


__all__ = [
    "CONNECT",
    "DISCONNECT",
    "account_view",
    "connect",
    "disconnect",
    "encrypt_credentials",
    "ensure_keyring",
    "key_mode",
    "view_of_command",
    "webhook_secret",
    "webhook_url",
]
