"""Load shedding: past `max_in_flight_rpcs` unary rpcs running at once in this process, a new one
is refused at once with RESOURCE_EXHAUSTED and RetryInfo (reason SERVER_OVERLOADED), so overload
shows as fast, retryable refusals instead of a queue that grows until every call times out.

It runs right after error mapping: before audit and authentication, so a refusal costs almost
nothing (shed calls are counted by the access log's metrics, `code="RESOURCE_EXHAUSTED"`, not
audited: they read and change nothing). Health and reflection are never shed, nor are streams
(watches and downloads are long and mostly idle; their cost is the connection's)."""

from __future__ import annotations

import random
from typing import Any

from prometheus_client import Gauge

from server.api.context import Ctx
from server.api.interceptors import PUBLIC_SERVICES, Unary, _Wrapping
from server.errors import ResourceExhausted

__all__ = ["LoadShedding"]


class LoadShedding(_Wrapping):
    def __init__(self, max_in_flight: int, retry_after: float, gauge: Gauge | None = None) -> None:
        self._max = max_in_flight
        self._retry_after = retry_after
        self._gauge = gauge
        self.in_flight = 0
        self.shed = 0

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        if self._max <= 0 or method.startswith(PUBLIC_SERVICES):
            return behaviour

        async def capped(request: Any, ctx: Ctx) -> Any:
            if self.in_flight >= self._max:
                self.shed += 1
                raise ResourceExhausted(
                    f"the server is at capacity ({self._max} calls in flight); retry shortly",
                    reason="SERVER_OVERLOADED",
                    # Jittered, so the refused callers do not all come back at the same moment.
                    retry_after=self._retry_after * (1 + random.random()),
                )
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
