"""Webhook endpoint requests, the payloads of their commands, and the redelivery command.

The resources that come back are `contracts.resources.WebhookEndpoint`,
`WebhookDelivery` and `Event`, generated from Prisma. A new or rotated signing secret is
made by the API, crosses Kafka encrypted, and is shown once, in that response only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import AfterValidator, Field

from contracts.commands import Command
from contracts.common import Metadata, MetadataUpdate, RequestModel
from contracts.events import COMMAND_FAILED, COMMAND_SUCCEEDED, EVENT_TYPES
from contracts.resources import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint

ALL_EVENTS: Final = "*"
# a command's outcome is the API's own reply channel, not a fact an organization subscribes to
OUTCOME_EVENTS: Final = frozenset({COMMAND_SUCCEEDED.name, COMMAND_FAILED.name})
MAX_ROTATION_OVERLAP_HOURS: Final = 168


def subscribable_events() -> list[str]:
    """Every event type an endpoint may name, sorted."""
    return sorted(name for name in EVENT_TYPES if name not in OUTCOME_EVENTS)


def _known_events(names: list[str]) -> list[str]:
    known = set(subscribable_events())
    for index, name in enumerate(names):
        if name != ALL_EVENTS and name not in known:
            raise ValueError(f"enabledEvents[{index}]: {name!r} is not an event type (GET /v1/events lists them)")
    if ALL_EVENTS in names and len(names) > 1:
        raise ValueError('enabledEvents: "*" already names every event type; give it alone')
    if len(set(names)) != len(names):
        raise ValueError("enabledEvents names a type twice")
    return names


EnabledEvents = Annotated[
    list[Annotated[str, Field(max_length=100)]], Field(min_length=1, max_length=300), AfterValidator(_known_events)
]
Url = Annotated[
    str, Field(min_length=1, max_length=2048, description="http(s) URL; public addresses only outside the local stack")
]


class WebhookEndpointWithSecret(WebhookEndpoint):
    """An endpoint as the write that made its secret answers: the secret, in plain, that once."""

    secret: str = Field(description="whsec_...: verify deliveries with it (Standard Webhooks)")


class WebhookDeliveryDetails(WebhookDelivery):
    """A delivery with its attempts, oldest first."""

    attempts: list[WebhookDeliveryAttempt]


class WebhookEndpointCreate(RequestModel):
    url: Url
    enabledEvents: EnabledEvents = Field(description='Event types to deliver, or ["*"] for all')
    description: str | None = Field(default=None, max_length=5000)
    metadata: Metadata = Field(default_factory=dict)


class WebhookEndpointCreateCommand(Command[WebhookEndpoint]):
    """The secret arrives ENCRYPTED (by the API); the plaintext never crosses Kafka."""

    command_type: ClassVar[str] = "webhook_endpoint.create"

    id: str = Field(max_length=64)
    url: Url
    enabledEvents: EnabledEvents
    description: str | None = Field(default=None, max_length=5000)
    metadata: Metadata = Field(default_factory=dict)
    secretEncrypted: str = Field(min_length=1, max_length=4096)


class WebhookEndpointUpdate(RequestModel):
    """PATCH: a field left out is unchanged; null clears the description."""

    url: Url | None = None
    enabledEvents: EnabledEvents | None = None
    description: str | None = Field(default=None, max_length=5000)
    status: Literal["enabled", "disabled"] | None = None
    metadata: MetadataUpdate | None = None


class WebhookEndpointUpdateCommand(Command[WebhookEndpoint]):
    command_type: ClassVar[str] = "webhook_endpoint.update"

    id: str = Field(max_length=64)
    changes: dict[str, Any] = Field(
        description="Only the fields the client sent (WebhookEndpointUpdate, exclude_unset)"
    )


class WebhookEndpointDelete(Command[WebhookEndpoint]):
    command_type: ClassVar[str] = "webhook_endpoint.delete"

    id: str = Field(max_length=64)


class WebhookSecretRotate(RequestModel):
    expiresInHours: int = Field(
        default=24,
        ge=0,
        le=MAX_ROTATION_OVERLAP_HOURS,
        description="How long the old secret still signs, beside the new one (0: it stops at once)",
    )


class WebhookSecretRotateCommand(Command[WebhookEndpoint]):
    command_type: ClassVar[str] = "webhook_endpoint.rotate_secret"

    id: str = Field(max_length=64)
    secretEncrypted: str = Field(min_length=1, max_length=4096)
    previousExpiresAt: datetime


class WebhookDeliveryRedeliver(Command[WebhookDelivery]):
    """Makes a delivery pending again, due at once, with its retry schedule started over."""

    command_type: ClassVar[str] = "webhook_delivery.redeliver"

    id: str = Field(max_length=64)
