"""The daily clean-up: cache rows past their maximum staleness (no reader may be served them),
request ids older than their 24-hour window, and the Redis streams of materialization jobs that
ended a while ago (or are gone)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, literal_column, or_, select, text

from server.config import Settings
from server.db.engine import Database
from server.db.schema import idempotency_keys, jobs, widget_data_cache
from server.materialization.store import STREAM, TERMINAL
from server.redis_client import RedisClient

__all__ = ["Cleaned", "cleanup"]

IDEMPOTENCY_RETENTION = text("interval '24 hours'")


@dataclass(frozen=True)
class Cleaned:
    cache_rows: int
    idempotency_keys: int
    job_streams: int


async def cleanup(db: Database, redis: RedisClient, settings: Settings) -> Cleaned:
    async with db.transaction() as conn:
        cache_rows = await conn.execute(
            delete(widget_data_cache).where(
                widget_data_cache.c.expires_at
                < func.now() - settings.cache_max_stale_seconds * literal_column("interval '1 second'")
            )
        )
        keys = await conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < func.now() - IDEMPOTENCY_RETENTION)
        )
    return Cleaned(
        cache_rows=int(cache_rows.rowcount or 0),
        idempotency_keys=int(keys.rowcount or 0),
        job_streams=await _cleanup_streams(db, redis, settings),
    )


async def _cleanup_streams(db: Database, redis: RedisClient, settings: Settings) -> int:
    prefix = f"{settings.redis_prefix}{STREAM}:"
    retention: Any = settings.job_stream_retention_seconds * literal_column("interval '1 second'")
    deleted = 0
    async for batch in _scan_batches(redis, f"{prefix}*"):
        ids: dict[uuid.UUID, str] = {}
        for raw in batch:
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                ids[uuid.UUID(key[len(prefix) :])] = key
            except ValueError:
                continue
        if not ids:
            continue
        async with db.read() as conn:
            keep: set[uuid.UUID] = set(
                (
                    await conn.execute(
                        select(jobs.c.id).where(
                            jobs.c.id.in_(list(ids)),
                            or_(
                                jobs.c.state.not_in(list(TERMINAL)),
                                jobs.c.ended_at.is_(None),
                                jobs.c.ended_at > func.now() - retention,
                            ),
                        )
                    )
                ).scalars()
            )
        doomed = [key for ident, key in ids.items() if ident not in keep]
        if doomed:
            deleted += int(await redis.delete(*doomed))
    return deleted


async def _scan_batches(redis: RedisClient, pattern: str) -> AsyncIterator[list[Any]]:
    # scan_iter, not SCAN with a cursor: on a cluster it walks every primary in turn.
    batch: list[Any] = []
    async for key in redis.scan_iter(match=pattern, count=500):
        batch.append(key)
        if len(batch) >= 500:
            yield batch
            batch = []
    if batch:
        yield batch
