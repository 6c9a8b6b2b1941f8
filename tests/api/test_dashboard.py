"""The dashboard: sign-in (form and one-time link, cookie only), its data endpoint with
seeded usage, and a real render in headless Chromium with a screenshot.

Chromium: Debian's `chromium` (/usr/bin/chromium; `apt-get install -y chromium`). The
test fails, never skips, when it is missing. The screenshot is kept at
.data/test-artifacts/dashboard.png for a person to look at.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import struct
import tempfile
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.dashboard import STATIC_DIR
from api.dashboard.session import COOKIE
from contracts.settings import get_settings
from tests.api.conftest import Tenant, TenantClient, new_tenant, serve
from tests.api.test_usage_events import (  # noqa: F401  (fixtures)
    AnalyticsStack,
    analytics_api,
    create_customer,
    create_meter,
    event,
    iso,
    send,
    wait_usage,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = get_settings().data_dir / "test-artifacts"


@pytest.fixture(scope="module")
async def seeded(analytics_api: AnalyticsStack, session_factory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A fresh organization with two meters, a metered price, three customers and usage."""
    tenant = await new_tenant(session_factory, "Dashboard Org")
    client = TenantClient(analytics_api.client, tenant)
    calls = await create_meter(client, f"api_calls_{uuid.uuid4().hex[:6]}", displayName="API calls", aggregation="sum")
    storage = await create_meter(client, f"storage_{uuid.uuid4().hex[:6]}", displayName="Storage GB", aggregation="max")
    product = (await client.post("/v1/products", json={"name": "Pro API"})).json()
    price = await client.post(
        "/v1/prices",
        json={
            "product": product["id"],
            "currency": "usd",
            "unitAmountDecimal": "0.5",
            "recurring": {"interval": "month", "usageType": "metered", "meter": calls["id"]},
        },
    )
    assert price.status_code == 201, price.text
    alice = await create_customer(client, "Alice Anders")
    bob = await create_customer(client, "Bob Brown")
    carol = await create_customer(client, "Carol Chen")
    now = datetime.now(UTC)
    events = []
    for days_ago, customer, value in [
        (0, alice, 120),
        (1, alice, 80),
        (2, bob, 60),
        (3, carol, 15),
        (5, bob, 40),
        (6, alice, "12.5"),
    ]:
        events.append(
            event(calls["eventName"], customer, value, timestamp=iso(now - timedelta(days=days_ago, minutes=5)))
        )
    events += [
        event(storage["eventName"], alice, 7, timestamp=iso(now - timedelta(days=1))),
        event(storage["eventName"], bob, 3),
    ]
    assert (await send(client, *events)).status_code == 202
    await wait_usage(client, {"meter": calls["id"], "from": iso(now - timedelta(days=8))}, 6)
    await wait_usage(client, {"meter": storage["id"], "from": iso(now - timedelta(days=8))}, 2)
    return {
        "tenant": tenant,
        "client": client,
        "calls": calls,
        "storage": storage,
        "product": product,
        "customers": {"alice": alice, "bob": bob, "carol": carol},
    }


async def _signed_in(api: httpx.AsyncClient, tenant: Tenant) -> httpx.Cookies:
    response = await api.post("/dashboard/login", data={"key": tenant.secret})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age=3600"):
        assert attribute.lower() in cookie.lower(), cookie
    assert tenant.secret not in cookie
    return httpx.Cookies({COOKIE: response.cookies[COOKIE]})


async def _wait_interactions(api: httpx.AsyncClient, cookies: httpx.Cookies, wanted: dict[str, int]) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            body = (await api.get("/dashboard/api/overview", params={"days": 7}, cookies=cookies)).json()
            seen = {row["type"]: row["count"] for row in body["interactions"]}
            if all(seen.get(t, 0) >= n for t, n in wanted.items()):
                return body
            await asyncio.sleep(0.2)


async def test_sign_in_and_the_data_endpoint(
    analytics_api: AnalyticsStack, seeded: dict[str, Any], usage_tenant_b: Tenant
) -> None:
    api = analytics_api.client
    page = await api.get("/dashboard")
    assert page.status_code == 200 and 'action="/dashboard/login"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (await api.post("/dashboard/login", data={"key": "sk_wrong"})).status_code == 401
    assert (await api.get("/dashboard/api/overview")).status_code == 401
    assert (await api.get("/dashboard/api/overview", cookies={COOKIE: "forged.token"})).status_code == 401

    cookies = await _signed_in(api, seeded["tenant"])
    assert "c-usage" in (await api.get("/dashboard", cookies=cookies)).text
    body = await _wait_interactions(api, cookies, {"customer.created": 3, "meter.created": 2})
    calls, storage, customers = seeded["calls"], seeded["storage"], seeded["customers"]
    assert body["totals"]["eventCount"] == 8 and body["totals"]["customers"] == 3
    assert body["selectedMeter"] == calls["eventName"]
    assert [(r["customerId"], r["name"], r["value"]) for r in body["topCustomers"]] == [
        (customers["alice"], "Alice Anders", "212.5"),
        (customers["bob"], "Bob Brown", "100"),
        (customers["carol"], "Carol Chen", "15"),
    ]
    series = {s["eventName"]: s for s in body["usageOverTime"]}
    assert sum(float(p["value"]) for p in series[calls["eventName"]]["points"]) == 327.5
    assert series[storage["eventName"]]["aggregation"] == "max"
    assert [(p["name"], p["eventCount"]) for p in body["usageByProduct"]] == [("Pro API", 6), ("(no product)", 2)]
    top_storage = (
        await api.get("/dashboard/api/overview", params={"days": 7, "meter": storage["eventName"]}, cookies=cookies)
    ).json()
    assert [(r["customerId"], r["value"]) for r in top_storage["topCustomers"]] == [
        (customers["alice"], "7"),
        (customers["bob"], "3"),
    ]

    # another organization's session sees none of it
    other = await _signed_in(api, usage_tenant_b)
    theirs = (await api.get("/dashboard/api/overview", params={"days": 7}, cookies=other)).json()
    assert calls["eventName"] not in str(theirs) and customers["alice"] not in str(theirs)

    # signing out clears the cookie
    logout = await api.post("/dashboard/logout", cookies=cookies)
    assert logout.status_code == 303 and "max-age=0" in logout.headers["set-cookie"].lower()


