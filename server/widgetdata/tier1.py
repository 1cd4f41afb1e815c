"""Tier 1 of the widget-data cache: Redis (`{prefix}wd:{<query id>}:{key}` -> an `entry` envelope, expiring
when the entry can no longer be served, i.e. expiry + max staleness), and whether Redis is usable
at all: after a failure it is skipped for REDIS_RETRY_SECONDS (a dead Redis costs nothing per
request), then tried again. Redis being down is never an error for the caller."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis.exceptions

from server.redis_client import RedisClient
from server.widgetdata.counters import stats
from server.widgetdata.entry import Entry, EnvelopeError, decode, encode, tier1_ttl_ms
from server.widgetdata.key import data_key, generation_key
from server.widgetdata.request import CacheRequest

__all__ = ["REDIS_ERRORS", "REDIS_RETRY_SECONDS", "RedisTier"]

log = logging.getLogger("tessera.widgetdata")

REDIS_RETRY_SECONDS = 1.0
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)


def generation_of(raw: Any) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


class RedisTier:
    def __init__(self, redis: RedisClient, prefix: str, max_stale: float, clock: Callable[[], float]) -> None:
        self.redis = redis
        self.prefix = prefix
        self._max_stale = max_stale
        self._clock = clock
        self._retry_at = 0.0

    def usable(self) -> bool:
        return time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        stats.redis_errors += 1
        if self.usable():
            log.warning(
                "widget data: Redis unavailable, using PostgreSQL only for %.0f s: %r", REDIS_RETRY_SECONDS, exc
            )
        self._retry_at = time.monotonic() + REDIS_RETRY_SECONDS

    async def publish(self, channel: str, message: str) -> None:
        """A message to every process subscribed; a failure is counted, not raised."""
        try:
            await self.redis.publish(channel, message)
        except REDIS_ERRORS as exc:
            self.failed(exc)

    @staticmethod
    def decode(raw: Any) -> Entry | None:
        if raw is None:
            return None
        try:
            return decode(bytes(raw))
        except EnvelopeError:
            log.warning("widget data: ignoring an unreadable tier-1 entry")
            return None

    async def get(self, request: CacheRequest) -> Entry | None:
        if not self.usable():
            return None
        try:
            raw = await self.redis.get(data_key(self.prefix, request.query_id, request.key))
        except REDIS_ERRORS as exc:
            self.failed(exc)
            return None
        return self.decode(raw)

    def envelope(self, entry: Entry) -> tuple[bytes, int]:
        """What tier 1 stores for the entry, and for how many milliseconds."""
        return encode(entry), tier1_ttl_ms(entry, self._clock(), self._max_stale)

    async def put(self, request: CacheRequest, entry: Entry) -> None:
        if not self.usable():
            return
        envelope, ttl_ms = self.envelope(entry)
        try:
            await self.redis.set(data_key(self.prefix, request.query_id, request.key), envelope, px=ttl_ms)
        except REDIS_ERRORS as exc:
            self.failed(exc)

    async def generation(self, query_id: str) -> int:
        """The query's invalidation generation; 0 while Redis is unavailable."""
        if not self.usable():
            return 0
        try:
            raw = await self.redis.get(generation_key(self.prefix, query_id))
        except REDIS_ERRORS as exc:
            self.failed(exc)
            return 0
        return generation_of(raw)

    async def bump_generation(self, query_id: str) -> None:
        try:
            await self.redis.incr(generation_key(self.prefix, query_id))
        except REDIS_ERRORS as exc:
            self.failed(exc)
