"""Per-process (per-thread) resources for tasks, created lazily after fork.

Tasks are sync Celery functions; the domain code is async. Each worker process (prefork child,
or the thread of an in-process test worker) gets its own event loop and, on it, its own engines,
Redis client and domain objects: nothing created before the fork (sockets, pools) is reused, and
async engines stay on the loop that created them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import redis.asyncio as aioredis
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from server.audit.dead_letter import DeadLetterFile
from server.audit.log import AuditLog
from server.config import Settings
from server.db.engine import Database, make_engine
from server.db.migrate import sync_url
from server.exports.browser import Printer
from server.exports.jobs import ExportStore
from server.exports.runner import ExportDeps
from server.exports.storage import ExportStorage
from server.jobs.materialize import Materializer
from server.jobs.store import JobStore
from server.queries.service import QueryDomain
from server.queries.views import ViewBuilder
from server.redis_client import make_redis
from server.widgetdata.cache import WidgetDataCache
from server.widgetdata.service import WidgetDataDomain
from workers.metrics import TimedMaterializer

T = TypeVar("T")

_engine: Engine | None = None
_settings: Settings | None = None
_local = threading.local()


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def engine() -> Engine:
    """A sync engine for simple maintenance statements."""
    global _engine
    if _engine is None:
        _engine = create_engine(sync_url(settings().database_url), pool_pre_ping=True, pool_size=2, max_overflow=2)
    return _engine


@dataclass
class Runtime:
    """The async side of one worker process: built on, and bound to, its event loop."""

    settings: Settings
    db: Database
    datasource: AsyncEngine
    redis: aioredis.Redis
    queries: QueryDomain
    cache: WidgetDataCache
    store: JobStore
    materializer: Materializer
    views: ViewBuilder
    exports: ExportDeps

    @classmethod
    def build(cls, config: Settings) -> Runtime:
        # Small pools: a worker process runs one task at a time (prefork).
        db = Database(make_engine(config.database_url, pool_size=2, max_overflow=4, application_name="tessera-worker"))
        datasource = make_engine(
            config.datasource_url or config.database_url,
            pool_size=2,
            max_overflow=4,
            application_name="tessera-worker-queries",
        )
        redis = make_redis(config.redis_url)
        queries = QueryDomain(db, datasource, config)
        cache = WidgetDataCache(db, redis, config)
        exports = ExportDeps(
            settings=config,
            db=db,
            store=ExportStore(db, redis, config),
            storage=ExportStorage.for_settings(config),
            widget_data=WidgetDataDomain(db, queries, cache, config),
            printer=Printer(config),  # launches Chromium on first use, then stays warm
            audit=AuditLog(db, dead_letter=DeadLetterFile(config.audit_dead_letter_path)),
        )
        return cls(
            settings=config,
            db=db,
            datasource=datasource,
            redis=redis,
            queries=queries,
            cache=cache,
            store=JobStore(db, redis, config),
            materializer=TimedMaterializer(db, queries, cache, config),
            views=ViewBuilder(datasource, config.view_role, config.query_timeout_cap_seconds),
            exports=exports,
        )

    async def close(self) -> None:
        await self.exports.printer.close()
        await self.exports.audit.close()
        await self.cache.close()
        await self.redis.aclose()
        await self.datasource.dispose()
        await self.db.dispose()


def _loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
    return loop


def run(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Runs async domain code on this thread's loop with this thread's Runtime."""
    loop = _loop()
    runtime: Runtime | None = getattr(_local, "runtime", None)
    if runtime is None:
        runtime = Runtime.build(settings())
        _local.runtime = runtime

    async def call() -> T:
        return await work(runtime)

    return loop.run_until_complete(call())


def reset() -> None:
    """Forget (without closing) what the parent process had: its sockets are not ours."""
    global _engine
    _engine = None
    _local.__dict__.clear()


def close() -> None:
    global _engine
    if _engine is not None:
        _engine.dispose()
        _engine = None
    runtime: Runtime | None = getattr(_local, "runtime", None)
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if runtime is not None and loop is not None and not loop.is_closed():
        loop.run_until_complete(runtime.close())
        loop.close()
    _local.__dict__.clear()
