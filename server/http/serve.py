"""Serving the HTTP face with hypercorn (HTTP/1.1 and h2c) on the gRPC server's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from server import tracing
from server.api.interceptors import _Wrapping
from server.audit.log import AuditLog
from server.http.app import HttpApi
from server.http.bindings import Router, bindings
from server.http.pipeline import wrapped_calls
from server.http.refusals import UnroutedRefusals
from server.metrics import Metrics
from server.tls import TlsFiles

log = logging.getLogger("tessera.http")


@dataclass
class HttpServer:
    port: int
    _stop: asyncio.Event
    _task: asyncio.Task[None]

    async def stop(self, grace: float) -> None:
        self._stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._task, timeout=grace + 5)


def build_api(
    steps: Sequence[_Wrapping],
    services: Mapping[str, object],
    *,
    max_body_bytes: int,
    cors_origins: str,
    audit: AuditLog,
    metrics: Metrics | None,
) -> HttpApi:
    found = bindings()
    origins = frozenset(o.strip() for o in cors_origins.split(",") if o.strip())
    return HttpApi(
        Router(found),
        wrapped_calls(found, steps, services),
        max_body_bytes=max_body_bytes,
        cors_origins=origins,
        unrouted=UnroutedRefusals(audit, metrics),
    )


async def start_http(
    api: HttpApi,
    host: str,
    port: int,
    grace: float,
    tls: TlsFiles | None = None,
    *,
    traced: bool = False,
    reuse_port: bool = False,
    max_concurrent_streams: int = 1000,
) -> HttpServer:
    """Binds first (so a clash fails here and port 0 reports the port), then serves: HTTPS
    (HTTP/2 by ALPN, and HTTP/1.1) with the gRPC port's certificate when `tls` is given, client
    certificates required when it names a client CA; else HTTP/1.1 and h2c. With `reuse_port` the
    server's other processes bind the same port (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, reuse_port=reuse_port)
    bound = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None  # the pipeline's access log covers every rpc
    # Its own lines through the process's handler (JSON in production): by default hypercorn gave
    # this logger a handler of its own, so each line came twice, once in its plain format.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75
    config.graceful_timeout = grace
    # What one HTTP/2 connection may have open at once (the gRPC port's same bound).
    config.h2_max_concurrent_streams = max_concurrent_streams
    # A request head as large as HTTP/2 allows (hypercorn's h2 default) reaches the app over
    # HTTP/1.1 too, so long query strings get a google.rpc.Status naming the field; only heads
    # past 64 KiB are refused by hypercorn itself (a bare 431).
    config.h11_max_incomplete_size = config.h2_max_header_list_size
    if tls is not None:
        config.certfile, config.keyfile = str(tls.cert), str(tls.key)
        if tls.client_ca is not None:
            config.ca_certs = str(tls.client_ca)
            config.verify_mode = ssl.CERT_REQUIRED
    stop = asyncio.Event()
    app: Any = tracing.http_middleware(api) if traced else api
    task = asyncio.ensure_future(serve(app, config, shutdown_trigger=stop.wait, mode="asgi"))
    log.info("serving http", extra={"address": f"{host}:{bound}", "tls": tls is not None})
    return HttpServer(bound, stop, task)
