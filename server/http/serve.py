"""Serving the HTTP face with hypercorn (HTTP/1.1 and h2c) on the gRPC server's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypercorn.asyncio import serve
from hypercorn.config import Config

from server.api.interceptors import _Wrapping
from server.http.app import HttpApi
from server.http.bindings import Router, bindings
from server.http.pipeline import wrapped_calls

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
    steps: Sequence[_Wrapping], services: Mapping[str, object], *, max_body_bytes: int, cors_origins: str
) -> HttpApi:
    found = bindings()
    origins = frozenset(o.strip() for o in cors_origins.split(",") if o.strip())
    return HttpApi(
        Router(found), wrapped_calls(found, steps, services), max_body_bytes=max_body_bytes, cors_origins=origins
    )


async def start_http(api: HttpApi, host: str, port: int, grace: float, *, reuse_port: bool = False) -> HttpServer:
    """Binds first (so a clash fails here and port 0 reports the port), then serves. With
    `reuse_port` the server's other processes bind the same port (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, reuse_port=reuse_port)
    bound = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None  # the pipeline's access log covers every rpc
    config.keep_alive_timeout = 75
    config.graceful_timeout = grace
    config.h2_max_concurrent_streams = 256
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(api, config, shutdown_trigger=stop.wait, mode="asgi"))  # type: ignore[arg-type]
    log.info("serving http", extra={"address": f"{host}:{bound}"})
    return HttpServer(bound, stop, task)