@pytest.fixture
async def usage_tenant_b(session_factory) -> Tenant:  # type: ignore[no-untyped-def]
    return await new_tenant(session_factory, "Dashboard Other")


async def test_sign_in_links_work_once_and_need_a_key(analytics_api: AnalyticsStack, seeded: dict[str, Any]) -> None:
    api, client = analytics_api.client, seeded["client"]
    assert (await api.post("/v1/dashboard/sessions")).status_code == 401
    link = (await client.post("/v1/dashboard/sessions")).json()
    assert link["url"].startswith("/dashboard/login?token=") and seeded["tenant"].secret not in link["url"]
    first = await api.get(link["url"])
    assert first.status_code == 303 and COOKIE in first.cookies
    assert (await api.get(link["url"])).status_code == 401  # used already
    tampered = link["url"][:-3] + ("AAA" if not link["url"].endswith("AAA") else "BBB")
    assert (await api.get(tampered)).status_code == 401


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of raw pixel bytes) of an 8-bit RGB/RGBA PNG (no PIL here)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = previous[x]
            c = previous[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else b"".join(bytes(line[i : i + 3]) for i in range(0, stride, 4)))
        previous = line
    return width, height, rows


async def _chromium(*args: str) -> bytes:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--window-size=1400,1000",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
        return stdout


async def test_the_dashboard_renders_in_headless_chromium(
    analytics_api: AnalyticsStack, seeded: dict[str, Any]
) -> None:
    api, client = analytics_api.client, seeded["client"]
    base = str(api.base_url).rstrip("/")
    cookies = await _signed_in(api, seeded["tenant"])
    await _wait_interactions(api, cookies, {"customer.created": 3})

    # the page as the browser leaves it once its scripts ran: the seeded values are in it
    link = (await client.post("/v1/dashboard/sessions")).json()["url"]
    dom = (await _chromium("--dump-dom", base + link)).decode()
    assert 'data-state="ready"' in dom, dom[-3000:]
    for value in (seeded["customers"]["alice"], "Alice Anders", "212.5", "Bob Brown", "Carol Chen"):
        assert value in dom
    assert '<span class="value" id="t-events">8</span>' in dom

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    link = (await client.post("/v1/dashboard/sessions")).json()["url"]
    await _chromium(f"--screenshot={shot}", "--hide-scrollbars", base + link)
    width, height, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 1000)
    pixels = [row[x : x + 3] for row in rows[::4] for x in range(0, len(row), 12)]
    background = max(set(pixels), key=pixels.count)
    ink = sum(p != background for p in pixels) / len(pixels)
    assert len(set(pixels)) > 50 and ink > 0.1, (len(set(pixels)), ink)
    # the chart colours are drawn (the line of the first meter, the bars of the second chart)
    assert bytes.fromhex("635bff") in set(pixels) or any(
        abs(p[0] - 0x63) < 8 and abs(p[2] - 0xFF) < 8 and p[1] < 0x70 for p in set(pixels)
    )


@pytest.mark.unit
def test_the_vendored_chart_js_is_the_locked_npm_release() -> None:
    """static/vendor/ is a copy made by `npm run vendor` in api/dashboard: it must be the
    chart.js release that package-lock.json pins, byte for byte the npm build."""
    vendored = (STATIC_DIR / "vendor" / "chart.umd.min.js").read_bytes()
    locked = json.loads((STATIC_DIR.parent / "package-lock.json").read_text())["packages"]["node_modules/chart.js"][
        "version"
    ]
    assert f"Chart.js v{locked}".encode() in vendored[:200], (locked, vendored[:60])
    built = STATIC_DIR.parent / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
    if not built.exists():
        pytest.fail(f"{built} is missing: run `npm ci` in api/dashboard (make test does)", pytrace=False)
    assert hashlib.sha256(built.read_bytes()).digest() == hashlib.sha256(vendored).digest()


async def test_every_api_process_accepts_the_sessions_of_another(command_consumer, session_factory) -> None:  # type: ignore[no-untyped-def]
    # the signing key comes from the shared secrets keyring, not from the process
    tenant = await new_tenant(session_factory, "Dashboard two processes")
    async with serve(get_settings()) as first, serve(get_settings()) as second:
        cookie = (await _signed_in(first, tenant))[COOKIE]
        second.cookies.set(COOKIE, cookie)
        page = await second.get("/dashboard")
        assert page.status_code == 200 and 'id="t-events"' in page.text and 'name="key"' not in page.text
        # and a cookie signed with another key is refused
        second.cookies.set(COOKIE, cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB"))
        assert 'name="key"' in (await second.get("/dashboard")).text
        second.cookies.clear()
        link = (await TenantClient(first, tenant).post("/v1/dashboard/sessions")).json()["url"]
        opened = await second.get(link)
        assert opened.status_code == 303 and COOKIE in opened.cookies
