"""The card-data guard over EVERY write endpoint of the app, through the real server.

The endpoints are read from the app's own routes, so an endpoint added later is covered
without touching this file. A card number anywhere in a write body is answered 400
card_data_not_allowed with the field's path, before authentication, validation, logging
or publishing; the digits appear nowhere: not in the answer, not in a log line, not in
the database.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar.routes import HTTPRoute

from api.app import create_app
from api.card_guard import WRITE_METHODS, card_param, request_line_param
from contracts.settings import get_settings
from tests.api.conftest import TenantClient, assert_error, commands_applied

CARD = "4242 4242 4242 4242"
DIGITS = CARD.replace(" ", "")
_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def write_endpoints() -> list[tuple[str, str]]:
    """(method, path with its parameters filled) of every POST/PUT/PATCH route of the app."""
    app = create_app(get_settings())  # routes only: the lifespan does not run
    endpoints = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method in sorted(set(route.methods) & WRITE_METHODS):
            endpoints.append((method, _PATH_PARAM.sub(lambda m: f"{m.group(1)}_x1", route.path)))
    return endpoints


WRITE_ENDPOINTS = write_endpoints()


@pytest.mark.unit
def test_the_app_has_write_endpoints_to_guard() -> None:
    paths = {path for _, path in WRITE_ENDPOINTS}
    # a sample, so that a broken route listing cannot make the test below vacuous
    assert {"/v1/customers", "/v1/setup-intents", "/v1/stripe-account"} <= paths
    assert "/v1/webhooks/stripe/organization_id_x1" in paths
    assert len(WRITE_ENDPOINTS) >= 10


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log record of the process (API and consumer run in it) at DEBUG while the test
    runs, with the Kafka client at WARNING as `billing api|consume|dev` set it (cli._logging:
    at DEBUG aiokafka prints every message it sends, whatever it holds)."""
    recorder = Recorder()
    root, kafka = logging.getLogger(), logging.getLogger("aiokafka")
    levels = root.level, kafka.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    kafka.setLevel(logging.WARNING)
    try:
        yield recorder.lines
    finally:
        root.removeHandler(recorder)
        root.setLevel(levels[0])
        kafka.setLevel(levels[1])


@pytest.mark.parametrize(("method", "path"), WRITE_ENDPOINTS, ids=[f"{m} {p}" for m, p in WRITE_ENDPOINTS])
async def test_every_write_endpoint_refuses_card_numbers(
    api_client: TenantClient, session_factory: Any, log_lines: list[str], method: str, path: str
) -> None:
    before = await commands_applied(session_factory, api_client.tenant.organization_id)
    bodies = [
        ({"metadata": {"note": f"card {CARD} exp 12/34"}}, "metadata[note]"),
        ({"items": [{"description": "ok"}, {"description": DIGITS}]}, "items[1][description]"),
        ({"amount": int(DIGITS)}, "amount"),
    ]
    for body, param in bodies:
        for client_request in (api_client.request, api_client.client.request):  # with the key, and with none
            response = await client_request(method, path, json=body)
            error = assert_error(response, 400, "card_data_not_allowed", param)
            assert DIGITS not in response.text and CARD not in response.text
            assert "Stripe.js" in error["message"]
    assert await commands_applied(session_factory, api_client.tenant.organization_id) == before
    logged = "\n".join(log_lines)
    assert DIGITS not in logged and CARD not in logged


@pytest.mark.parametrize(
    ("content", "content_type", "param"),
    [
        (json.dumps({"name": "Jenny", "metadata": {"pan": "3782-822463-10005"}}), "application/json", "metadata[pan]"),
        (json.dumps({"metadata": {DIGITS: "as a key"}}), "application/json", "metadata"),  # the key is not echoed
        (json.dumps({DIGITS: 1}), "application/json", None),
        (json.dumps([{"name": "x"}, {"name": "5555555555554444"}]), "application/json", "[1][name]"),
        (json.dumps(DIGITS), "application/json", None),
        ('{"balance": 4242424242424242.0}', "application/json", "balance"),
        ('{"name": "' + DIGITS + '",', "application/json", None),  # not even valid JSON
        (f"name=Jenny&metadata%5Bcard%5D={DIGITS}", "application/x-www-form-urlencoded", "metadata[card]"),
        (
            f'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n{CARD}\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            None,
        ),
        (json.dumps({"name": DIGITS}), "text/plain", "name"),
        # a card in fullwidth (or any Unicode) digits is still a card
        (json.dumps({"name": "４２４２ ４２４２ ４２４２ ４２４２"}, ensure_ascii=False), "application/json", "name"),
        (json.dumps({"metadata": {"n": "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"}}), "application/json", "metadata[n]"),
    ],
)
async def test_body_shapes(api_client: TenantClient, content: str, content_type: str, param: str | None) -> None:
    response = await api_client.post("/v1/customers", content=content, headers={"Content-Type": content_type})
    assert_error(response, 400, "card_data_not_allowed", param)
    assert DIGITS not in response.text


