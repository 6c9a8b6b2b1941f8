"""The analytics dashboard: `/dashboard`, signed in as an organization (see session.py).

GET  /dashboard                 the charts (or the sign-in form when not signed in)
POST /dashboard/login           form field `key`: the organization's secret key -> cookie
GET  /dashboard/login?token=    a one-time link from POST /v1/dashboard/sessions -> cookie
POST /dashboard/logout          clears the cookie
GET  /dashboard/api/overview    the JSON the page draws (cookie-authenticated)
GET  /dashboard/static/...      the page's script and style, and Chart.js (vendored from npm)
POST /v1/dashboard/sessions     (Bearer key) a sign-in link valid for 60 seconds, once
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from litestar import MediaType, Request, Response, Router, get, post
from litestar.datastructures import Cookie, State
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.params import Body, Parameter
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from api.auth import PUBLIC, Caller
from api.dashboard import session as tokens
from api.dashboard.data import overview
from api.services import services_of
from billing.db.sessions import tenant_session
from billing.errors import AuthenticationError
from billing.organizations.service import authenticate

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
PAGES = HERE / "pages"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(name: str, status: int = 200, **values: str) -> Response[str]:
    html = (PAGES / name).read_text()
    for key, value in values.items():
        html = html.replace("{{" + key + "}}", value)
    return Response(html, media_type=MediaType.HTML, status_code=status, headers=SECURITY_HEADERS)


def _signing_key(state: State) -> bytes:
    return services_of(state).dashboard_signing_key


def _session_cookie(request: Request[Any, Any, Any], caller: Caller) -> Cookie:
    token, _ = tokens.sign(_signing_key(request.app.state), caller, "session", tokens.SESSION_SECONDS)
    return Cookie(
        key=tokens.COOKIE,
        value=token,
        path=tokens.COOKIE_PATH,
        max_age=tokens.SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def _viewer(request: Request[Any, Any, Any], state: State) -> Caller | None:
    claims = tokens.verify(_signing_key(state), request.cookies.get(tokens.COOKIE), "session")
    return await tokens.active_caller(services_of(state).sessions, claims)


def _signed_in(request: Request[Any, Any, Any], caller: Caller) -> Redirect:
    return Redirect(
        "/dashboard", status_code=303, cookies=[_session_cookie(request, caller)], headers={"Cache-Control": "no-store"}
    )


@get("/dashboard", include_in_schema=False, exclude_from_auth=True)
async def dashboard_page(request: Request[Any, Any, Any], state: State) -> Response[str]:
    if await _viewer(request, state) is None:
        return _page("login.html", error="")
    return _page("dashboard.html")


@post("/dashboard/login", include_in_schema=False, status_code=303, exclude_from_auth=True)
async def dashboard_login(
    request: Request[Any, Any, Any],
    state: State,
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    secret = (data.get("key") or "").strip()
    key = None
    if secret:
        async with services_of(state).sessions() as session:
            key = await authenticate(session, secret)
    if key is None:
        return _page("login.html", status=401, error='<p class="error" role="alert">That key is not valid.</p>')
    return _signed_in(request, Caller(key.organization_id, key.id))


@get("/dashboard/login", include_in_schema=False, exclude_from_auth=True)
async def dashboard_link(
    request: Request[Any, Any, Any],
    state: State,
    token: Annotated[str | None, Parameter(query="token", max_length=1024, required=False)] = None,
) -> Response[Any]:
    claims = tokens.verify(_signing_key(state), token, "link")
    caller = await tokens.active_caller(services_of(state).sessions, claims)
    if caller is None or claims is None or not tokens.spend_link(claims):
        return _page(
            "login.html",
            status=401,
            error='<p class="error" role="alert">That sign-in link has expired or was used already.</p>',
        )
    return _signed_in(request, caller)


@post("/dashboard/logout", include_in_schema=False, status_code=303, exclude_from_auth=True)
async def dashboard_logout() -> Redirect:
    gone = Cookie(key=tokens.COOKIE, value="", path=tokens.COOKIE_PATH, max_age=0, httponly=True, samesite="strict")
    return Redirect("/dashboard", status_code=303, cookies=[gone])


@get("/dashboard/api/overview", include_in_schema=False, exclude_from_auth=True)
async def dashboard_overview(
    request: Request[Any, Any, Any],
    state: State,
    days: Annotated[int, Parameter(query="days", ge=1, le=90)] = 30,
    meter: Annotated[str | None, Parameter(query="meter", max_length=100, required=False)] = None,
) -> Response[dict[str, Any]]:
    caller = await _viewer(request, state)
    if caller is None:
        raise AuthenticationError("Sign in at /dashboard first.", code="dashboard_session_missing")
    store = await services_of(state).analytics.get()
    async with tenant_session(services_of(state).sessions, caller.organization_id) as db:
        body = await overview(store, db, caller.organization_id, days, meter)
    return Response(body, headers={"Cache-Control": "no-store"})


@post(
    "/v1/dashboard/sessions",
    summary="A one-time dashboard sign-in link (valid 60 s)",
    tags=["analytics"],
    status_code=201,
)
async def dashboard_link_create(caller: Caller, state: State) -> dict[str, Any]:
    token, expires = tokens.sign(_signing_key(state), caller, "link", tokens.LINK_SECONDS)
    return {
        "object": "dashboard_session_link",
        "url": f"/dashboard/login?token={token}",
        "expiresAt": expires.isoformat().replace("+00:00", "Z"),
    }


static_files = create_static_files_router(
    path="/dashboard/static",
    directories=[STATIC_DIR],
    include_in_schema=False,
    send_as_attachment=False,
    opt={PUBLIC: True},
)

DASHBOARD: list[HTTPRouteHandler | Router] = [
    dashboard_page,
    dashboard_login,
    dashboard_link,
    dashboard_logout,
    dashboard_overview,
    dashboard_link_create,
    static_files,
]
