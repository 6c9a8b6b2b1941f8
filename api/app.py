"""The Litestar application: thin controllers over billing/ reads and the command bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig

from api.auth import ApiKeyAuthentication, KeyCache, provide_caller, provide_db, rate_limit_identity
from api.bus import CommandBus
from api.card_guard import CardDataGuard  # payments (issue 5)
from api.controllers.analytics import AnalyticsController  # analytics API (issue 6)
from api.controllers.api_keys import ApiKeyController
from api.controllers.attributes import AttributeDefinitionController
from api.controllers.commands import CommandController
from api.controllers.customers import CustomerController
from api.controllers.exchange_rates import ExchangeRateController
from api.controllers.meters import MeterController  # analytics API (issue 6)
from api.controllers.payment_methods import (  # payments (issue 5)
    PaymentMethodController,
    on_gateway_error,
    quiet_gateway_logging,
)
from api.controllers.prices import PriceController
from api.controllers.products import ProductController
from api.controllers.setup_intents import SetupIntentController  # payments (issue 5)
from api.controllers.stripe_account import StripeAccountController  # payments (issue 5)
from api.controllers.usage_events import UsageEventController  # analytics API (issue 6)
from api.controllers.webhooks import StripeWebhookController  # payments (issue 5)
from api.dashboard import DASHBOARD  # analytics API (issue 6)
from api.dashboard.session import SIGNING_PURPOSE as DASHBOARD_SIGNING_PURPOSE
from api.docs import OfflineSwaggerRenderPlugin
from api.errors import EXCEPTION_HANDLERS
from api.health import health
from api.input_rules import InputRules
from api.key_use import KeyUseReporter
from api.openapi import openapi_config
from api.params import provide_created_range, provide_page_request
from api.replies import ReplyListener
from api.security_headers import PagePolicy, add_base_headers
from billing.db.sessions import create_engine, create_session_factory
from billing.organizations.stripe_account import ensure_keyring  # payments (issue 5)
from billing.payments.gateway import GatewayError  # payments (issue 5)
from billing.payments.stripe_gateway import StripeGatewayPool  # payments (issue 5)
from billing.secrets.redaction import install_log_redaction
from contracts.settings import Settings, get_settings, require_safe_settings
from producers.publisher import Publisher, create_broker

MAX_BODY_BYTES = 256 * 1024
CATALOG = [AttributeDefinitionController, ProductController, PriceController, ExchangeRateController]  # issue 4
PAYMENTS = [PaymentMethodController, SetupIntentController, StripeAccountController, StripeWebhookController]  # issue 5
ANALYTICS = [MeterController, UsageEventController, AnalyticsController, *DASHBOARD]  # issue 6


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        require_safe_settings(settings)  # before anything connects: no secret key over plain HTTP, no unkept keys
        install_log_redaction()  # no secret or card number in a log line, whoever writes it
        engine = create_engine(settings.database_url)
        sessions = create_session_factory(engine)
        broker = create_broker(settings)
        await broker.start()
        publisher = Publisher(broker)
        key_cache = KeyCache(settings.auth_cache_seconds)
        # a key revoked or rolled through another API process stops working here as soon as
        # its event arrives, not when the cache entry expires
        replies = ReplyListener(
            settings, on_events={"api_key.revoked": key_cache.clear, "api_key.rolled": key_cache.clear}
        )
        await replies.start()
        app.state.sessions = sessions
        app.state.key_cache = key_cache
        app.state.bus = CommandBus(publisher, replies, sessions, settings.command_timeout_seconds)
        app.state.key_use = KeyUseReporter(app.state.bus, settings.key_use_report_seconds)
        stop_reporting = asyncio.Event()
        reporting = asyncio.create_task(app.state.key_use.run(stop_reporting))
        # -- payments (issue 5): secrets key ring (dev key file made on first use), Stripe clients, broker for webhooks
        quiet_gateway_logging()
        app.state.settings = settings
        app.state.keyring = ensure_keyring(settings)
        app.state.dashboard_signing_key = app.state.keyring.derive_key(DASHBOARD_SIGNING_PURPOSE)  # analytics (issue 6)
        app.state.gateways = StripeGatewayPool(settings=settings, keyring=app.state.keyring)
        app.state.broker = app.state.publisher = publisher
        # -- end payments
        try:
            yield
        finally:
            stop_reporting.set()
            await reporting  # its last report goes out before the broker stops
            await app.state.gateways.aclose()  # payments (issue 5)
            await replies.stop()
            await broker.stop()
            await engine.dispose()

    return Litestar(
        route_handlers=[
            health,
            CustomerController,
            ApiKeyController,
            CommandController,
            *CATALOG,
            *PAYMENTS,
            *ANALYTICS,
        ],  # CATALOG: issue 4, PAYMENTS: issue 5, ANALYTICS: issue 6
        dependencies={
            "caller": Provide(provide_caller),
            "db": Provide(provide_db),
            "page_request": Provide(provide_page_request),
            "created": Provide(provide_created_range),
        },
        exception_handlers={**EXCEPTION_HANDLERS, GatewayError: on_gateway_error},  # type: ignore[arg-type]  # GatewayError: issue 5 (Retry-After)
        lifespan=[lifespan],
        before_send=[add_base_headers],  # nosniff and no-store on every answer, the router's 404 too
        request_max_body_size=MAX_BODY_BYTES,
        middleware=[
            PagePolicy(),  # the Content-Security-Policy of the dashboard and reference pages
            CardDataGuard(
                MAX_BODY_BYTES
            ),  # payments (issue 5): before the rest, so a card number is refused before anything else sees it
            InputRules(
                MAX_BODY_BYTES
            ),  # text, nesting, header and id-shape rules before anything parses or stores them
            RateLimitConfig(
                rate_limit=("second", settings.rate_limit_per_second),
                identifier_for_request=rate_limit_identity,
                exclude=["/schema", "/health"],
            ).middleware,
            # default deny, after the limiter (made-up keys are counted) and before every
            # handler: OPTIONS too, a route is public only by its mark (api/auth.py)
            DefineMiddleware(ApiKeyAuthentication, exclude_http_methods=[]),
        ],
        openapi_config=openapi_config(  # api/openapi.py: the spec as the API really answers
            render_plugins=[OfflineSwaggerRenderPlugin(path="/swagger")],  # also at /schema itself (the first plugin)
        ),
        debug=False,
    )
