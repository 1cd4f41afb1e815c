"""The server's event loop, with a meter of how long it sat idle waiting for I/O.

Why: grpc.aio accepts a call from grpc's C core only when the loop gets round to it (one call per
method per few loop iterations). A loop that has always something ready therefore leaves new
calls queued inside the core, where no Python step can see or time them (bench/load_ceiling.py:
seconds of wait with a few dozen calls in flight). How much of its time the loop spends idle in
`select` is the one figure that says, from Python, that this queue is building: none.

`new_loop()` makes a standard SelectorEventLoop around a selector that adds up the time spent
blocked in `select` (a zero-timeout poll, what the loop does while callbacks are ready, is not
idle time). `idle_seconds(loop)` reads it; None for a loop this module did not make (the test
harness's in-thread servers), which turns saturation shedding off there."""

from __future__ import annotations

import asyncio
import selectors
import time
import weakref
from typing import Any

__all__ = ["idle_seconds", "new_loop", "run"]

_meters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _IdleMeteredSelector] = weakref.WeakKeyDictionary()


class _IdleMeteredSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.idle = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            result: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
            return result
        started = time.perf_counter()
        try:
            result = super().select(timeout)
            return result
        finally:
            self.idle += time.perf_counter() - started


def new_loop() -> asyncio.AbstractEventLoop:
    """A SelectorEventLoop whose idle time `idle_seconds` reports."""
    selector = _IdleMeteredSelector()
    loop = asyncio.SelectorEventLoop(selector)
    _meters[loop] = selector
    return loop


def idle_seconds(loop: asyncio.AbstractEventLoop) -> float | None:
    """Seconds `loop` has spent blocked waiting for I/O so far; None when it is not metered."""
    meter = _meters.get(loop)
    return meter.idle if meter is not None else None


def run(main: Any) -> Any:
    """asyncio.run on a metered loop."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(main)
