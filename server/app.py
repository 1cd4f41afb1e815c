"""The composition root: the server runtime (`build_app`) and the worker runtime
(`build_worker_runtime`) from one Settings, on one shared core (`build_core`: the same engines and
pools, Redis client, metrics, widget-data cache, audit log, job stores and export storage)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncEngine

from server.alerts.runner import AlertDeps
from server.alerts.service import AlertDomain
from server.audit.dead_letter import DeadLetterFile
from server.audit.log import AuditLog
from server.auth.authenticator import Authenticator
from server.auth.tokens import TokenVerifier
from server.broker.app import make_celery
from server.broker.enqueue import CeleryEnqueuer
from server.broker.names import (
    QUEUE_EXPORTS,
    QUEUE_MATERIALIZE,
    TASK_DELIVER_REPORT,
    TASK_EXPORT,
    TASK_MATERIALIZE_DASHBOARD,
)
from server.config import Settings
from server.dashboards.service import DashboardDomain
from server.db.engine import Database, make_engine
from server.db.replica import ReplicaRouter
from server.exports.browser import Printer
from server.exports.jobs import ExportStore
from server.exports.runner import ExportDeps
from server.exports.service import ExportDomain
from server.exports.storage import ExportStorage
from server.materialization.materializer import Materializer
from server.materialization.service import MaterializationDomain
from server.materialization.store import MaterializationStore
from server.metrics import Metrics
from server.notify.outcome import DeliveryObserver
from server.notify.smtp import SmtpSender
from server.notify.webhook import WebhookSender
from server.portability.service import PortabilityDomain
from server.queries.service import QueryDomain
from server.queries.views import ViewBuilder
from server.redis_client import RedisClient, make_redis
from server.reports.deliver import ReportDeps
from server.reports.service import ReportDomain
from server.search.service import SearchDomain
from server.shares.service import ShareDomain
from server.widgetdata.cache import WidgetDataCache
from server.widgetdata.service import WidgetDataDomain
from server.widgets.service import WidgetDomain

__all__ = ["App", "Core", "Runtime", "WorkerRuntime", "build_app", "build_core", "build_worker_runtime"]


class Pools(TypedDict):
    """An engine's pool: connections kept, and opened beyond them at peak."""

    pool_size: int
    max_overflow: int


class Runtime(StrEnum):
    """Which process the core is for: it names the database connections (pg_stat_activity) and
    sizes their pools."""

    SERVER = "tessera"
    WORKER = "tessera-worker"

    def pools(self, settings: Settings) -> Pools:
        if self is Runtime.WORKER:
            # Small: a prefork worker process runs one task at a time (an export reads a few
            # widgets at once while its progress is written), and every process of every worker
            # keeps its idle connections. All six are kept: a connection opened per use (an
            # overflow one) costs a PostgreSQL backend start each time, many per export.
            return Pools(pool_size=6, max_overflow=0)
        return Pools(pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)


@dataclass
class Core:
    """What the server and the workers share, built the same way for both."""

    settings: Settings
    db: Database
    datasource: AsyncEngine
    redis: RedisClient
    metrics: Metrics
    queries: QueryDomain
    cache: WidgetDataCache
    widget_data: WidgetDataDomain
    audit: AuditLog
    materialization_store: MaterializationStore
    export_store: ExportStore
    export_storage: ExportStorage

    async def close(self) -> None:
        try:
            await self.audit.close()  # first: what just finished has events to write
        finally:
            await self.widget_data.close()  # background refreshes first: they use Redis and both engines
            await self.redis.aclose()
            if self.datasource is not self.db.engine:
                await self.datasource.dispose()
            await self.db.dispose()


def build_core(settings: Settings, runtime: Runtime) -> Core:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (tessera dev starts an embedded PostgreSQL)")
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (tessera dev starts an embedded Redis)")
    pools = runtime.pools(settings)
    metrics = Metrics()
    reads = (
        make_engine(
            settings.database_url,
            application_name=f"{runtime.value}-reads",
            pool_size=settings.db_read_pool_size,
            max_overflow=0,
            autocommit=True,
        )
        if settings.db_read_pool_size and runtime is Runtime.SERVER
        else None
    )
    db = Database(make_engine(settings.database_url, application_name=runtime.value, **pools), reads=reads)
    # The server only: a task reads what the rpc that queued it has just written (a job's
    # dashboard version, say), and carries no LSN to wait for.
    if settings.database_replica_url and runtime is Runtime.SERVER:
        db.replica = ReplicaRouter(
            make_engine(settings.database_replica_url, application_name=f"{runtime.value}-replica", **pools),
            window_seconds=settings.replica_read_your_writes_seconds,
            count=lambda target: metrics.db_reads.labels(target).inc(),
        )
    # User queries run on a separate data-source engine (its own pool, so slow reports never
    # starve the application's connections); by default it points at the same database.
    datasource = make_engine(
        settings.datasource_url or settings.database_url,
        application_name=f"{runtime.value}-queries",
        time_zone=None,  # user SQL keeps the server's time zone
        **pools,
    )
    redis = make_redis(settings.redis_url)
    queries = QueryDomain(db, datasource, settings, metrics)
    cache = WidgetDataCache(db, redis, settings, metrics=metrics, write_behind=runtime is Runtime.SERVER)
    return Core(
        settings=settings,
        db=db,
        datasource=datasource,
        redis=redis,
        metrics=metrics,
        queries=queries,
        cache=cache,
        widget_data=WidgetDataDomain(db, queries, cache, settings),
        audit=AuditLog(db, dead_letter=DeadLetterFile(settings.audit_dead_letter_path), metrics=metrics),
        materialization_store=MaterializationStore(db, redis, settings),
        export_store=ExportStore(db, redis, settings),
        export_storage=ExportStorage.for_settings(settings),
    )


