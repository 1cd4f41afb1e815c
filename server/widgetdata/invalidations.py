"""Tier-0 invalidations across processes and servers: Redis pub/sub on `{prefix}wd:invalidations`.

Messages (published by `WidgetDataCache` wherever tier 1 changes under a key others may hold):

    q:<query id>          the query's generation was bumped: drop all its entries (invalidate)
    k:<query id>:<key>    the entry under this cache key was recomputed: drop copies of it

The subscriber says when it is subscribed (`on_subscribed`: every message published from then on
reaches it) and when it is not (`on_lost`); tier 0 serves only in between. A quiet subscription
is pinged every `PING_SECONDS`; no answer within `2 * PING_SECONDS` counts as lost. Redis Cluster
broadcasts PUBLISH to every node, so one connection to the first node hears all of it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from server.db.listen import Follower
from server.redis_client import plain_url

__all__ = ["PING_SECONDS", "Subscriber", "channel_name", "key_message", "query_message"]

PING_SECONDS = 1.0


def channel_name(prefix: str) -> str:
    return f"{prefix}wd:invalidations"


def query_message(query_id: str) -> str:
    return f"q:{query_id.lower()}"


def key_message(query_id: str, key: str) -> str:
    return f"k:{query_id.lower()}:{key}"


class Subscriber(Follower):
    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        on_message: Callable[[str], None],
        on_subscribed: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        super().__init__(f"widget data invalidations ({channel})", on_lost)
        self._url = plain_url(redis_url)
        self._channel = channel
        self._on_message = on_message
        self._on_subscribed = on_subscribed

    async def _follow(self) -> None:
        client = aioredis.Redis.from_url(self._url, socket_connect_timeout=2, socket_keepalive=True)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            confirmed = await pubsub.get_message(timeout=PING_SECONDS * 2)
            if confirmed is None or confirmed.get("type") != "subscribe":
                raise ConnectionError(f"no confirmation of the subscription to {self._channel}")
            self._on_subscribed()
            self._connected()
            heard_at = time.monotonic()
            pinged = False
            while True:
                message: dict[str, Any] | None = await pubsub.get_message(timeout=PING_SECONDS)
                now = time.monotonic()
                if message is not None:
                    heard_at, pinged = now, False
                    if message.get("type") == "message":
                        data = message.get("data")
                        self._on_message(data.decode() if isinstance(data, bytes) else str(data))
                    continue
                if now - heard_at >= PING_SECONDS * 2 and pinged:
                    raise ConnectionError("the subscription's connection stopped answering")
                if now - heard_at >= PING_SECONDS and not pinged:
                    await pubsub.ping()
                    pinged = True
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await client.aclose()
