"""A real Tessera server on an ephemeral port, in a background thread with its own event loop
(used by the test session and by the benchmarks)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from server.config import Settings

T = TypeVar("T")


@dataclass
class ServerHandle:
    address: str
    port: int
    loop: asyncio.AbstractEventLoop
    running: Any
    thread: threading.Thread

    @property
    def http_address(self) -> str | None:
        """host:port of the HTTP face (REST, Connect, gRPC-Web); None when it is off."""
        port = self.running.http_port
        return f"127.0.0.1:{port}" if port else None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs a coroutine on the server's loop (for callers that poke the app directly)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(grace=1.0), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def start_in_thread(
    settings: Settings, loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
) -> ServerHandle:
    """`loop_factory`: server.event_loop.new_loop for a loop that load shedding can meter (as
    `tessera serve` runs); the default loop leaves saturation shedding off."""
    from server.grpc_server import RunningServer, start_server

    loop = loop_factory()
    started: Future[RunningServer] = Future()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(start_server(settings)))
        except BaseException as exc:  # surface start-up failures to the caller
            started.set_exception(exc)
            return
        loop.run_forever()

    thread = threading.Thread(target=run, name="tessera-server", daemon=True)
    thread.start()
    running = started.result(timeout=60)
    return ServerHandle(f"127.0.0.1:{running.port}", running.port, loop, running, thread)
