"""The Litestar application: thin controllers over billing/ reads and the command bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, get
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from api.auth import provide_caller, provide_db, rate_limit_identity
from api.bus import CommandBus
from api.controllers.api_keys import ApiKeyController
from api.controllers.attributes import AttributeDefinitionController
from api.controllers.commands import CommandController
from api.controllers.customers import CustomerController
from api.controllers.exchange_rates import ExchangeRateController
from api.controllers.prices import PriceController
from api.controllers.products import ProductController
from api.errors import EXCEPTION_HANDLERS
from api.replies import ReplyListener
from billing.db import create_engine, create_session_factory
from contracts.settings import Settings, get_settings
from producers.publisher import create_broker

MAX_BODY_BYTES = 256 * 1024
CATALOG = [AttributeDefinitionController, ProductController, PriceController, ExchangeRateController]  # issue 4


@get("/health", summary="Liveness", include_in_schema=False, exclude_from_auth=True)
async def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        sessions = create_session_factory(engine)
        broker = create_broker(settings)
        await broker.start()
        replies = ReplyListener(settings)
        await replies.start()
        app.state.sessions = sessions
        app.state.bus = CommandBus(broker, replies, sessions, settings.command_timeout_seconds)
        try:
            yield
        finally:
            await replies.stop()
            await broker.stop()
            await engine.dispose()

    return Litestar(
        route_handlers=[health, CustomerController, ApiKeyController, CommandController, *CATALOG],  # CATALOG: issue 4
        dependencies={"caller": Provide(provide_caller), "db": Provide(provide_db)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        request_max_body_size=MAX_BODY_BYTES,
        middleware=[
            RateLimitConfig(
                rate_limit=("second", settings.rate_limit_per_second),
                identifier_for_request=rate_limit_identity,
                exclude=["/schema", "/health"],
            ).middleware
        ],
        openapi_config=OpenAPIConfig(
            title="Billing API",
            version="1.0.0",
            description="A self-hosted, Stripe-like billing API. Authenticate with `Authorization: Bearer sk_...`.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        debug=False,
    )