@dataclass
class App:
    """The server runtime: the core and the domains the rpcs call."""

    settings: Settings
    db: Database
    redis: RedisClient
    authenticator: Authenticator
    dashboards: DashboardDomain
    widgets: WidgetDomain
    queries: QueryDomain
    datasource: AsyncEngine
    widget_data: WidgetDataDomain
    materialization: MaterializationDomain
    exports: ExportDomain
    shares: ShareDomain
    audit: AuditLog
    metrics: Metrics
    core: Core
    reports: ReportDomain
    alerts: AlertDomain
    portability: PortabilityDomain
    search: SearchDomain

    async def close(self) -> None:
        try:
            if self.audit is not self.core.audit:
                await self.audit.close()  # one put in place of the core's (tests do)
        finally:
            await self.core.close()


def build_app(settings: Settings) -> App:
    core = build_core(settings, Runtime.SERVER)
    celery = make_celery(settings)
    exports = ExportDomain(
        core.db,
        core.export_store,
        core.export_storage,
        core.widget_data,
        core.queries,
        CeleryEnqueuer(celery, TASK_EXPORT, QUEUE_EXPORTS),
    )
    dashboards = DashboardDomain(core.db, core.widget_data.definitions, settings.kept_answers_max_bytes)
    # Kept answers follow notifications: an rpc's write reports its WAL position, so that the
    # writer's next read on another process waits until it has been heard there (kept.py).
    core.db.marks_writes = settings.kept_answers_max_bytes > 0
    return App(
        settings=settings,
        db=core.db,
        redis=core.redis,
        authenticator=Authenticator(TokenVerifier(settings), core.db),
        dashboards=dashboards,
        widgets=WidgetDomain(core.db, default_refresh_seconds=settings.cache_ttl_seconds),
        queries=core.queries,
        datasource=core.datasource,
        widget_data=core.widget_data,
        materialization=MaterializationDomain(
            core.db, core.materialization_store, CeleryEnqueuer(celery, TASK_MATERIALIZE_DASHBOARD, QUEUE_MATERIALIZE)
        ),
        exports=exports,
        shares=ShareDomain(core.db),
        audit=core.audit,
        metrics=core.metrics,
        core=core,
        reports=ReportDomain(
            core.db, exports, core.export_store, CeleryEnqueuer(celery, TASK_DELIVER_REPORT, QUEUE_EXPORTS), settings
        ),
        alerts=AlertDomain(core.db, core.widget_data, settings),
        portability=PortabilityDomain(core.db, core.queries, default_refresh_seconds=settings.cache_ttl_seconds),
        search=SearchDomain(core.db, dashboards),
    )


@dataclass
class WorkerRuntime:
    """The worker runtime: the core and what the tasks run (built per worker process, after fork)."""

    core: Core
    materializer: Materializer
    views: ViewBuilder
    exports: ExportDeps
    reports: ReportDeps
    alerts: AlertDeps

    @property
    def settings(self) -> Settings:
        return self.core.settings

    async def close(self) -> None:
        try:
            await self.exports.printer.close()
        finally:
            await self.core.close()


def build_worker_runtime(
    settings: Settings,
    *,
    on_warmed: Callable[[str, float], None] | None = None,
    on_delivered: DeliveryObserver | None = None,
    on_evaluated: Callable[[str], None] | None = None,
    on_transition: Callable[[str], None] | None = None,
) -> WorkerRuntime:
    """`on_warmed(outcome, seconds)` hears of every widget the materializer warms,
    `on_delivered(channel, delivered, seconds)` of every recipient's delivery (reports and alerts),
    `on_evaluated(outcome)` of every alert evaluation and `on_transition(state)` of every alert
    state change (all for metrics)."""
    core = build_core(settings, Runtime.WORKER)
    exports = ExportDeps(
        settings=settings,
        db=core.db,
        store=core.export_store,
        storage=core.export_storage,
        widget_data=core.widget_data,
        queries=core.queries,
        printer=Printer(settings),  # launches Chromium on first use, then stays warm
        audit=core.audit,
    )
    return WorkerRuntime(
        core=core,
        materializer=Materializer(core.db, core.queries, core.cache, settings, on_warmed=on_warmed),
        views=ViewBuilder(core.datasource, settings.view_role, settings.query_timeout_cap_seconds),
        exports=exports,
        reports=ReportDeps(
            settings=settings,
            db=core.db,
            # The delivery renders its export itself, in this process: nothing to hand to a queue.
            exports=ExportDomain(
                core.db, core.export_store, core.export_storage, core.widget_data, core.queries, _rendered_here
            ),
            export_run=exports,
            smtp=SmtpSender(settings, on_delivered),
            webhooks=WebhookSender(settings, on_delivered),
            audit=core.audit,
        ),
        alerts=AlertDeps(
            settings=settings,
            db=core.db,
            widget_data=core.widget_data,
            smtp=SmtpSender(settings, on_delivered),
            webhooks=WebhookSender(settings, on_delivered),
            audit=core.audit,
            on_evaluated=on_evaluated,
            on_transition=on_transition,
        ),
    )


async def _rendered_here(export_id: str) -> None:
    """The enqueue of a report's export job: the delivery task that created it renders it next."""
