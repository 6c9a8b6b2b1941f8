"""`PaymentGateway` over the official `stripe` SDK's async client, one client per organization key.

Each organization connects its own Stripe account: its secret key is stored encrypted
(`billing.secrets.encryption`) and decrypted only to build its `StripeClient`. `StripeGatewayPool`
keeps one gateway per organization and key, reusing its HTTP connections; a changed key
makes a new client. `api_base` comes from ``STRIPE_API_BASE`` so the same code talks to
stripe-mock locally and in tests and to api.stripe.com in production.

Timeouts: 5 s to connect, 30 s per request (Stripe's own default is 80 s; a charge that
takes longer is better retried with the same idempotency key). The SDK retries network
failures, 409s and 5xx answers `max_network_retries` times (default 2) with backoff,
reusing the idempotency key, so a retry never charges twice.

Every Stripe error is mapped by `map_stripe_error` to the errors of `gateway` (see the
table there), keeping Stripe's message, code, param, decline code and request id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx
import stripe
from stripe.params import PaymentIntentCreateParams

from billing.payments.gateway import (
    GatewayAuthenticationError,
    GatewayCardError,
    GatewayError,
    GatewayInvalidRequest,
    GatewayPaymentMethod,
    GatewayUnavailable,
    PaymentResult,
    Refund,
    SetupIntent,
    check_amount,
    check_currency,
    check_gateway_id,
    check_idempotency_key,
    check_metadata,
    check_payment_method_types,
    payment_method_from_json,
    payment_result_from_json,
    refund_from_json,
    setup_intent_from_json,
)
from billing.secrets.encryption import Keyring, decrypt_secret
from contracts.settings import Settings, get_settings

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_MAX_NETWORK_RETRIES = 2
MAX_RETRY_AFTER = 300


# ---------------------------------------------------------------------------- error mapping


def _header(headers: Any, name: str) -> str | None:
    """A response header, whatever mapping the HTTP client gave (httpx's is case-insensitive)."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            return str(value)
    return None


def _retry_after(error: stripe.StripeError) -> int | None:
    value = _header(error.headers, "Retry-After")
    if value is None:
        return None
    try:
        seconds = int(float(value))
    except ValueError:
        return None
    return max(1, min(seconds, MAX_RETRY_AFTER))


def _error_body(error: stripe.StripeError) -> dict[str, Any]:
    body = error.json_body
    details = body.get("error") if isinstance(body, dict) else None
    return details if isinstance(details, dict) else {}


def map_stripe_error(error: stripe.StripeError) -> GatewayError:
    """The `GatewayError` for an exception raised by the stripe SDK (every class of it)."""
    body = _error_body(error)
    message = error.user_message or body.get("message") or str(error) or type(error).__name__
    code = error.code or body.get("code")
    param = getattr(error, "param", None) or body.get("param")
    common: dict[str, Any] = {
        "request_id": error.request_id,
        "gateway_type": body.get("type"),
    }
    if isinstance(error, stripe.CardError):
        return GatewayCardError(
            message,
            code=code,
            param=param,
            decline_code=body.get("decline_code"),
            payment_intent_id=_payment_intent_id(body),
            **common,
        )
    if isinstance(error, stripe.IdempotencyError):
        return GatewayInvalidRequest(
            message,
            code=code or "idempotency_key_in_use",
            param=param,
            type="idempotency_error",
            status=error.http_status or 400,
            **common,
        )
    if isinstance(error, stripe.InvalidRequestError):
        status = error.http_status if error.http_status in (400, 404) else 400
        return GatewayInvalidRequest(
            message,
            code=code or ("resource_missing" if status == 404 else "parameter_invalid"),
            param=param,
            status=status,
            **common,
        )
    if isinstance(error, stripe.AuthenticationError):
        return GatewayAuthenticationError(
            f"Stripe rejected this organization's secret key: {message}", code="gateway_authentication_failed", **common
        )
    if isinstance(error, stripe.PermissionError):
        return GatewayAuthenticationError(
            f"This organization's Stripe key may not make this request: {message}",
            code="gateway_permission_denied",
            **common,
        )
    if isinstance(error, stripe.RateLimitError):
        return GatewayUnavailable(
            f"Stripe is rate-limiting this organization's requests: {message}",
            code="gateway_rate_limited",
            retry_after=_retry_after(error),
            **common,
        )
    if isinstance(error, stripe.APIConnectionError):
        return GatewayUnavailable(
            "Stripe could not be reached (network error or timeout); try again.",
            code="gateway_unavailable",
            retry_after=_retry_after(error),
            **common,
        )
    if isinstance(error, stripe.APIError):
        return GatewayUnavailable(
            f"Stripe failed to answer the request: {message}",
            code=code or "gateway_error",
            retry_after=_retry_after(error),
            **common,
        )
    return GatewayError(f"Stripe answered an unexpected error ({type(error).__name__}): {message}", code=code, **common)


def _payment_intent_id(body: Mapping[str, Any]) -> str | None:
    intent = body.get("payment_intent")
    if isinstance(intent, Mapping):
        found = intent.get("id")
        return found if isinstance(found, str) else None
    return intent if isinstance(intent, str) else None


def _json(obj: Any) -> dict[str, Any]:
    """A Stripe SDK object as plain JSON-like dicts and lists."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict(recursive=True)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise GatewayError(
        f"The gateway answered an unexpected object: {type(obj).__name__}.", code="gateway_response_invalid"
    )


# ---------------------------------------------------------------------------- the gateway


class StripeGateway:
    """One organization's Stripe account, through `stripe.StripeClient` (async)."""

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES,
        http_client: stripe.HTTPClient | None = None,
        stripe_account: str | None = None,
    ) -> None:
        if not api_key or not isinstance(api_key, str):
            raise GatewayAuthenticationError(
                "This organization has no Stripe secret key configured.", code="gateway_not_configured"
            )
        self.api_base = (api_base or get_settings().stripe_api_base).rstrip("/")
        self._http = http_client if http_client is not None else stripe.HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            stripe_account=stripe_account,
            base_addresses={"api": self.api_base},
            http_client=self._http,
            max_network_retries=max_network_retries,
        )
        self.key_fingerprint = hashlib.sha256(api_key.encode()).hexdigest()[:16]

    def __repr__(self) -> str:  # never the key
        return f"StripeGateway(api_base={self.api_base!r}, key={self.key_fingerprint})"

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # stripe's HTTPClient.close_async is unannotated

    async def __aenter__(self) -> StripeGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def client(self) -> stripe.StripeClient:
        """The underlying SDK client, for calls this class does not wrap."""
        return self._client

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            result = await method(*args, **kwargs)
        except stripe.StripeError as error:
            raise map_stripe_error(error) from error
        return _json(result)

    @staticmethod
    def _options(idempotency_key: str | None) -> dict[str, Any]:
        return {"idempotency_key": check_idempotency_key(idempotency_key)} if idempotency_key is not None else {}

    # -- customers

    async def create_customer(
        self, email: str | None, name: str | None, metadata: Mapping[str, str] | None, idempotency_key: str
    ) -> str:
        params: dict[str, Any] = {"metadata": check_metadata(metadata)}
        if email is not None:
            params["email"] = email
        if name is not None:
            params["name"] = name
        options = {"idempotency_key": check_idempotency_key(idempotency_key)}
        data = await self._call(self._client.v1.customers.create_async, params=params, options=options)
        return str(data["id"])

    # -- setup intents and payment methods

    async def create_setup_intent(
        self,
        gateway_customer_id: str,
        payment_method_types: Sequence[str],
        idempotency_key: str,
        *,
        usage: str = "off_session",
        metadata: Mapping[str, str] | None = None,
    ) -> SetupIntent:
        if usage not in ("off_session", "on_session"):
            raise GatewayInvalidRequest(
                "Invalid usage: must be off_session or on_session.", code="parameter_invalid", param="usage"
            )
        params = {
            "customer": check_gateway_id(gateway_customer_id, "customer"),
            "payment_method_types": check_payment_method_types(payment_method_types),
            "usage": usage,
            "metadata": check_metadata(metadata),
        }
        options = {"idempotency_key": check_idempotency_key(idempotency_key)}
        data = await self._call(self._client.v1.setup_intents.create_async, params=params, options=options)
        return setup_intent_from_json(data)

    async def attach_payment_method(
        self, gateway_pm_id: str, gateway_customer_id: str, idempotency_key: str
    ) -> GatewayPaymentMethod:
        pm_id = check_gateway_id(gateway_pm_id, "payment_method")
        params = {"customer": check_gateway_id(gateway_customer_id, "customer")}
        options = {"idempotency_key": check_idempotency_key(idempotency_key)}
        data = await self._call(self._client.v1.payment_methods.attach_async, pm_id, params=params, options=options)
        return payment_method_from_json(data)

    async def detach_payment_method(
        self, gateway_pm_id: str, idempotency_key: str | None = None
    ) -> GatewayPaymentMethod:
        pm_id = check_gateway_id(gateway_pm_id, "payment_method")
        data = await self._call(
            self._client.v1.payment_methods.detach_async, pm_id, options=self._options(idempotency_key)
        )
        return payment_method_from_json(data)

    async def retrieve_payment_method(self, gateway_pm_id: str) -> GatewayPaymentMethod:
        pm_id = check_gateway_id(gateway_pm_id, "payment_method")
        data = await self._call(self._client.v1.payment_methods.retrieve_async, pm_id)
        return payment_method_from_json(data)

    # -- payments

    async def charge_off_session(
        self,
        gateway_customer_id: str,
        gateway_pm_id: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> PaymentResult:
        params: PaymentIntentCreateParams = {
            "customer": check_gateway_id(gateway_customer_id, "customer"),
            "payment_method": check_gateway_id(gateway_pm_id, "payment_method"),
            "amount": check_amount(amount),
            "currency": check_currency(currency),
            "off_session": True,
            "confirm": True,
            # nobody is there to follow a redirect: only methods that need none
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "metadata": check_metadata(metadata),
        }
        options: stripe.RequestOptions = {"idempotency_key": check_idempotency_key(idempotency_key)}
        try:
            result = await self._client.v1.payment_intents.create_async(params=params, options=options)
        except stripe.CardError as error:
            # a decline still made a payment intent: answer it with the failure, to be recorded
            body = _error_body(error)
            intent = body.get("payment_intent")
            if isinstance(intent, Mapping) and isinstance(intent.get("id"), str):
                failure = {
                    "code": error.code or body.get("code"),
                    "message": error.user_message or body.get("message"),
                    "decline_code": body.get("decline_code"),
                }
                return payment_result_from_json(intent, failure)
            raise map_stripe_error(error) from error
        except stripe.StripeError as error:
            raise map_stripe_error(error) from error
        return payment_result_from_json(_json(result))

    async def refund(self, payment_intent_id: str, amount: int | None, idempotency_key: str) -> Refund:
        params: dict[str, Any] = {"payment_intent": check_gateway_id(payment_intent_id, "payment_intent")}
        if amount is not None:
            params["amount"] = check_amount(amount)
        options = {"idempotency_key": check_idempotency_key(idempotency_key)}
        data = await self._call(self._client.v1.refunds.create_async, params=params, options=options)
        return refund_from_json(data)


# ---------------------------------------------------------------------------- one gateway per organization


class _OrganizationKeys(Protocol):
    id: str
    stripe_secret_key_encrypted: str | None


class StripeGatewayPool:
    """One `StripeGateway` per organization key, built on first use and reused.

    Keyed by organization id and the stored (encrypted) key, so a key the organization
    replaces gets a new client; the replaced client is closed by `aclose()`.
    """

    def __init__(
        self, *, settings: Settings | None = None, keyring: Keyring | None = None, **gateway_options: Any
    ) -> None:
        self._settings = settings
        self._keyring = keyring
        self._options = gateway_options
        self._gateways: dict[str, tuple[str, StripeGateway]] = {}
        self._retired: list[StripeGateway] = []

    def get(self, organization_id: str, encrypted_key: str | None) -> StripeGateway:
        if not encrypted_key:
            raise GatewayAuthenticationError(
                "This organization has no Stripe secret key configured.", code="gateway_not_configured"
            )
        cached = self._gateways.get(organization_id)
        if cached is not None and cached[0] == encrypted_key:
            return cached[1]
        api_base = self._options.get("api_base") or (self._settings or get_settings()).stripe_api_base
        options = {**self._options, "api_base": api_base}
        gateway = StripeGateway(decrypt_secret(encrypted_key, self._keyring), **options)
        if cached is not None:
            self._retired.append(cached[1])
        self._gateways[organization_id] = (encrypted_key, gateway)
        return gateway

    def for_organization(self, organization: _OrganizationKeys) -> StripeGateway:
        """The gateway of an `Organization` row (its `stripe_secret_key_encrypted`)."""
        return self.get(organization.id, organization.stripe_secret_key_encrypted)

    async def aclose(self) -> None:
        gateways = [gateway for _, gateway in self._gateways.values()] + self._retired
        self._gateways.clear()
        self._retired.clear()
        for gateway in gateways:
            await gateway.aclose()


async def verify_secret_key(secret_key: str, api_base: str) -> None:
    """One read-only call with the key; GatewayAuthenticationError (param secretKey) when
    Stripe refuses it, GatewayUnavailable (503) when Stripe cannot be reached."""
    gateway = StripeGateway(secret_key, api_base=api_base, max_network_retries=1)
    try:
        await gateway.client.v1.customers.list_async(params={"limit": 1})
    except stripe.StripeError as error:
        mapped = map_stripe_error(error)
        if isinstance(mapped, GatewayAuthenticationError):
            mapped.param = "secretKey"
        raise mapped from None
    finally:
        await gateway.aclose()


def already_detached(error: GatewayInvalidRequest) -> bool:
    """Stripe's answer to detaching a PaymentMethod that is not attached (or does not exist)."""
    if error.status == 404 or error.code == "resource_missing":
        return True
    return error.code == "payment_method_unexpected_state" or "not attached" in error.message.lower()


__all__ = [
    "DEFAULT_MAX_NETWORK_RETRIES",
    "DEFAULT_TIMEOUT",
    "StripeGateway",
    "StripeGatewayPool",
    "already_detached",
    "map_stripe_error",
    "verify_secret_key",
]
