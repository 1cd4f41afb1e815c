"""Security tests run no worker: the materialization and export tasks they cause are taken back
off the broker at the end, so they never reach a worker of another run sharing it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import redis

from server.config import Settings

__all__ = ["forget_queued_tasks"]

QUEUES = ("materialize", "exports")


def _queued(client: redis.Redis, settings: Settings, wanted: set[str]) -> Iterator[tuple[bytes, bytes]]:
    """(list key, raw message) of every queued task whose argument is one of `wanted` (a task is a
    JSON message on a list named after its queue, priority lists included)."""
    for queue in QUEUES:
        for key in client.scan_iter(match=f"{settings.broker_key_prefix}{queue}*"):
            if client.type(key) != b"list":
                continue
            for raw in client.lrange(key, 0, -1):
                try:
                    args = json.loads(raw).get("headers", {}).get("argsrepr", "")
                except ValueError:
                    continue
                if any(job_id in args for job_id in wanted):
                    yield key, raw


def forget_queued_tasks(settings: Settings, job_ids: Iterable[str]) -> int:
    """Removes the queued tasks of `job_ids` (Redis brokers) and checks none is left; returns how
    many were removed."""
    wanted = set(job_ids)
    if not wanted or not settings.effective_broker_url.startswith("redis"):
        return 0
    client = redis.Redis.from_url(settings.effective_broker_url)
    try:
        removed = sum(int(client.lrem(key, 1, raw)) for key, raw in list(_queued(client, settings, wanted)))
        left = list(_queued(client, settings, wanted))
        assert not left, f"{len(left)} tasks of this module are still queued"
        return removed
    finally:
        client.close()