async def test_a_body_sent_in_chunks_is_read_whole(api_client: TenantClient) -> None:
    body = json.dumps({"name": "Chunky", "description": "x" * 900 + " " + DIGITS}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 47):  # the number is split between two chunks
            yield body[start : start + 47]

    response = await api_client.post("/v1/customers", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(response, 400, "card_data_not_allowed", "description")

    clean = json.dumps({"name": "Chunky", "description": "y" * 900}).encode()

    async def clean_chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(clean), 97):
            yield clean[start : start + 97]

    created = await api_client.post(
        "/v1/customers", content=clean_chunks(), headers={"Content-Type": "application/json"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["description"] == "y" * 900  # handed on byte for byte


@pytest.mark.parametrize(
    "value",
    [
        "4242424242424241",  # fails Luhn
        "+1 415 555 2671",  # a phone number
        "order 2026-01-02 12:30 #123456",
        "pm_1Pgag7B7WZ01zgkWabcdefgh",
        "12345678901234567890123",  # an id of 23 digits: longer than any card
        "４２４２４２４２４２４２４２４１",  # fullwidth, fails Luhn
    ],
)
async def test_what_is_not_a_card_passes(api_client: TenantClient, value: str) -> None:
    response = await api_client.post("/v1/customers", json={"description": value})
    assert response.status_code == 201, response.text
    assert response.json()["description"] == value


def every_endpoint() -> list[tuple[str, str]]:
    """(method, path) of every route of the app, its path parameters filled with a card number."""
    app = create_app(get_settings())  # routes only: the lifespan does not run
    return [
        (method, _PATH_PARAM.sub(DIGITS, route.path))
        for route in app.routes
        if isinstance(route, HTTPRoute) and _PATH_PARAM.search(route.path)
        for method in sorted(set(route.methods) - {"HEAD", "OPTIONS"})
    ]


async def test_a_card_outside_the_body_is_refused_on_every_route(
    api_client: TenantClient, session_factory: Any, log_lines: list[str]
) -> None:
    """In the query string, a path id or the Idempotency-Key (kept with the command and sent
    through Kafka): refused before anything reads it, on reads too."""
    before = await commands_applied(session_factory, api_client.tenant.organization_id)
    with_path_ids = every_endpoint()
    assert len(with_path_ids) >= 10 and ("GET", f"/v1/customers/{DIGITS}") in with_path_ids
    asked = 0
    for method, path in with_path_ids:
        response = await api_client.request(method, path, json={} if method in WRITE_METHODS else None)
        assert_error(response, 400, "card_data_not_allowed", None)
        asked += 1
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"params": {"email": f"{CARD}@example.com"}}, "email"),
        ({"params": {"starting_after": "4242.4242.4242.4242"}}, "starting_after"),
        ({"params": {"q": "4242\u200b4242\u200b4242\u200b4242"}}, "q"),
        ({"headers": {"Idempotency-Key": f"order-{CARD}"}}, None),
    ]
    for method, path in [("GET", "/v1/customers"), ("POST", "/v1/customers"), ("GET", "/v1/products")]:
        for request, param in cases:
            body = {"json": {"name": "x"}} if method == "POST" else {}
            response = await api_client.request(method, path, **request, **body)
            assert_error(response, 400, "card_data_not_allowed", param)
            assert DIGITS not in response.text
            asked += 1
    assert asked >= 22
    assert await commands_applied(session_factory, api_client.tenant.organization_id) == before
    logged = "\n".join(log_lines)
    assert DIGITS not in logged and CARD not in logged


async def test_oversized_bodies_are_not_the_guards(api_client: TenantClient) -> None:
    assert (await api_client.get("/v1/customers", params={"email": "a@example.com"})).status_code == 200
    # a body over the app's limit is refused by the app (413), unread
    huge = json.dumps({"description": "x" * 300_000 + DIGITS})
    response = await api_client.post("/v1/customers", content=huge, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "request_too_large", None)


@pytest.mark.unit
def test_card_param_directly() -> None:
    assert card_param(b"", "application/json") is False
    assert card_param(b'{"a": "b"}', None) is False
    assert card_param(json.dumps({"a": {"b": [DIGITS]}}).encode(), None) == "a[b][0]"
    assert card_param(DIGITS.encode(), "text/plain") is True
    assert card_param(b"a=1&b=2", "application/x-www-form-urlencoded") is False


@pytest.mark.unit
def test_request_line_param_directly() -> None:
    assert (
        request_line_param({"type": "http", "path": "/v1/customers", "query_string": b"limit=3", "headers": []})
        is False
    )
    assert (
        request_line_param(
            {"type": "http", "path": "/v1/customers", "query_string": f"x={DIGITS}".encode(), "headers": []}
        )
        == "x"
    )
    assert (
        request_line_param({"type": "http", "path": f"/v1/customers/{DIGITS}", "query_string": b"", "headers": []})
        is True
    )
    headers = [(b"idempotency-key", DIGITS.encode())]
    assert request_line_param({"type": "http", "path": "/", "query_string": b"", "headers": headers}) is True
