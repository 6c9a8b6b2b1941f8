"""Bad input against EVERY endpoint of the app, through the real server.

The endpoints are read from the app's own routes (an endpoint added later is swept
without touching this file): every write endpoint that takes a body gets bodies Postgres
cannot store or a parser chokes on; every read endpoint gets a NUL and a malformed value
in its path ids, cursors, search query and page token. No answer may be a 5xx (but a 503
saying a dependency is unavailable), every error of the API (/v1) is exactly Stripe's
shape, and nothing of the organization changes (rows of every tenant table, processed
commands among them).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

import httpx
import pytest
from litestar.routes import HTTPRoute
from sqlalchemy import func, select

from api.app import create_app
from api.input_rules import path_id_resource
from billing import ids
from billing.models import Outbox, ProcessedCommand
from billing.models.base import Base
from contracts.api_keys import RecordApiKeyUseCommand
from contracts.settings import get_settings
from tests.api.conftest import Tenant, new_tenant

_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
JSON = {"content-type": "application/json"}
FULLWIDTH_CARD = "４２４２ ４２４２ ４２４２ ４２４２"

# (name, body, headers, the answer: (status, code) exactly, or None for any 4xx)
BAD_BODIES: list[tuple[str, bytes, dict[str, str], tuple[int, str] | None]] = [
    ("nul", b'{"name": "a\\u0000b", "metadata": {"k": "v\\u0000"}}', JSON, (400, "invalid_characters")),
    ("raw nul", b'{"name": "a\x00b"}', JSON, (400, "invalid_characters")),
    ("lone surrogate", b'{"name": "\\ud800", "description": "\\udfff"}', JSON, (400, "invalid_characters")),
    ("invalid utf-8", b'{"name": "\xff\xfe\xc3"}', JSON, (400, "invalid_characters")),
    ("5,000 deep", b"[" * 5000 + b"]" * 5000, JSON, (400, "invalid_json")),
    ("5,000 deep object", b'{"a":' * 5000 + b"1" + b"}" * 5000, JSON, (400, "invalid_json")),
    ("60 metadata keys", json.dumps({"metadata": {f"key{i}": "v" for i in range(60)}}).encode(), JSON, None),
    (
        "fullwidth card",
        json.dumps({"metadata": {"n": FULLWIDTH_CARD}}, ensure_ascii=False).encode(),
        JSON,
        (400, "card_data_not_allowed"),
    ),
    (
        "fullwidth digits",
        json.dumps({"amount": "１２３", "balance": "１２３", "unitAmount": "１２３"}, ensure_ascii=False).encode(),
        JSON,
        None,
    ),
    ("not json", b"name=Ada&this is not json", JSON, None),
    ("text body", b"\x00\xff plain", {"content-type": "text/plain"}, (400, "invalid_characters")),
]

# bad values of the query parameters that name an object or a position, percent-encoded
# as sent (a lone surrogate cannot be encoded by a client: its UTF-8 bytes are sent)
BAD_QUERIES: list[tuple[str, str, bool]] = [
    *((f"nul {name}", f"{name}=cus_a%00b", True) for name in ("startingAfter", "endingBefore", "page")),
    ("nul query", "query=name%3A%27a%00%27", True),
    ("surrogate query", "query=name%3A%27%ED%A0%80%27", True),
    ("invalid utf-8 page", "page=%FF", True),
    *(
        (f"malformed {name}", f"{name}=not%20an%20id%27%20OR%20%271%27%3D%271", False)
        for name in ("startingAfter", "endingBefore", "page")
    ),
    ("non-uuid startingAfter", "startingAfter=exr_notauuid", False),
    ("malformed query", "query=name%3A%27unterminated", False),
]
BAD_PATH_IDS = [
    ("nul id", "a%00b"),
    ("invalid utf-8 id", "a%FF"),
    ("surrogate id", "%ED%A0%80"),
    ("malformed id", "not%20an%20id"),
]


def endpoints() -> list[tuple[str, str, set[str], set[str]]]:
    """(method, route path, its path parameters, its handler's parameters) of the app."""
    app = create_app(get_settings())  # routes only: the lifespan does not run
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            handler = route.route_handler_map[method]
            handler = handler[0] if isinstance(handler, tuple) else handler
            found.append(
                (method, route.path, set(_PATH_PARAM.findall(route.path)), set(handler.parsed_fn_signature.parameters))
            )
    return found


ENDPOINTS = endpoints()
BODY_ENDPOINTS = [e for e in ENDPOINTS if e[0] in BODY_METHODS and {"data", "request"} & e[3]]
READ_ENDPOINTS = [e for e in ENDPOINTS if e[0] == "GET"]


@pytest.mark.unit
def test_the_sweep_covers_the_app() -> None:
    body_paths = {(m, p) for m, p, _, _ in BODY_ENDPOINTS}
    assert {
        ("POST", "/v1/customers"),
        ("PATCH", "/v1/products/{product_id:str}"),
        ("POST", "/v1/usage-events"),
    } <= body_paths
    read_paths = {p for _, p, _, _ in READ_ENDPOINTS}
    assert {
        "/v1/customers",
        "/v1/customers/search",
        "/v1/exchange-rates",
        "/v1/commands/{command_id:str}",
    } <= read_paths
    assert len(BODY_ENDPOINTS) >= 15 and len(READ_ENDPOINTS) >= 15


def fill(path: str, ids_by_param: dict[str, str]) -> str:
    """The route path with an id of the right shape for each parameter (a real one when given)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        resource = path_id_resource(name)
        return ids_by_param.get(name) or (ids.new_id(resource) if resource else f"{name}_x1")

    return _PATH_PARAM.sub(value, path)


async def tenant_footprint(session_factory: Any, organization_id: str) -> dict[str, int]:
    """Rows of every table that holds the organization's data, but for the API's own
    key-use report (its command and outcome event, whenever its minute ticks)."""
    key_use = RecordApiKeyUseCommand.command_type
    not_key_use = {
        ProcessedCommand.__tablename__: ProcessedCommand.type != key_use,
        Outbox.__tablename__: Outbox.payload["data"]["commandType"].astext.is_distinct_from(key_use),
    }
    counts = {}
    async with session_factory() as session:
        for table in Base.metadata.sorted_tables:
            if "organization_id" in table.c:
                statement = select(func.count()).select_from(table).where(table.c.organization_id == organization_id)
                if table.name in not_key_use:
                    statement = statement.where(not_key_use[table.name])
                counts[table.name] = await session.scalar(statement)
    return counts


def check_answer(response: httpx.Response, expected: tuple[int, str] | None, problems: list[str], label: str) -> None:
    if response.status_code == 503 and (_code(response) or "").endswith("_unavailable"):
        # a dependency this process cannot use (chDB held by another test), said in Stripe's shape
        return
    if response.status_code >= 500:
        problems.append(f"{label}: {response.status_code} {response.text[:200]}")
        return
    if expected is not None and (response.status_code, _code(response)) != expected:
        problems.append(f"{label}: expected {expected}, got {response.status_code} {response.text[:200]}")
        return
    if response.status_code >= 400 and response.url.path.startswith("/v1/"):
        # the API's (the dashboard's and the schema's pages answer browsers in HTML)
        try:
            body = response.json()
        except ValueError:
            problems.append(f"{label}: {response.status_code} is not JSON: {response.text[:200]}")
            return
        if not (
            isinstance(body, dict)
            and set(body) == {"error"}
            and set(body["error"]) == {"type", "code", "message", "param"}
        ):
            problems.append(f"{label}: not Stripe's error shape: {response.text[:200]}")


def _code(response: httpx.Response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


@pytest.fixture
async def sweep_tenant(session_factory: Any) -> Tenant:
    return await new_tenant(session_factory, "Sweep")


async def test_no_bad_input_gets_a_5xx_or_writes(
    api: httpx.AsyncClient, sweep_tenant: Tenant, session_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = sweep_tenant.headers
    customer = await api.post("/v1/customers", json={"name": "Swept"}, headers=headers)
    assert customer.status_code == 201, customer.text
    real = {"customer_id": customer.json()["id"], "organization_id": sweep_tenant.organization_id}
    before = await tenant_footprint(session_factory, sweep_tenant.organization_id)

    requests: list[tuple[str, str, str, dict[str, Any], tuple[int, str] | None]] = []
    for method, path, _, _ in BODY_ENDPOINTS:
        for name, body, content_headers, expected in BAD_BODIES:
            kwargs = {"content": body, "headers": content_headers}
            requests.append((f"{method} {path} [{name}]", method, fill(path, real), kwargs, expected))
    for method, path, _, _ in READ_ENDPOINTS:
        for name, query, bad_text in BAD_QUERIES:
            expected = (400, "invalid_characters") if bad_text else None
            requests.append((f"{method} {path} [{name}]", method, f"{fill(path, real)}?{query}", {}, expected))
    for method, path, path_params, _ in ENDPOINTS:  # writes too: a bad id is refused before anything runs
        for param in sorted(path_params):
            for name, bad in BAD_PATH_IDS:
                target = fill(path, {**real, param: bad})
                resource = path_id_resource(param)
                expected = (
                    (404, "resource_missing") if resource or "%00" in bad or "%FF" in bad or "%ED" in bad else None
                )
                requests.append((f"{method} {path} [{name} in {param}]", method, target, {}, expected))

    path_requests = len(requests) - len(BODY_ENDPOINTS) * len(BAD_BODIES) - len(READ_ENDPOINTS) * len(BAD_QUERIES)
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    limit = asyncio.Semaphore(8)

    async def send(label: str, method: str, url: str, kwargs: dict[str, Any], expected: tuple[int, str] | None) -> None:
        async with limit:
            kwargs = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
            response = await api.request(method, url, **kwargs)
        statuses[response.status_code] += 1
        check_answer(response, expected, problems, label)

    await asyncio.gather(*(send(*request) for request in requests))

    assert not problems, f"{len(problems)} of {len(requests)} answers wrong:\n" + "\n".join(sorted(problems)[:40])
    assert await tenant_footprint(session_factory, sweep_tenant.organization_id) == before
    with capsys.disabled():
        print(
            f"\ninput sweep: {len(BODY_ENDPOINTS)} write endpoints x {len(BAD_BODIES)} bodies + "
            f"{len(READ_ENDPOINTS)} read endpoints x {len(BAD_QUERIES)} queries + {path_requests} bad path ids = {len(requests)} requests, "
            f"statuses {dict(sorted(statuses.items()))}, 0 server errors"
        )
