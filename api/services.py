"""What the application's lifespan starts, in one typed object on `app.state.services`.

Handlers receive its parts as typed dependencies (api/dependencies.py); the middlewares,
which Litestar's dependency injection does not reach, read it with `services_of`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from litestar.datastructures import State

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from api.auth import KeyCache
    from api.bus import CommandBus
    from api.controllers.analytics import AnalyticsStores
    from api.key_use import KeyUseReporter
    from billing.payments.stripe_gateway import StripeGatewayPool
    from billing.secrets.encryption import Keyring
    from contracts.settings import Settings
    from producers.publisher import Publisher

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Services:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    publisher: Publisher
    bus: CommandBus
    key_cache: KeyCache
    key_use: KeyUseReporter
    keyring: Keyring
    gateways: StripeGatewayPool
    dashboard_signing_key: bytes
    clock: Clock
    analytics: AnalyticsStores


def services_of(state: State) -> Services:
    services = state.services
    if not isinstance(services, Services):  # the lifespan sets it before the first request
        raise RuntimeError("the application's services are not started")
    return services
