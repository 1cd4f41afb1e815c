"""Tier-0 invalidations across processes and servers: Redis pub/sub on `{prefix}wd:invalidations`.

Messages (published by `WidgetDataCache` wherever tier 1 changes under a key others may hold):

    q:<query id>          the query's generation was bumped: drop all its entries (invalidate)
    k:<query id>:<key>    the entry under this cache key was recomputed: drop copies of it

The subscriber says when it is subscribed (`on_subscribed`: every message published from then on
reaches it) and when it is not (`on_lost`); tier 0 serves only in between. A quiet subscription
is pinged every `PING_SECONDS`. A ping unanswered for `PING_SECONDS` pauses it (`on_paused`:
tier 0 stops serving, keeping what it holds, since messages may be late); it resumes
(`on_resumed`) on the answer to a ping sent less than `PING_SECONDS` before (Redis writes a
subscriber's messages and replies in order, so everything published before that ping has been
heard); only a ping unanswered for `LOST_SECONDS` counts as lost (emptied, reconnected). Redis
Cluster broadcasts PUBLISH to every node, so one connection to the first node hears all of it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from server.db.listen import LOST_SECONDS, Follower
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
        on_paused: Callable[[], None] | None = None,
        on_resumed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(f"widget data invalidations ({channel})", on_lost, on_paused, on_resumed)
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
            pinged_at: float | None = None  # when the ping not answered yet was sent
            while True:
                message: dict[str, Any] | None = await pubsub.get_message(timeout=PING_SECONDS)
                now = time.monotonic()
                if message is not None:
                    heard_at = now
                    kind = message.get("type")
                    if kind == "message":
                        data = message.get("data")
                        self._on_message(data.decode() if isinstance(data, bytes) else str(data))
                    elif kind == "pong" and pinged_at is not None:
                        if now - pinged_at < PING_SECONDS:
                            self._resume()
                            pinged_at = None
                        elif self.paused:  # answered late: current only as of a while ago
                            await pubsub.ping()
                            pinged_at = now
                        else:
                            pinged_at = None
                if pinged_at is None:
                    if now - heard_at >= PING_SECONDS:
                        await pubsub.ping()
                        pinged_at = now
                elif now - pinged_at >= LOST_SECONDS:
                    raise ConnectionError("the subscription's connection stopped answering")
                elif now - pinged_at >= PING_SECONDS:
                    self._pause()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await client.aclose()
