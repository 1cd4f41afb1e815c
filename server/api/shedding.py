"""Load shedding: overload answered at once with RESOURCE_EXHAUSTED and RetryInfo (reason
SERVER_OVERLOADED; HTTP 429 with Retry-After), so it shows as fast, retryable refusals instead of
a queue that grows until every call times out. Two rules, either refuses:

* **a saturated event loop** (`Saturation`): grpc.aio takes a call from grpc's C core only when
  the loop gets round to it, so while the loop always has work ready new calls wait inside the
  core, unseen and untimed by any Python step, and the in-flight count stays low (measured by
  bench/load_ceiling.py: p99 in seconds with ~30 calls in flight under the default cap). The one
  sign of that hidden queue visible from Python is that the loop is never idle
  (server/event_loop.py). Every `interval` the share of its time the loop sat idle is checked:
  under `min_idle` the share of new calls refused rises (half the way to `max_share`), above it
  the share falls back (by half, and to 0 below 1%). Each refusal costs a fraction of an answer,
  so refusing a share of calls gives the loop its idle time back, and with it the core's queue
  is drained as fast as calls arrive: the wait ahead of the pipeline stays bounded. Off where
  the loop is not metered (in-thread test servers) or `min_idle` is 0.
* **the in-flight cap**: past `max_in_flight` unary rpcs running at once in this process.

It runs right after error mapping: before audit and authentication, so a refusal costs little
(shed calls are counted by the access log's metrics, `code="RESOURCE_EXHAUSTED"`, and by
`tessera_rpcs_shed{why}`, not audited: they read and change nothing). Health and reflection are
never shed, nor are streams (watches and downloads are long and mostly idle; their cost is the
connection's). The HTTP face runs these same steps on the same loop, so one rule covers both."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from server import event_loop
from server.api.context import Ctx
from server.api.interceptors import PUBLIC_SERVICES, Unary, _Wrapping
from server.errors import ResourceExhausted

__all__ = ["LoadShedding", "Saturation"]


class Saturation:
    """The share of new calls to refuse so the event loop keeps `min_idle` of its time idle."""

    def __init__(
        self,
        min_idle: float,
        interval: float = 0.1,
        max_share: float = 0.95,
        idle: Callable[[], float | None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._min_idle = min_idle
        self._interval = interval
        self._max_share = max_share
        self._idle = idle or _running_loop_idle
        self._clock = clock
        self._since: float | None = None
        self._idle_since = 0.0
        self.share = 0.0

    def refuse(self) -> bool:
        """Whether to refuse the call arriving now (updates the share once per interval)."""
        if self._min_idle <= 0:
            return False
        idle = self._idle()
        if idle is None:
            return False
        now = self._clock()
        if self._since is None:
            self._since, self._idle_since = now, idle
        elapsed = now - self._since
        if elapsed >= self._interval:
            if (idle - self._idle_since) / elapsed < self._min_idle:
                self.share += (self._max_share - self.share) / 2
            else:
                # Long quiet stretches (no call to update on) count once per interval they spanned.
                self.share /= 2 ** min(elapsed / self._interval, 32)
                if self.share < 0.01:
                    self.share = 0.0
            self._since, self._idle_since = now, idle
        return self.share > 0 and random.random() < self.share


def _running_loop_idle() -> float | None:
    return event_loop.idle_seconds(asyncio.get_running_loop())


class LoadShedding(_Wrapping):
    def __init__(
        self,
        max_in_flight: int,
        retry_after: float,
        gauge: Gauge | None = None,
        saturation: Saturation | None = None,
        shed: Counter | None = None,
        share_gauge: Gauge | None = None,
    ) -> None:
        self._max = max_in_flight
        self._retry_after = retry_after
        self._gauge = gauge
        self._saturation = saturation
        self._shed_counter = shed
        self._share_gauge = share_gauge
        self._share_shown = 0.0
        self.in_flight = 0
        self.shed = 0

    def _refusal(self, why: str, message: str) -> ResourceExhausted:
        self.shed += 1
        if self._shed_counter is not None:
            self._shed_counter.labels(why).inc()
        return ResourceExhausted(
            f"the server is at capacity ({message}); retry shortly",
            reason="SERVER_OVERLOADED",
            # Jittered, so the refused callers do not all come back at the same moment.
            retry_after=self._retry_after * (1 + random.random()),
        )

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        if method.startswith(PUBLIC_SERVICES) or (self._max <= 0 and self._saturation is None):
            return behaviour
        cap = self._max if self._max > 0 else float("inf")
        saturation = self._saturation

        async def capped(request: Any, ctx: Ctx) -> Any:
            if self.in_flight >= cap:
                raise self._refusal("in_flight", f"{self._max} calls in flight")
            if saturation is not None:
                refuse = saturation.refuse()
                if self._share_gauge is not None and saturation.share != self._share_shown:
                    self._share_shown = saturation.share
                    self._share_gauge.set(saturation.share)
                if refuse:
                    raise self._refusal("saturated", "its event loop has no idle time left")
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
