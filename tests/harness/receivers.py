"""Real receivers on loopback for report deliveries: an SMTP server (aiosmtpd) that keeps every
message it accepts, and an HTTP server that keeps every webhook request and can be told to answer
the first requests of a path with an error (to see retries)."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["HttpReceiver", "SmtpReceiver", "Webhook", "http_receiver", "smtp_receiver"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpReceiver:
    """aiosmtpd's handler: every accepted message, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        # Per message: whether it came over a connection upgraded with STARTTLS.
        self.over_tls: list[bool] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
            self.over_tls.append(session.ssl is not None)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]


@contextmanager
def smtp_receiver(tls: ssl.SSLContext | None = None) -> Iterator[tuple[SmtpReceiver, int]]:
    """An SMTP server on loopback; with `tls`, it offers STARTTLS with that context and refuses
    mail on a connection that was not upgraded."""
    handler = SmtpReceiver()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=tls is not None)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@dataclass
class Webhook:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    port: int
    requests: list[Webhook] = field(default_factory=list)
    # path -> how many more requests to answer with 503
    failures: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Webhook]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.requests.append(Webhook(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                failing = receiver.failures.get(self.path, 0)
                if failing:
                    receiver.failures[self.path] = failing - 1
            self.send_response(503 if failing else 204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
