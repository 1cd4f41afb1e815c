"""Load shedding: past `max_in_flight_rpcs` unary rpcs running at once in this process, a new one
is refused at once with RESOURCE_EXHAUSTED and RetryInfo (reason SERVER_OVERLOADED), so overload
shows as fast, retryable refusals instead of a queue that grows until every call times out.

With `max_loop_lag` (`TESSERA_SHED_LOOP_LAG_MS`, off by default) a call is also refused while the
process's event loop runs late by more than that: a timer that should fire every 10 ms is checked
for how late it fired, which is how long a ready call waits for the CPU. The in-flight cap alone
does not see that wait: under overload calls queue inside grpc before any step runs (measured by
bench/load_ceiling.py: p50 in seconds with a few dozen calls in flight), and a refusal costs a
fraction of an answer, so refusing while the loop is late lets it catch up.

It runs right after error mapping: before audit and authentication, so a refusal costs almost
nothing (shed calls are counted by the access log's metrics, `code="RESOURCE_EXHAUSTED"`, not
audited: they read and change nothing). Health and reflection are never shed, nor are streams
(watches and downloads are long and mostly idle; their cost is the connection's)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from prometheus_client import Gauge

from server.api.context import Ctx
from server.api.interceptors import PUBLIC_SERVICES, Unary, _Wrapping
from server.errors import ResourceExhausted

__all__ = ["LoadShedding"]


class LoadShedding(_Wrapping):
    def __init__(
        self, max_in_flight: int, retry_after: float, gauge: Gauge | None = None, max_loop_lag: float = 0.0
    ) -> None:
        self._max = max_in_flight
        self._retry_after = retry_after
        self._gauge = gauge
        self._lag = LoopLag() if max_loop_lag > 0 else None
        self._max_lag = max_loop_lag
        self.in_flight = 0
        self.shed = 0

    def _refuse(self, why: str) -> ResourceExhausted:
        self.shed += 1
        return ResourceExhausted(
            f"the server is at capacity ({why}); retry shortly",
            reason="SERVER_OVERLOADED",
            # Jittered, so the refused callers do not all come back at the same moment.
            retry_after=self._retry_after * (1 + random.random()),
        )

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        if (self._max <= 0 and self._lag is None) or method.startswith(PUBLIC_SERVICES):
            return behaviour
        cap = self._max if self._max > 0 else float("inf")

        async def capped(request: Any, ctx: Ctx) -> Any:
            if self.in_flight >= cap:
                raise self._refuse(f"{self._max} calls in flight")
            if self._lag is not None and self._lag.late() > self._max_lag:
                raise self._refuse(f"event loop {self._lag.late() * 1000:.0f} ms late")
            self.in_flight += 1
            if self._gauge is not None:
                self._gauge.inc()
            try:
                return await behaviour(request, ctx)
            finally:
                self.in_flight -= 1
                if self._gauge is not None:
                    self._gauge.dec()

        return capped


class LoopLag:
    """How late this process's event loop runs: a timer re-armed every INTERVAL seconds notes how
    late it fired. The figure decays by half per tick, so one slow tick does not shed for long.
    Started on the first call (it needs the running loop); a timer handle, not a task, so a
    closing loop drops it silently."""

    INTERVAL = 0.01

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._late = 0.0

    def late(self) -> float:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first call on this loop
            self._loop, self._late = loop, 0.0
            self._arm(loop)
            return 0.0
        # A tick that is overdue right now counts too (the loop may be too busy to run it).
        return max(self._late, loop.time() - self._due)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self.INTERVAL
        loop.call_at(self._due, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return
        self._late = max(loop.time() - self._due, self._late / 2)
        self._arm(loop)
