"""Token buckets per principal: `rate` tokens a second up to `burst`, one token per call.

The buckets live in Redis so every process and server of a deployment shares one budget per
principal: one hash per principal, `{prefix}rl:{<sha256 of the principal>}` (the hash tag keeps the
key whole on a Redis Cluster; the digest keeps any subject's characters out of the key), updated
by one Lua script on Redis's own clock, so servers with skewed clocks agree. When Redis fails the
limiter falls back to a bucket in this process (the budget is then per process: generous rather
than closed for everyone), says so once in the log and in `tessera_rate_limit_fallbacks_total`,
and tries Redis again after REDIS_RETRY_SECONDS.

Written here rather than with the `limits` package: `limits` opens its own Redis connections from
a URI (its async Redis storage runs on coredis, a second client library, beside the configured
pool, TLS and cluster client) and offers fixed and sliding windows, not a token bucket whose
refusal can say when the next token comes."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import redis.exceptions
from prometheus_client import Counter

from server.redis_client import RedisClient

__all__ = ["Decision", "LocalBuckets", "RedisBuckets"]

log = logging.getLogger("tessera.ratelimit")

REDIS_RETRY_SECONDS = 1.0
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)
# Principals the in-process fallback remembers (least recently seen dropped first).
LOCAL_BUCKETS = 10_000

# KEYS[1]: the bucket; ARGV: rate (tokens/s), burst. Returns {allowed (0/1), ms to the next token}.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local held = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until the next token (0 when allowed)


class LocalBuckets:
    """The same buckets in this process's memory: the fallback while Redis is away."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, principal: str) -> Decision:
        now = time.monotonic()
        tokens, at = self._buckets.pop(principal, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + max(0.0, now - at) * self._rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[principal] = (tokens, now)
        while len(self._buckets) > LOCAL_BUCKETS:
            self._buckets.popitem(last=False)
        return Decision(allowed, 0.0 if allowed else math.ceil((1 - tokens) * 1000 / self._rate) / 1000)


class RedisBuckets:
    """Buckets shared through Redis, with the local fallback."""

    def __init__(self, redis: RedisClient, prefix: str, rate: float, burst: int, fallbacks: Counter) -> None:
        self._prefix = prefix
        self._rate = rate
        self._burst = burst
        self._script = redis.register_script(_TAKE)
        self._local = LocalBuckets(rate, burst)
        self._fallbacks = fallbacks
        self._retry_at = 0.0
        self._on_local = False

    def key(self, principal: str) -> str:
        return f"{self._prefix}rl:{{{hashlib.sha256(principal.encode()).hexdigest()[:32]}}}"

    async def take(self, principal: str) -> Decision:
        if time.monotonic() >= self._retry_at:
            try:
                allowed, wait_ms = await self._script(keys=[self.key(principal)], args=[self._rate, self._burst])
            except REDIS_ERRORS as exc:
                self._retry_at = time.monotonic() + REDIS_RETRY_SECONDS
                self._fallbacks.inc()
                if not self._on_local:
                    self._on_local = True
                    log.warning("rate limits: Redis unavailable, limiting per process until it is back: %r", exc)
            else:
                if self._on_local:
                    self._on_local = False
                    log.warning("rate limits: Redis is back, limits are shared again")
                return Decision(bool(allowed), int(wait_ms) / 1000)
        return self._local.take(principal)
