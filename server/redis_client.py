"""The one way server and workers build their asyncio Redis client."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def make_redis(url: str) -> aioredis.Redis:
    return aioredis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        # A restarted Redis leaves every pooled connection dead: one immediate retry on a fresh
        # connection hides that, while a Redis that is really down still fails fast (refused).
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[redis_errors.ConnectionError],
    )
