"""The composition root: builds engines, clients and domain services from one Settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from server.audit.dead_letter import DeadLetterFile
from server.audit.log import AuditLog
from server.auth.authenticator import Authenticator
from server.auth.tokens import TokenVerifier
from server.config import Settings
from server.dashboards.service import DashboardDomain
from server.db.engine import Database, make_engine
from server.exports.jobs import ExportStore
from server.exports.service import ExportDomain
from server.exports.storage import ExportStorage
from server.jobs.names import QUEUE_EXPORTS, TASK_EXPORT
from server.jobs.service import CeleryEnqueuer, JobDomain
from server.jobs.store import JobStore
from server.metrics import Metrics
from server.queries.service import QueryDomain
from server.redis_client import make_redis
from server.shares.service import ShareDomain
from server.widgetdata.cache import WidgetDataCache
from server.widgetdata.service import WidgetDataDomain
from server.widgets.service import WidgetDomain


@dataclass
class App:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    authenticator: Authenticator
    dashboards: DashboardDomain
    widgets: WidgetDomain
    queries: QueryDomain
    datasource: AsyncEngine
    widget_data: WidgetDataDomain
    jobs: JobDomain
    exports: ExportDomain
    shares: ShareDomain
    audit: AuditLog
    metrics: Metrics = field(default_factory=Metrics)

    async def close(self) -> None:
        try:
            await self.audit.close()  # first: the rpcs that just finished have events to write
        finally:
            await self._close_rest()

    async def _close_rest(self) -> None:
        await self.widget_data.close()  # background refreshes first: they use Redis and both engines
        await self.redis.aclose()
        if self.datasource is not self.db.engine:
            await self.datasource.dispose()
        await self.db.dispose()


def build_app(settings: Settings) -> App:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (tessera dev starts an embedded PostgreSQL)")
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (tessera dev starts an embedded Redis)")
    db = Database(
        make_engine(settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    )
    # User queries run on a separate data-source engine (its own pool, so slow reports never
    # starve the application's connections); by default it points at the same database.
    datasource = make_engine(
        settings.datasource_url or settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        application_name="tessera-queries",
    )
    redis = make_redis(settings.redis_url)
    metrics = Metrics()
    queries = QueryDomain(db, datasource, settings)
    widgets = WidgetDomain(db, default_refresh_seconds=settings.default_refresh_interval_seconds)
    widget_data = WidgetDataDomain(db, queries, WidgetDataCache(db, redis, settings, metrics=metrics), settings)
    jobs = JobDomain(db, JobStore(db, redis, settings), CeleryEnqueuer(settings))
    exports = ExportDomain(
        db,
        ExportStore(db, redis, settings),
        ExportStorage.for_settings(settings),
        widget_data,
        CeleryEnqueuer(settings, TASK_EXPORT, QUEUE_EXPORTS),
    )
    return App(
        settings=settings,
        db=db,
        redis=redis,
        authenticator=Authenticator(TokenVerifier(settings), db),
        dashboards=DashboardDomain(db),
        widgets=widgets,
        queries=queries,
        datasource=datasource,
        widget_data=widget_data,
        jobs=jobs,
        exports=exports,
        shares=ShareDomain(db),
        audit=AuditLog(db, dead_letter=DeadLetterFile(settings.audit_dead_letter_path), metrics=metrics),
        metrics=metrics,
    )
