"""Per-principal rate limits: the pipeline step right after authentication. A principal (a
token's subject, or a public link) past its budget (`TESSERA_RATE_LIMIT_PER_PRINCIPAL` calls a
second, bursts of `TESSERA_RATE_LIMIT_BURST`) is refused with RESOURCE_EXHAUSTED, reason
RATE_LIMITED and RetryInfo saying when its next token comes. The budget is shared by every
process and server through Redis (server/api/rate_buckets.py). Off when the rate is 0 (the
default): the step then wraps nothing.

Refusals pass the audit step (outside this one) like any error, and are counted in
`tessera_rate_limited_total` by method. Health and reflection are never limited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import Counter

from server.api import context as rpc_context
from server.api.context import Ctx
from server.api.interceptors import PUBLIC_SERVICES, Streaming, Unary, _iterate, _Wrapping
from server.api.rate_buckets import RedisBuckets
from server.auth.principal import Principal
from server.errors import ResourceExhausted

__all__ = ["RateLimit", "principal_key"]


def principal_key(principal: Principal) -> str:
    """Whose budget a call spends: a public link's own, else the token's subject."""
    return f"link:{principal.link_id}" if principal.is_link else f"sub:{principal.subject}"


class RateLimit(_Wrapping):
    def __init__(self, buckets: RedisBuckets | None, limited: Counter) -> None:
        self._buckets = buckets
        self._limited = limited

    async def _spend(self, method: str) -> None:
        assert self._buckets is not None
        decision = await self._buckets.take(principal_key(rpc_context.current_principal()))
        if not decision.allowed:
            self._limited.labels(method).inc()
            raise ResourceExhausted(
                f"too many calls: retry in {decision.retry_after:.3f} s",
                reason="RATE_LIMITED",
                retry_after=decision.retry_after,
            )

    def wrap_unary(self, method: str, behaviour: Unary) -> Unary:
        if self._buckets is None or method.startswith(PUBLIC_SERVICES):
            return behaviour

        async def limited(request: Any, ctx: Ctx) -> Any:
            await self._spend(method)
            return await behaviour(request, ctx)

        return limited

    def wrap_stream(self, method: str, behaviour: Streaming) -> Streaming:
        if self._buckets is None or method.startswith(PUBLIC_SERVICES):
            return behaviour

        async def limited(request: Any, ctx: Ctx) -> AsyncIterator[Any]:
            await self._spend(method)
            async for item in _iterate(behaviour(request, ctx)):
                yield item

        return limited
