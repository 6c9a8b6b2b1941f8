"""/v1/stripe-account: connect the organization's own Stripe account.

PUT takes the Stripe secret key and the webhook endpoint's signing secret, checks the key
with one read-only Stripe call (a wrong or revoked key is refused now, not at the first
charge), encrypts both in the API and publishes only the ciphertexts. Neither is ever
returned: GET answers whether the account is connected, the key's mode and its last 4,
and the webhook URL to register in the Stripe dashboard.

PUT is idempotent by nature (the same body leaves the same state), so it takes no
Idempotency-Key: its encrypted payload differs on every request.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, delete, get, put
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import run_command
from billing.organizations import stripe_account
from billing.payments.stripe_gateway import verify_secret_key
from billing.secrets.encryption import Keyring
from contracts.payments import DisconnectStripeAccountCommand, StripeAccount, StripeAccountConnect
from contracts.settings import Settings


class StripeAccountController(Controller):
    path = "/v1/stripe-account"
    tags = ["stripe account"]

    @get("/", summary="Whether a Stripe account is connected (never its secrets)")
    async def retrieve(
        self, sessions: async_sessionmaker[AsyncSession], keyring: Keyring, caller: Caller
    ) -> dict[str, Any]:
        organization = await stripe_account.organization_with_secrets(sessions, caller.organization_id)
        view = stripe_account.account_view(organization, keyring)
        return {"id": organization.id, **view.model_dump(mode="json")}  # as PUT and DELETE answer it

    @put("/", summary="Connect a Stripe account: its secret key and webhook signing secret, stored encrypted")
    async def connect(
        self, data: StripeAccountConnect, caller: Caller, bus: CommandBus, keyring: Keyring, settings: Settings
    ) -> Response[StripeAccount]:
        await verify_secret_key(data.secretKey, settings.stripe_api_base)
        command = stripe_account.encrypt_credentials(data.secretKey, data.webhookSecret, keyring)
        return await run_command(bus, caller, command, None)

    @delete("/", summary="Disconnect the Stripe account (forget both secrets)", status_code=200)
    async def disconnect(
        self, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[StripeAccount]:
        return await run_command(bus, caller, DisconnectStripeAccountCommand(), idempotency_key)
