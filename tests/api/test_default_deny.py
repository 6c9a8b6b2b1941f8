"""Default deny: every route the app has, walked from its route table with every method it
serves, answers 401 in Stripe's shape without a key and with a revoked one, unless it is
marked public; the public ones are exactly the list below, so a new public route is a
decision this test has to be told about."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import func, update

from api.app import create_app
from api.auth import PUBLIC
from api.input_rules import path_id_resource
from billing import ids
from billing.models import ApiKey
from tests.api.conftest import Tenant, assert_error, new_tenant

# what needs no API key, and why: each has its own credential or holds nothing secret
PUBLIC_ROUTES = {
    ("GET", "/health"),  # the load balancer's probe
    ("POST", "/v1/webhooks/stripe/{organization_id:str}"),  # Stripe's signature
    ("OPTIONS", "/v1/webhooks/stripe/{organization_id:str}"),
    ("GET", "/dashboard"),  # the dashboard: its own session cookie
    ("GET", "/dashboard/login"),
    ("POST", "/dashboard/login"),
    ("POST", "/dashboard/logout"),
    ("GET", "/dashboard/api/overview"),
    *((method, "/dashboard/static/{file_path:path}") for method in ("GET", "HEAD", "OPTIONS")),
    # the API reference: the spec and the page that shows it
    *(
        (method, path)
        for method in ("GET", "OPTIONS")
        for path in (
            "/schema",
            "/schema/swagger",
            "/schema/{path:str}",
            "/schema/openapi.json",
            "/schema/oauth2-redirect.html",
        )
    ),
    *((method, "/schema/swagger-ui/{file_path:path}") for method in ("GET", "HEAD", "OPTIONS")),
}

_PARAMETER = re.compile(r"\{(\w+):(\w+)\}")


def _concrete(path: str) -> str:
    """The route's path with a value of the right shape for each parameter, so the request
    passes the id-shape rules (api/input_rules.py) and meets authentication."""

    def value(match: re.Match[str]) -> str:
        name, kind = match.groups()
        resource = path_id_resource(name)
        if resource is not None:
            return ids.new_id(resource)
        return "app.js" if kind == "path" else "anything"

    return _PARAMETER.sub(value, path)


def _every_operation() -> list[tuple[str, str, bool]]:
    """(method, route path, public) for every handler of every route of the app."""
    return sorted(
        (method, route.path, bool(handler.opt.get(PUBLIC)))
        for route in create_app().routes
        for handler in getattr(route, "route_handlers", [])
        for method in handler.http_methods
    )


OPERATIONS = _every_operation()


@pytest.mark.unit
def test_the_public_routes_are_exactly_the_listed_ones() -> None:
    assert {(method, path) for method, path, public in OPERATIONS if public} == PUBLIC_ROUTES
    # the walk sees the whole API: every operation of the spec is in it
    app = create_app()
    documented = {
        (method.upper(), path) for path, item in app.openapi_schema.to_schema()["paths"].items() for method in item
    }
    walked = {(method, _PARAMETER.sub(r"{\1}", path)) for method, path, _ in OPERATIONS}
    assert documented and documented <= walked, documented - walked


@pytest.fixture(scope="module")
async def revoked(session_factory) -> Tenant:  # type: ignore[no-untyped-def]
    tenant = await new_tenant(session_factory, "Revoked key")
    async with session_factory() as session, session.begin():
        await session.execute(update(ApiKey).where(ApiKey.id == tenant.api_key_id).values(revoked_at=func.now()))
    return tenant


async def test_every_route_not_marked_public_refuses_a_missing_or_revoked_key(
    api: httpx.AsyncClient,
    session_factory,
    revoked: Tenant,  # type: ignore[no-untyped-def]
) -> None:
    valid = await new_tenant(session_factory, f"Default deny {uuid.uuid4().hex[:6]}")
    guarded = [(method, path) for method, path, public in OPERATIONS if not public]
    for method, path in guarded:
        url = _concrete(path)
        missing = await api.request(method, url)
        assert_error(missing, 401, "api_key_missing", None, "authentication_error")
        refused = await api.request(method, url, headers=revoked.headers)
        assert_error(refused, 401, "api_key_invalid", None, "authentication_error")
        # the same request with a valid key gets past authentication: the 401s were the key's
        allowed = await api.request(method, url, headers=valid.headers)
        assert allowed.status_code != 401, (method, path, allowed.text)
    for method, path in sorted(PUBLIC_ROUTES):
        answer = await api.request(method, _concrete(path))
        # the dashboard answers 401 itself without its cookie; never for want of a key
        assert "api_key_missing" not in answer.text and answer.status_code < 500, (method, path, answer.text)
