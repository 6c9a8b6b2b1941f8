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

from litestar import Controller, delete, get, put
from litestar.datastructures import State

from api.auth import Caller
from api.params import IdempotencyKey
from api.responses import run_command
from billing.organizations import stripe_account
from billing.payments.stripe_gateway import verify_secret_key
from contracts.payments import StripeAccount, StripeAccountConnect


class StripeAccountController(Controller):
    path = "/v1/stripe-account"
    tags = ["stripe account"]

    @get("/", summary="Whether a Stripe account is connected (never its secrets)")
    async def retrieve(self, state: State, caller: Caller) -> dict[str, Any]:
        organization = await stripe_account.organization_with_secrets(state.sessions, caller.organization_id)
        view = stripe_account.account_view(organization, state.keyring)
        return {"id": organization.id, **view.model_dump(mode="json")}  # as PUT and DELETE answer it

    @put("/", summary="Connect a Stripe account: its secret key and webhook signing secret, stored encrypted")
    async def connect(self, data: StripeAccountConnect, caller: Caller, state: State) -> StripeAccount:
        await verify_secret_key(data.secretKey, state.settings.stripe_api_base)
        payload = stripe_account.encrypt_credentials(data.secretKey, data.webhookSecret, state.keyring)
        return await run_command(state, caller, stripe_account.CONNECT, payload.model_dump(mode="json"), None)  # type: ignore[return-value]

    @delete("/", summary="Disconnect the Stripe account (forget both secrets)", status_code=200)
    async def disconnect(self, caller: Caller, state: State, idempotency_key: IdempotencyKey = None) -> Any:
        return await run_command(state, caller, stripe_account.DISCONNECT, {}, idempotency_key)
