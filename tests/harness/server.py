"""A real Tessera server on an ephemeral port, in a background thread with its own event loop
(used by the test session and by the benchmarks)."""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from server.config import Settings

T = TypeVar("T")
STOP_SECONDS = 30.0


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
        stopping = asyncio.run_coroutine_threadsafe(self.running.stop(grace=1.0), self.loop)
        try:
            stopping.result(timeout=STOP_SECONDS)
        except TimeoutError as exc:  # say where it waits: a hang read from a CI log is a hang found
            raise AssertionError(f"the server did not stop within {STOP_SECONDS} s\n{self._where_it_waits()}") from exc
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def _where_it_waits(self) -> str:
        """The server loop's tasks and every thread's stack (read from outside the loop, which
        is busy or stuck: a snapshot for a failure message, not for logic)."""
        tasks = [f"task {task.get_name()}: {_awaiting(task.get_coro())}" for task in asyncio.all_tasks(self.loop)]
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        threads = [
            f"thread {names.get(ident, ident)}:\n" + "".join(traceback.format_stack(frame, limit=12))
            for ident, frame in sys._current_frames().items()
        ]
        return "\n".join(tasks + threads)


def _awaiting(coro: Any) -> str:
    """Where a coroutine waits: each frame of its await chain, outermost first."""
    places = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            places.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(places) or "(not started)"


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
