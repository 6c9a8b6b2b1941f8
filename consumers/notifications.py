"""Notifications: `billing.events` -> events kept 30 days and their webhook deliveries
(billing/notifications/events.py), and the sender that makes those deliveries.

The recorder is a consumer group of its own on `billing.events`: a batch of events is
recorded with their deliveries in one transaction before its offsets are committed (a
repeat is a no-op; what is not an event is skipped with a warning), then the sender is
woken. The sender leases due deliveries
(billing/notifications/deliveries.py), POSTs each signed event with no transaction open,
at most `PER_ENDPOINT` at a time to one endpoint and `IN_FLIGHT` in all, so a slow or
dead endpoint holds only its own slots, and records each attempt. Retries are rows due
later, found by the next claim: nothing sleeps. Deliveries are not ordered: a retry may
arrive after a later event; receivers order by the event's `createdAt`.

Runs inside `billing consume` and `billing dev`."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing import clock
from billing.db.sessions import create_engine, create_session_factory
from billing.delivery.outbox import outbox_row
from billing.models import Outbox
from billing.notifications.addresses import UnsafeUrl, resolve_safe
from billing.notifications.deliveries import RESPONSE_BODY_KEPT, AttemptResult, DeliveryJob, claim_due, record_attempt
from billing.notifications.events import forget_old_events, record_events
from billing.notifications.signing import signed_headers
from billing.organizations.stripe_account import ensure_keyring
from billing.secrets.encryption import Keyring, SecretDecryptionError
from consumers.subscribers import events_of, events_subscriber, wait_for_assignment
from contracts.envelopes import EventEnvelope, new_event_id
from contracts.events import WEBHOOK_ENDPOINT_DISABLED
from contracts.resources import WebhookEndpoint as WebhookEndpointResource
from contracts.settings import Settings, get_settings
from producers.publisher import create_broker, start_broker
from producers.topics import BILLING_EVENTS

log = logging.getLogger(__name__)

NOTIFICATIONS_GROUP: Final = "billing-notifications"
PER_ENDPOINT: Final = 4
IN_FLIGHT: Final = 64
# deliveries held beyond those in flight, one round per endpoint queued behind its slots, so
# a freed slot starts the next request at once instead of after the next claim (a queued one
# waits at most one request's timeout: well inside its lease)
QUEUED_ROUNDS: Final = 2
RECORD_BATCH: Final = 500
REQUEST_TIMEOUT: Final = 15.0
SWEEP_EVERY: Final = timedelta(hours=1)
USER_AGENT: Final = "billing-platform-webhooks/1"


def pinned_request(url: str, address: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL with its host replaced by the checked `address`, the Host header, and the
    TLS server name: the request goes where the SSRF guard looked, and TLS still checks
    the certificate against the name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    headers = {"host": parts.netloc.rsplit("@", 1)[-1]}
    return urlunsplit(parts._replace(netloc=netloc)), headers, {"sni_hostname": host}


async def attempt_delivery(
    client: httpx.AsyncClient, job: DeliveryJob, keyring: Keyring, *, allow_private: bool
) -> AttemptResult:
    """One signed POST of the job's event; never raises for what the endpoint does."""
    attempted_at = clock.now()
    started = time.monotonic()

    def result(**outcome: Any) -> AttemptResult:
        return AttemptResult(attempted_at, int((time.monotonic() - started) * 1000), **outcome)

    try:
        address = await resolve_safe(job.url, allow_private=allow_private)
        url, headers, extensions = pinned_request(job.url, address)
        secrets = [keyring.decrypt(secret) for secret in job.secrets_encrypted]
        headers |= signed_headers(secrets, job.event_id, attempted_at, job.body)
        headers["user-agent"] = USER_AGENT
        async with client.stream(
            "POST", url, content=job.body, headers=headers, extensions=extensions, timeout=REQUEST_TIMEOUT
        ) as response:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= RESPONSE_BODY_KEPT:
                    break
        return result(
            response_status=response.status_code, response_body=body[:RESPONSE_BODY_KEPT].decode(errors="replace")
        )
    except UnsafeUrl as error:
        return result(error=str(error))
    except SecretDecryptionError:
        # a key taken out of BILLING_ENCRYPTION_KEYS too soon: a failed attempt like any other
        return result(error="the endpoint's signing secret cannot be decrypted with this deployment's keys")
    except httpx.TimeoutException:
        return result(error=f"no answer within {REQUEST_TIMEOUT:g} s")
    except httpx.HTTPError as error:
        return result(error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


class WebhookSender:
    """Leases due deliveries and makes them, bounded per endpoint and in all."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: Keyring,
        settings: Settings,
        client: httpx.AsyncClient,
    ) -> None:
        self.sessions = sessions
        self.keyring = keyring
        self.settings = settings
        self.client = client
        self.wake = asyncio.Event()
        self.sent: Counter[str] = Counter()
        self._held: Counter[str] = Counter()  # claimed and not yet recorded, by endpoint
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._requests = asyncio.Semaphore(IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_sweep = clock.now()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()  # before the claim: a wake-up during it (a slot freed) is kept for the next
            try:
                await self._claim_and_start()
                await self._sweep()
            except Exception:
                log.exception("a webhook claim failed; the next one tries again")
            waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waits, timeout=self.settings.webhook_poll_seconds, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=REQUEST_TIMEOUT + 5)

    async def _claim_and_start(self) -> None:
        free = IN_FLIGHT * QUEUED_ROUNDS - len(self._tasks)
        if free <= 0:
            return
        held_per_endpoint = PER_ENDPOINT * QUEUED_ROUNDS
        busy = [endpoint for endpoint, count in self._held.items() if count >= held_per_endpoint]
        async with self.sessions() as session, session.begin():
            jobs = await claim_due(session, clock.now(), free, held_per_endpoint, busy)
        for job in jobs:
            self._held[job.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: DeliveryJob) -> None:
        slot = self._slots.setdefault(job.endpoint_id, asyncio.Semaphore(PER_ENDPOINT))
        try:
            async with slot, self._requests:
                outcome = await attempt_delivery(self.client, job, self.keyring, allow_private=self.settings.local)
            async with self.sessions() as session, session.begin():
                disabled = await record_attempt(session, job, outcome, self.settings.webhook_time_scale)
                if disabled is not None:
                    resource = WebhookEndpointResource.model_validate(disabled).model_dump(mode="json")
                    envelope = EventEnvelope(
                        eventId=new_event_id(),
                        type=WEBHOOK_ENDPOINT_DISABLED.name,
                        organizationId=job.organization_id,
                        occurredAt=outcome.attempted_at,
                        data=resource,
                    )
                    session.add(Outbox(**outbox_row(envelope, BILLING_EVENTS)))
            self.sent["succeeded" if outcome.succeeded else "failed"] += 1
            if disabled is not None:
                log.warning("webhook endpoint %s disabled: every delivery failed", job.endpoint_id)
        except Exception:
            log.exception(
                "webhook delivery %s: recording the attempt failed; its lease runs out and it is due again",
                job.delivery_id,
            )
        finally:
            self._held[job.endpoint_id] -= 1
            if not self._held[job.endpoint_id]:
                del self._held[job.endpoint_id]
            self.wake.set()  # a slot is free

    async def _sweep(self) -> None:
        now = clock.now()
        if now < self._next_sweep:
            return
        async with self.sessions() as session, session.begin():
            forgotten = await forget_old_events(session, now)
        if forgotten:
            log.info("forgot %d events older than 30 days", forgotten)
        self._next_sweep = now + SWEEP_EVERY


def build_event_recorder(
    broker: KafkaBroker, sessions: async_sessionmaker[AsyncSession], sender: WebhookSender, settings: Settings
) -> Any:
    """Records events in batches (up to RECORD_BATCH in one transaction), so a backlog, such
    as a new deployment's first pass over the topic, is caught up in minutes, not hours."""
    subscriber = events_subscriber(broker, settings, NOTIFICATIONS_GROUP, RECORD_BATCH)

    @subscriber
    async def on_events(message: KafkaMessage) -> None:
        envelopes = events_of(message)
        async with sessions() as session, session.begin():
            made = await record_events(session, envelopes)
        if made:
            sender.wake.set()

    return subscriber


async def run_notifications(
    stop: asyncio.Event, settings: Settings | None = None, ready: asyncio.Event | None = None
) -> None:
    """Runs until `stop` is set: part of `billing consume` and `billing dev`."""
    settings = settings or get_settings()
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    broker = create_broker(settings)
    async with httpx.AsyncClient(follow_redirects=False) as client:
        sender = WebhookSender(sessions, ensure_keyring(settings), settings, client)
        subscriber = build_event_recorder(broker, sessions, sender, settings)
        if not await start_broker(broker, stop, "the notifications consumer"):
            await engine.dispose()
            return
        sending = asyncio.create_task(sender.run(stop))
        try:
            await wait_for_assignment(subscriber)
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            stop.set()
            await subscriber.stop()
            await sending
            await broker.stop()
            await engine.dispose()
