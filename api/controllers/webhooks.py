"""POST /v1/webhooks/stripe/{organizationId}: Stripe's events for one organization.

Register this URL in the organization's Stripe dashboard (Developers -> Webhooks) and give
its signing secret to PUT /v1/stripe-account; until then, and for an organization id that does
not exist, the answer is the same 400 ``webhook_not_configured``. No API key: the ``Stripe-Signature`` header
is the proof, checked against the organization's webhook secret over the RAW body
(`billing.payments.webhooks.construct_event`); a timestamp more than 5 minutes off is
refused. A bad signature is answered 400 and nothing is published.

A verified event is turned into a command (`stripe_event_to_command`) whose commandId is
derived from Stripe's event id: Stripe delivers at least once and resends, and a resent
event is applied once (the consumer dedupes on the commandId; one already applied is
answered here without publishing again). The answer is 200 as soon as Kafka has the
command; the consumer applies it moments later. Event types we do not act on are answered
200 and dropped. Kafka unreachable: 503, and Stripe retries later.
"""

from __future__ import annotations

import contextlib
from typing import Any

from litestar import Controller, Request, post
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import PUBLIC
from api.bus import CommandBus
from billing.errors import InvalidRequest
from billing.models import Organization
from billing.organizations.stripe_account import webhook_secret
from billing.payments.webhooks import SIGNATURE_HEADER, construct_event, stripe_event_to_command
from billing.secrets.encryption import Keyring, SecretDecryptionError
from contracts.envelopes import Actor


def event_idempotency_key(event_id: str) -> str:
    """The idempotency key (hence the commandId) of a Stripe event's command."""
    return f"stripe-event:{event_id}"


class StripeWebhookController(Controller):
    path = "/v1/webhooks/stripe"
    tags = ["webhooks"]
    opt = {PUBLIC: True}  # no API key: the Stripe signature is the credential

    @post(
        "/{organization_id:str}",
        summary="Receive a Stripe event (signed with the organization's webhook secret)",
        status_code=200,
    )
    async def receive(
        self,
        organization_id: str,
        request: Request[Any, Any, Any],
        sessions: async_sessionmaker[AsyncSession],
        keyring: Keyring,
        bus: CommandBus,
    ) -> dict[str, Any]:
        body = await request.body()  # the raw bytes: the signature covers them exactly
        # (an id that is not an organization id's shape was answered 404 by api.input_rules)
        async with sessions() as session:
            organization = await session.get(Organization, organization_id)
        secret = None
        if organization is not None:
            with contextlib.suppress(SecretDecryptionError):
                secret = webhook_secret(organization, keyring)
        if organization is None or not secret:
            # the same answer for an organization that does not exist: this URL is public,
            # it must not tell which organization ids are real
            raise InvalidRequest(
                "No usable Stripe webhook signing secret is set for this URL; the organization sets it with "
                "PUT /v1/stripe-account.",
                code="webhook_not_configured",
            )
        event = construct_event(body, request.headers.get(SIGNATURE_HEADER), secret)
        event_id = str(event["id"])
        command = stripe_event_to_command(event)
        if command is None:
            return {"received": True, "eventId": event_id, "action": "ignored"}
        actor = Actor(type="stripe_webhook", id=event_id[:255])
        # a 503 when Kafka is away: Stripe retries later
        command_id, earlier = await bus.submit(organization.id, actor, command, event_idempotency_key(event_id))
        action = "duplicate" if earlier is not None else "queued"
        return {"received": True, "eventId": event_id, "action": action, "commandId": command_id}
