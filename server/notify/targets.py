"""Where a webhook may connect: the guard against server-side request forgery.

A webhook URL is a user's input that makes the worker open a connection, so it must not reach
what sits inside the network: private, loopback, link-local (cloud metadata at 169.254.169.254),
shared (100.64.0.0/10), multicast, reserved and unique-local (fc00::/7) addresses are refused,
whatever name leads to them, unless `TESSERA_WEBHOOK_ALLOWED_NETWORKS` admits them. Outside
production loopback is admitted (tests and development run receivers there).

The check is made when a target is saved (a field violation) and again at every delivery on the
addresses the name resolves to then; the connection is made to the very address that was checked
(`pinned_transport`), so a name that resolves elsewhere a moment later (DNS rebinding) changes
nothing. TLS still verifies the certificate for the URL's host name, which is also the SNI and
the Host header.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from server.config import Mode, Settings

__all__ = ["Resolved", "TargetRefused", "address_refusal", "pinned_transport", "resolve_target", "saved_target_problem"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# How long saving a target waits for DNS before it leaves the check to the delivery.
SAVE_RESOLVE_TIMEOUT_SECONDS = 5.0


class TargetRefused(Exception):
    """The target resolves to an address webhooks may not reach (`final`), or does not resolve
    (worth another attempt)."""

    def __init__(self, message: str, *, final: bool = True) -> None:
        super().__init__(message)
        self.final = final


@dataclass(frozen=True)
class Resolved:
    host: str
    port: int
    address: str  # the one address the connection is made to


def address_refusal(address: IpAddress, settings: Settings) -> str | None:
    """Why a webhook may not connect to `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    if any(address in network for network in settings.webhook_allowed_networks):
        return None
    if address.is_loopback and settings.mode is not Mode.PRODUCTION:
        return None
    if address.is_multicast or not address.is_global:
        return (
            f"{address} is an internal address (private, loopback, link-local, multicast or reserved); "
            "TESSERA_WEBHOOK_ALLOWED_NETWORKS can admit it"
        )
    return None


def _port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return host, parts.port or (443 if parts.scheme == "https" else 80)


async def _addresses(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # The scope of a link-local IPv6 address ("fe80::1%eth0") is not part of the address.
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


async def resolve_target(url: str, settings: Settings) -> Resolved:
    """The address a delivery to `url` connects to: every address the host resolves to must be
    admitted (a name that mixes public and internal answers is refused), then the first is used."""
    host, port = _port(url)
    try:
        addresses = await _addresses(host, port)
    except OSError as exc:
        raise TargetRefused(f"{host} does not resolve: {exc}", final=False) from None
    if not addresses:
        raise TargetRefused(f"{host} does not resolve", final=False)
    for address in addresses:
        why = address_refusal(address, settings)
        if why is not None:
            raise TargetRefused(f"{host} resolves to {why}")
    return Resolved(host, port, str(addresses[0]))


async def saved_target_problem(url: str, settings: Settings) -> str | None:
    """The check when a target is saved: refused when the host is (or resolves to) an address
    webhooks may not reach. A name that does not resolve now is accepted: the delivery resolves
    and checks again, and refuses it then if it still does not resolve or leads inside."""
    host, port = _port(url)
    try:
        addresses = await asyncio.wait_for(_addresses(host, port), SAVE_RESOLVE_TIMEOUT_SECONDS)
    except (OSError, TimeoutError):
        return None
    for address in addresses:
        why = address_refusal(address, settings)
        if why is not None:
            return f"{host} resolves to {why}" if host != str(address) else why
    return None


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections to the one checked address, for the one host it was checked for."""

    def __init__(self, target: Resolved) -> None:
        self._target = target
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host != self._target.host or port != self._target.port:
            raise httpcore.ConnectError(f"{host}:{port} is not the webhook's checked target")
        return await self._inner.connect_tcp(
            self._target.address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, target: Resolved, context: ssl.SSLContext) -> None:
        super().__init__(verify=context)
        # httpx builds its pool without a way to pass a network backend: replace it with one
        # that has ours (same TLS context, HTTP/1.1).
        self._pool = httpcore.AsyncConnectionPool(ssl_context=context, network_backend=_PinnedBackend(target))


def pinned_transport(target: Resolved, context: ssl.SSLContext | None = None) -> httpx.AsyncBaseTransport:
    """An httpx transport that connects only to `target.address`, with TLS verified for (and SNI
    and Host naming) `target.host` (against the system's trust store unless `context`)."""
    return _PinnedTransport(target, context or ssl.create_default_context())
