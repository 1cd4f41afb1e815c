"""The worker process's runtime: its one Settings (from the environment, like the server's), and
per thread an event loop with the WorkerRuntime the composition root builds on it.

Tasks are sync Celery functions; the domain code is async. Each worker process (prefork child,
or the thread of an in-process test worker) gets its own event loop and, on it, its own engines,
Redis client and domain objects: nothing created before the fork (sockets, pools) is reused, and
async engines stay on the loop that created them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from server.app import WorkerRuntime, build_worker_runtime
from server.config import Settings
from workers import metrics

__all__ = ["close", "reset", "run", "settings"]

T = TypeVar("T")

settings = Settings()
_local = threading.local()


def _loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
    return loop


def run(work: Callable[[WorkerRuntime], Awaitable[T]]) -> T:
    """Runs async domain code on this thread's loop with this thread's WorkerRuntime."""
    loop = _loop()
    runtime: WorkerRuntime | None = getattr(_local, "runtime", None)
    if runtime is None:
        runtime = build_worker_runtime(
            settings,
            on_warmed=metrics.observe_widget_refresh,
            on_delivered=metrics.observe_delivery,
            on_evaluated=metrics.observe_alert_evaluation,
            on_transition=metrics.observe_alert_transition,
        )
        _local.runtime = runtime

    async def call() -> T:
        return await work(runtime)

    return loop.run_until_complete(call())


def reset() -> None:
    """Forget (without closing) what the parent process had: its sockets are not ours."""
    _local.__dict__.clear()


def close() -> None:
    runtime: WorkerRuntime | None = getattr(_local, "runtime", None)
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if runtime is not None and loop is not None and not loop.is_closed():
        loop.run_until_complete(runtime.close())
        loop.close()
    _local.__dict__.clear()
