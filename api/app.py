"""The Litestar application: thin controllers over billing/ reads and the command bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig

from api.auth import ApiKeyAuthentication, KeyCache, rate_limit_identity
from api.bus import CommandBus
from api.card_guard import CardDataGuard
from api.controllers.analytics import AnalyticsController, AnalyticsStores
from api.controllers.api_keys import ApiKeyController
from api.controllers.attributes import AttributeDefinitionController
from api.controllers.billing_settings import BillingSettingsController
from api.controllers.commands import CommandController
from api.controllers.credit_notes import CreditNoteController
from api.controllers.customers import CustomerController
from api.controllers.events import EventController
from api.controllers.exchange_rates import ExchangeRateController
from api.controllers.invoice_items import InvoiceItemController
from api.controllers.invoices import InvoiceController
from api.controllers.meters import MeterController
from api.controllers.payment_methods import (
    PaymentMethodController,
    on_gateway_error,
    quiet_gateway_logging,
)
from api.controllers.prices import PriceController
from api.controllers.products import ProductController
from api.controllers.refunds import RefundController
from api.controllers.setup_intents import SetupIntentController
from api.controllers.stripe_account import StripeAccountController
from api.controllers.subscription_schedules import SubscriptionScheduleController
from api.controllers.subscriptions import SubscriptionController
from api.controllers.tax_rates import TaxRateController
from api.controllers.test_clocks import TestClockController
from api.controllers.usage_events import UsageEventController
from api.controllers.webhook_deliveries import WebhookDeliveryController
from api.controllers.webhook_endpoints import WebhookEndpointController
from api.controllers.webhooks import StripeWebhookController
from api.dashboard import DASHBOARD
from api.dashboard.session import SIGNING_PURPOSE as DASHBOARD_SIGNING_PURPOSE
from api.dependencies import DEPENDENCIES
from api.docs import OfflineSwaggerRenderPlugin
from api.errors import EXCEPTION_HANDLERS
from api.health import health
from api.input_rules import InputRules
from api.key_use import KeyUseReporter
from api.openapi import openapi_config
from api.replies import ReplyListener
from api.security_headers import PagePolicy, add_base_headers
from api.services import Services
from billing.clock import now
from billing.db.sessions import create_engine, create_session_factory
from billing.organizations.stripe_account import ensure_keyring
from billing.payments.gateway import GatewayError
from billing.payments.stripe_gateway import StripeGatewayPool
from billing.secrets.redaction import install_log_redaction
from contracts.events import API_KEY_REVOKED, API_KEY_ROLLED
from contracts.settings import Settings, get_settings, require_safe_settings
from producers.publisher import Publisher, create_broker

MAX_BODY_BYTES = 256 * 1024
CATALOG = [AttributeDefinitionController, ProductController, PriceController, ExchangeRateController]
PAYMENTS = [PaymentMethodController, SetupIntentController, StripeAccountController, StripeWebhookController]
BILLING = [
    SubscriptionController,
    SubscriptionScheduleController,
    InvoiceController,
    InvoiceItemController,
    RefundController,
    CreditNoteController,
    TaxRateController,
    TestClockController,
    BillingSettingsController,
]
NOTIFICATIONS = [WebhookEndpointController, EventController, WebhookDeliveryController]
ANALYTICS = [MeterController, UsageEventController, AnalyticsController, *DASHBOARD]


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    # the limiter (before authentication) reads the same cache the authentication fills
    key_cache = KeyCache(settings.auth_cache_seconds)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        require_safe_settings(settings)  # before anything connects: no secret key over plain HTTP, no unkept keys
        install_log_redaction()  # no secret or card number in a log line, whoever writes it
        quiet_gateway_logging()
        engine = create_engine(settings.database_url)
        sessions = create_session_factory(engine)
        broker = create_broker(settings)
        await broker.start()
        publisher = Publisher(broker)
        # a key revoked or rolled through another API process stops working here as soon as
        # its event arrives, not when the cache entry expires
        replies = ReplyListener(
            settings, on_events={API_KEY_REVOKED.name: key_cache.clear, API_KEY_ROLLED.name: key_cache.clear}
        )
        await replies.start()
        bus = CommandBus(publisher, replies, sessions, settings.command_timeout_seconds)
        keyring = ensure_keyring(settings)  # the secrets' key ring (a dev key file is made on first use)
        services = Services(
            settings=settings,
            sessions=sessions,
            publisher=publisher,
            bus=bus,
            key_cache=key_cache,
            key_use=KeyUseReporter(bus, settings.key_use_report_seconds),
            keyring=keyring,
            gateways=StripeGatewayPool(settings=settings, keyring=keyring),
            dashboard_signing_key=keyring.derive_key(DASHBOARD_SIGNING_PURPOSE),
            clock=now,
            analytics=AnalyticsStores(settings.clickhouse_url),
        )
        app.state.services = services
        stop_reporting = asyncio.Event()
        reporting = asyncio.create_task(services.key_use.run(stop_reporting))
        try:
            yield
        finally:
            stop_reporting.set()
            await reporting  # its last report goes out before the broker stops
            await services.gateways.aclose()
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
            *BILLING,
            *NOTIFICATIONS,
            *ANALYTICS,
        ],
        dependencies=DEPENDENCIES,
        exception_handlers={**EXCEPTION_HANDLERS, GatewayError: on_gateway_error},
        lifespan=[lifespan],
        before_send=[add_base_headers],  # nosniff and no-store on every answer, the router's 404 too
        request_max_body_size=MAX_BODY_BYTES,
        middleware=[
            PagePolicy(),  # the Content-Security-Policy of the dashboard and reference pages
            # before the rest, so a card number is refused before anything else sees it
            CardDataGuard(MAX_BODY_BYTES),
            # text, nesting, header and id-shape rules before anything parses or stores them
            InputRules(MAX_BODY_BYTES),
            RateLimitConfig(
                rate_limit=("second", settings.rate_limit_per_second),
                identifier_for_request=rate_limit_identity(key_cache),
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
