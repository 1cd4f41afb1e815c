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

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from server.redis_client import plain_url

__all__ = ["PING_SECONDS", "Subscriber", "channel_name", "key_message", "query_message"]

log = logging.getLogger("tessera.widgetdata")

PING_SECONDS = 1.0
_RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)


def channel_name(prefix: str) -> str:
    return f"{prefix}wd:invalidations"


def query_message(query_id: str) -> str:
    return f"q:{query_id.lower()}"


def key_message(query_id: str, key: str) -> str:
    return f"k:{query_id.lower()}:{key}"


class Subscriber:
    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        on_message: Callable[[str], None],
        on_subscribed: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self._url = plain_url(redis_url)
        self._channel = channel
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="widget data invalidations")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self._subscribe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._failures == 0:
                    log.warning("widget data invalidations: subscription lost, retrying: %r", exc)
            finally:
                self._on_lost()
            await asyncio.sleep(_RETRY_SECONDS[min(self._failures, len(_RETRY_SECONDS) - 1)])
            self._failures += 1

    async def _subscribe(self) -> None:
        client = aioredis.Redis.from_url(self._url, socket_connect_timeout=2, socket_keepalive=True)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            confirmed = await pubsub.get_message(timeout=PING_SECONDS * 2)
            if confirmed is None or confirmed.get("type") != "subscribe":
                raise ConnectionError(f"no confirmation of the subscription to {self._channel}")
            self._on_subscribed()
            self._failures = 0
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
