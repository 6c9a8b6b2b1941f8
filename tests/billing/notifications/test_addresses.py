"""The SSRF guard: outside the local stack an endpoint may not resolve to the platform's
own network (loopback, private, link-local such as the metadata service)."""

from __future__ import annotations

import pytest

from billing.errors import InvalidRequest
from billing.notifications.addresses import UnsafeUrl, check_saved_url, resolve_safe

REFUSED = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_internal_addresses_are_refused_outside_the_local_stack(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await resolve_safe(url, allow_private=False)


async def test_the_local_stack_may_call_its_own_machine() -> None:
    assert await resolve_safe("http://127.0.0.1:8080/hook", allow_private=True) == "127.0.0.1"
    assert await resolve_safe("https://93.184.215.14/hook", allow_private=False) == "93.184.215.14"


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "http:///nohost", "https://user:pw@example.com/", "javascript:alert(1)"]
)
async def test_what_is_not_an_http_url_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await resolve_safe(url, allow_private=True)


async def test_saving_an_unsafe_url_is_refused_in_stripes_shape() -> None:
    with pytest.raises(InvalidRequest) as refused:
        await check_saved_url("http://169.254.169.254/latest/meta-data/", allow_private=False)
    assert (refused.value.code, refused.value.param) == ("url_invalid", "url")
    assert "link-local" in refused.value.message
    await check_saved_url("http://127.0.0.1:4242/hook", allow_private=True)
