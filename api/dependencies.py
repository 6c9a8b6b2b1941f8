"""The typed dependencies handlers declare by name (`bus: CommandBus`, `settings:
Settings`, ...): parts of the lifespan's `Services`, the caller and its tenant session,
and the list parameters."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import KeyCache, provide_caller, provide_db
from api.bus import CommandBus
from api.controllers.analytics import AnalyticsStores
from api.params import provide_created_range, provide_page_request
from api.services import Clock, services_of
from billing.payments.stripe_gateway import StripeGatewayPool
from billing.secrets.encryption import Keyring
from contracts.settings import Settings
from producers.publisher import Publisher


def provide_bus(state: State) -> CommandBus:
    return services_of(state).bus


def provide_sessions(state: State) -> async_sessionmaker[AsyncSession]:
    """Sessions of the connecting role, for the few reads that are not one tenant's."""
    return services_of(state).sessions


def provide_gateways(state: State) -> StripeGatewayPool:
    return services_of(state).gateways


def provide_settings(state: State) -> Settings:
    return services_of(state).settings


def provide_clock(state: State) -> Clock:
    return services_of(state).clock


def provide_keyring(state: State) -> Keyring:
    return services_of(state).keyring


def provide_key_cache(state: State) -> KeyCache:
    return services_of(state).key_cache


def provide_publisher(state: State) -> Publisher:
    return services_of(state).publisher


def provide_analytics(state: State) -> AnalyticsStores:
    return services_of(state).analytics


DEPENDENCIES = {
    "caller": Provide(provide_caller),
    "db": Provide(provide_db),
    "page_request": Provide(provide_page_request),
    "created": Provide(provide_created_range),
    "bus": Provide(provide_bus, sync_to_thread=False),
    "sessions": Provide(provide_sessions, sync_to_thread=False),
    "gateways": Provide(provide_gateways, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "clock": Provide(provide_clock, sync_to_thread=False),
    "keyring": Provide(provide_keyring, sync_to_thread=False),
    "key_cache": Provide(provide_key_cache, sync_to_thread=False),
    "publisher": Provide(provide_publisher, sync_to_thread=False),
    "analytics": Provide(provide_analytics, sync_to_thread=False),
}
