"""nosniff and no-store on every answer (handlers, guards, errors), and the pages' policy."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from api.security_headers import content_security_policy
from tests.api.conftest import TenantClient

CARD = "4242424242424242"


def assert_base_headers(response: httpx.Response) -> None:
    assert response.headers.get("x-content-type-options") == "nosniff", (response.request.url, response.headers)
    assert response.headers.get("cache-control"), (response.request.url, response.headers)


async def test_every_kind_of_answer_carries_nosniff_and_no_store(
    api: httpx.AsyncClient, api_client: TenantClient
) -> None:
    answers = [
        await api_client.get("/v1/customers"),  # a handler
        await api.get("/v1/customers"),  # 401 from authentication
        await api_client.get("/v1/customers/cus_%00"),  # the input rules' refusal
        await api_client.post("/v1/customers", json={"metadata": {"n": CARD}}),  # the card guard's
        await api_client.get("/v1/nothing-here"),  # 404 from the router
        await api.get("/health"),
    ]
    assert [answer.status_code for answer in answers] == [200, 401, 404, 400, 404, 200]
    for answer in answers:
        assert_base_headers(answer)
        assert answer.headers["cache-control"] == "no-store"


async def test_a_new_secret_is_never_cached(api_client: TenantClient) -> None:
    created = await api_client.post("/v1/api-keys", json={"name": "cache check"})
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("sk_"), created.text
    assert created.headers["cache-control"] == "no-store"


async def test_pages_run_only_their_own_scripts(api: httpx.AsyncClient) -> None:
    for path in ("/schema", "/schema/swagger", "/dashboard"):
        page = await api.get(path, follow_redirects=True)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), (
            path,
            page.status_code,
        )
        assert_base_headers(page)
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        allowed = set(re.findall(r"'sha256-([^']+)'", policy))
        inline = re.findall(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page.content, re.DOTALL)
        # exactly the page's own inline scripts, by hash: an injected one would not run
        assert allowed == {base64.b64encode(hashlib.sha256(script).digest()).decode() for script in inline}, path
    assets = await api.get("/schema/swagger-ui/swagger-ui-bundle.js")
    assert assets.status_code == 200 and "content-security-policy" not in assets.headers
    assert_base_headers(assets)


@pytest.mark.unit
def test_the_policy_hashes_inline_scripts_and_nothing_else() -> None:
    page = b"<html><script src='/a.js'></script><script>run()</script><SCRIPT type='x'>b()</SCRIPT></html>"
    policy = content_security_policy(page).decode()
    expected = {
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'" for script in (b"run()", b"b()")
    }
    script_src = next(part for part in policy.split("; ") if part.startswith("script-src"))
    assert set(script_src.split()[2:]) == expected
    assert "'unsafe-inline'" not in script_src
    assert content_security_policy(b"<p>no scripts</p>").decode().split("; ")[1] == "script-src 'self'"
