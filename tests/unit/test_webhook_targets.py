"""The webhook SSRF guard (server/notify/targets.py) on real sockets: which addresses are refused,
the check made when a target is saved, the check at delivery (nothing is sent to an internal
address), and the pinned connection: it goes to the address that was checked, whatever the name
would resolve to, while TLS verifies the certificate for the URL's host name."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.config import Mode, Settings
from server.notify.targets import Resolved, address_refusal, pinned_transport, resolve_target, saved_target_problem
from server.notify.webhook import WebhookSender
from tests.harness.certs import make_authority
from tests.harness.receivers import http_receiver

REFUSED = [
    "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
    "255.255.255.255", "192.0.2.1", "fd00::1", "fc00::1", "fe80::1", "ff02::1", "::", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
]  # fmt: skip
ADMITTED = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


def _settings(base: Settings, **fields: Any) -> Settings:
    return base.model_copy(update=fields)  # the mode check of production keys is not the point here


@pytest.mark.parametrize("text", REFUSED)
def test_internal_addresses_are_refused(settings: Settings, text: str) -> None:
    why = address_refusal(ipaddress.ip_address(text), settings)
    assert why is not None and "internal address" in why and "TESSERA_WEBHOOK_ALLOWED_NETWORKS" in why


@pytest.mark.parametrize("text", ADMITTED)
def test_public_addresses_are_admitted(settings: Settings, text: str) -> None:
    assert address_refusal(ipaddress.ip_address(text), settings) is None


def test_loopback_only_outside_production_and_the_allow_list(settings: Settings) -> None:
    loopback, v6 = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
    assert address_refusal(loopback, settings) is None and address_refusal(v6, settings) is None
    production = _settings(settings, mode=Mode.PRODUCTION)
    assert address_refusal(loopback, production) is not None and address_refusal(v6, production) is not None
    allowed = _settings(
        production,
        webhook_allowed_networks=[ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd12:3456::/32")],
    )
    assert address_refusal(ipaddress.ip_address("10.20.3.4"), allowed) is None
    assert address_refusal(ipaddress.ip_address("fd12:3456::9"), allowed) is None
    assert address_refusal(ipaddress.ip_address("10.21.0.1"), allowed) is not None
    assert address_refusal(ipaddress.ip_address("169.254.169.254"), allowed) is not None


def test_the_allow_list_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("TESSERA_WEBHOOK_ALLOWED_NETWORKS", '["10.20.0.0/16", "fd12:3456::/32"]')
    read = Settings(**{k: v for k, v in settings.model_dump().items() if k != "webhook_allowed_networks"})
    assert [str(n) for n in read.webhook_allowed_networks] == ["10.20.0.0/16", "fd12:3456::/32"]


async def test_saving_a_target_resolves_and_checks_it(settings: Settings) -> None:
    production = _settings(settings, mode=Mode.PRODUCTION)
    assert "169.254.169.254 is an internal address" in str(
        await saved_target_problem("https://169.254.169.254/", settings)
    )
    assert await saved_target_problem("https://[fd00::1]:8443/x", settings) is not None
    # A name is judged by what it resolves to: localhost leads to loopback, refused in production.
    assert await saved_target_problem("https://localhost:8443/hook", settings) is None
    refused = await saved_target_problem("https://localhost:8443/hook", production)
    assert refused is not None and refused.startswith("localhost resolves to")
    # A name that does not resolve now is left to the delivery, which checks again.
    assert await saved_target_problem("https://nowhere.invalid/hook", production) is None


async def test_delivery_refuses_an_internal_address_and_sends_nothing(settings: Settings) -> None:
    production = _settings(settings, mode=Mode.PRODUCTION, webhook_backoff_seconds=0.01)
    with http_receiver() as receiver:
        url = f"https://localhost:{receiver.port}/hook"  # saved while localhost meant something else
        outcome = await WebhookSender(production).send(url, b"{}", "secret", "delivery-1")
        assert not outcome.delivered and outcome.attempts == 1, "an internal address is final, not retried"
        assert "refused: localhost resolves to" in outcome.error and "internal address" in outcome.error
        assert receiver.requests == []
        unresolved = await WebhookSender(production).send("https://nowhere.invalid/h", b"{}", "s", "delivery-2")
        assert not unresolved.delivered and "does not resolve" in unresolved.error
        assert unresolved.attempts == production.webhook_attempts, "DNS may come back: retried"


async def test_delivery_to_loopback_still_works_outside_production(settings: Settings) -> None:
    with http_receiver() as receiver:
        outcome = await WebhookSender(settings).send(receiver.url("/ok"), b"{}", "secret", "delivery-3")
        assert outcome.delivered, outcome.error
        assert [r.path for r in receiver.requests] == ["/ok"]


async def test_the_connection_goes_to_the_checked_address_whatever_the_name() -> None:
    """The name resolves nowhere (`.invalid`): the request still reaches the pinned address, and
    the Host header keeps the name."""
    with http_receiver() as receiver:
        target = Resolved("hooks.invalid", receiver.port, "127.0.0.1")
        async with httpx.AsyncClient(transport=pinned_transport(target)) as client:
            answer = await client.post(f"http://hooks.invalid:{receiver.port}/pinned", content=b"{}")
        assert answer.status_code == 204
        (request,) = receiver.requests
        assert request.path == "/pinned" and request.headers["host"] == f"hooks.invalid:{receiver.port}"
        # Another host or port through the same transport is refused: it was not checked.
        async with httpx.AsyncClient(transport=pinned_transport(target)) as client:
            with pytest.raises(httpx.ConnectError, match="not the webhook's checked target"):
                await client.post(f"http://elsewhere.invalid:{receiver.port}/x", content=b"{}")


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext, list[str]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for localhost from the test's CA."""
    authority = make_authority(tmp_path, "hooks")
    issued = authority.issue("localhost", server=True)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(issued.cert, issued.key)
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            seen.append(self.headers["host"])
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(authority.cert))
    try:
        yield server.server_address[1], client_context, seen
    finally:
        server.shutdown()
        server.server_close()


async def test_tls_verifies_the_url_host_not_the_pinned_address(
    tls_receiver: tuple[int, ssl.SSLContext, list[str]],
) -> None:
    port, context, seen = tls_receiver
    good = pinned_transport(Resolved("localhost", port, "127.0.0.1"), context)
    async with httpx.AsyncClient(transport=good) as client:
        answer = await client.post(f"https://localhost:{port}/hook", content=b"{}")
    assert answer.status_code == 204 and seen == [f"localhost:{port}"]
    # The same address under a name its certificate does not carry: verification fails.
    wrong = pinned_transport(Resolved("hooks.invalid", port, "127.0.0.1"), context)
    async with httpx.AsyncClient(transport=wrong) as client:
        with pytest.raises(httpx.ConnectError, match=r"certificate|hostname"):
            await client.post(f"https://hooks.invalid:{port}/hook", content=b"{}")
    assert len(seen) == 1


async def test_resolving_a_target_pins_the_first_admitted_address(settings: Settings) -> None:
    resolved = await resolve_target("https://localhost:9/x", settings)
    assert resolved.host == "localhost" and resolved.port == 9
    assert ipaddress.ip_address(resolved.address).is_loopback
