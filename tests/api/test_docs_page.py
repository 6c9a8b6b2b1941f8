"""The API reference (`/schema`, `/schema/swagger`) renders offline: headless Chromium loads it
from the test API with every other host refused, and it shows the operations.

The browser is Debian's `chromium` (/usr/bin/chromium) driven by playwright-core from the root
package.json (tests/api/docs_page.mjs). The test fails, never skips, when either is missing.
The screenshots are kept at .data/test-artifacts/docs-schema*.png for a person to look at.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.docs import ASSETS_DIR
from tests.api.conftest import Tenant
from tests.api.test_dashboard import ARTIFACTS, CHROMIUM, _png_pixels

ROOT = Path(__file__).resolve().parents[2]
DOCS_PAGE = Path(__file__).with_name("docs_page.mjs")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


async def _open(url: str, screenshot: Path, *extra: str) -> dict[str, Any]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    assert (ROOT / "node_modules" / "playwright-core").is_dir(), "playwright-core is missing: npm ci (make test does)"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(DOCS_PAGE),
        url,
        str(screenshot),
        *extra,
        env={**os.environ, "CHROMIUM": CHROMIUM},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    return json.loads(stdout.decode().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
async def test_the_reference_renders_with_no_host_but_the_api(api: httpx.AsyncClient, path: str) -> None:
    base = str(api.base_url).rstrip("/")
    shot = ARTIFACTS / f"docs{path.replace('/', '-')}.png"
    page = await _open(base + path, shot)
    print(f"\n{path}: screenshot {shot}; {len(page['paths'])} operations shown, {len(page['requests'])} requests")

    assert page["status"] == 200
    assert page["refused"] == [], page["refused"]
    assert [url for url in page["requests"] if not url.startswith((f"{base}/", "data:"))] == []
    # the script and style came from the API, which served them
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"{base}/schema/swagger-ui/{asset}" in page["requests"]
    assert page["errors"] == [], page["errors"]
    assert (page["title"] or "").startswith("Billing API"), page["title"]
    assert "/v1/customers" in page["paths"] and "/v1/customers/{customer_id}" in page["paths"], page["paths"]
    spec = (await api.get("/schema/openapi.json")).json()
    operations = [(method, route) for route, item in spec["paths"].items() for method in item if method in METHODS]
    assert len(page["paths"]) == len(operations)  # every operation of the spec has its block

    width, height, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 1000)
    pixels = [row[x : x + 3] for row in rows[::4] for x in range(0, len(row), 12)]
    background = max(set(pixels), key=pixels.count)
    ink = sum(p != background for p in pixels) / len(pixels)
    # a page whose script did not load is one white field; the reference has text and coloured blocks
    assert len(set(pixels)) > 50 and ink > 0.05, (len(set(pixels)), ink)
    # the GET operations' blue (Swagger UI's #61affe) is drawn
    assert any(abs(p[0] - 0x61) < 12 and abs(p[1] - 0xAF) < 12 and abs(p[2] - 0xFE) < 12 for p in set(pixels))


@pytest.mark.unit
def test_the_vendored_swagger_ui_is_the_locked_npm_release() -> None:
    """api/docs_assets/ is a copy made by `npm run vendor` at the root: it must be the
    swagger-ui-dist release that package-lock.json pins, byte for byte."""
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["swagger-ui-dist"]
    assert lock["node_modules/swagger-ui-dist"]["version"] == pinned == lock[""]["dependencies"]["swagger-ui-dist"]
    built = ROOT / "node_modules" / "swagger-ui-dist"
    if not built.is_dir():
        pytest.fail(f"{built} is missing: run `npm ci` at the root (make test does)", pytrace=False)
    assert json.loads((built / "package.json").read_text())["version"] == pinned
    vendored = sorted(path.name for path in ASSETS_DIR.iterdir())
    assert {"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "LICENSE"} <= set(vendored)
    for name in vendored:
        assert (
            hashlib.sha256((built / name).read_bytes()).digest()
            == hashlib.sha256((ASSETS_DIR / name).read_bytes()).digest()
        ), name


async def test_authorize_then_try_it_out_sends_the_bearer_key(api: httpx.AsyncClient, tenant: Tenant) -> None:
    """Swagger UI's Authorize takes the secret key of the spec's bearer scheme, and "Try it out"
    on GET /v1/customers sends it: the API answers 200 to the page."""
    base = str(api.base_url).rstrip("/")
    page = await _open(f"{base}/schema", ARTIFACTS / "docs-schema-authorized.png", tenant.secret)
    assert page["authorizeButton"], "no Authorize button: the spec has no security scheme"
    assert page["refused"] == [] and page["errors"] == [], (page["refused"], page["errors"])
    tried = page["tried"]
    assert tried["url"].startswith(f"{base}/v1/customers"), tried
    assert tried["authorization"] == f"Bearer {tenant.secret}"
    assert tried["status"] == 200 and tried["shown"] == "200", tried
