"""The SSRF guard: an endpoint URL must not reach the platform's own network. Outside the
local stack a URL whose host resolves to a loopback, private, link-local (the cloud
metadata service, 169.254.169.254), multicast, reserved or unspecified address is
refused, when the endpoint is saved and again before each delivery (a name may resolve
elsewhere later). The delivery then connects to an address it checked, so a name that
changes between the check and the request (DNS rebinding) cannot slip through."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from billing.errors import InvalidRequest


class UnsafeUrl(Exception):
    """The URL may not be called; the message says why, for the endpoint's owner."""


def refused_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not be called, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refused_reason(address.ipv4_mapped)
    for reason, refused in (
        ("a loopback address", address.is_loopback),
        ("a link-local address (such as the cloud metadata service)", address.is_link_local),
        ("a private address", address.is_private),
        ("a multicast address", address.is_multicast),
        ("a reserved address", address.is_reserved or address.is_unspecified),
    ):
        if refused:
            return reason
    return None


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL with a host; UnsafeUrl otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("The URL must be http:// or https:// with a host.")
    if parts.username or parts.password:
        raise UnsafeUrl("The URL must not carry a user name or password.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise UnsafeUrl(f"The URL's port is not valid: {error}.") from error
    return parts.scheme, parts.hostname, port


async def resolve_safe(url: str, *, allow_private: bool) -> str:
    """An address of the URL's host that may be called (the first its resolver gives);
    UnsafeUrl when it does not resolve or, unless `allow_private`, when any of its
    addresses is refused."""
    _, host, port = parse_url(url)
    try:
        addresses = [ipaddress.ip_address(host)]  # a literal needs no resolver (nor its thread)
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise UnsafeUrl(f"The host {host} does not resolve: {error}.") from error
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            reason = refused_reason(address)
            if reason is not None:
                raise UnsafeUrl(
                    f"The host {host} resolves to {address}, {reason}: webhooks go to public addresses only."
                )
    return str(addresses[0])


async def check_saved_url(url: str, *, allow_private: bool) -> None:
    """The guard when an endpoint is saved: a URL that may not be called is refused with
    a Stripe-shaped error naming `url`, before any command is published."""
    try:
        await resolve_safe(url, allow_private=allow_private)
    except UnsafeUrl as error:
        raise InvalidRequest(str(error), code="url_invalid", param="url") from error
