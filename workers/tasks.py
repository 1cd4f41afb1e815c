"""Celery tasks: sync functions that run async domain code on the process's loop
(`resources.run`). Materialization runs as the system principal of the widget's facility
(server/materialization/materializer.py says why); every task is idempotent, so late acks and redelivery are
safe; transient failures (a dependency unavailable) retry with exponential backoff and jitter."""

from __future__ import annotations

import logging
import random
import time
import uuid
from datetime import UTC
from typing import Any, NoReturn

import redis.exceptions
from celery import Task, shared_task
from sqlalchemy import delete, func, literal_column, or_, select, text, update
from sqlalchemy.exc import InterfaceError, OperationalError

from dashboard.v1 import common_pb2, export_pb2
from server.broker.names import (
    TASK_CLEANUP,
    TASK_DUE_WIDGETS,
    TASK_EXPIRE_EXPORTS,
    TASK_EXPORT,
    TASK_MATERIALIZE_DASHBOARD,
    TASK_MATERIALIZE_WIDGET,
    TASK_REFRESH_VIEWS,
)
from server.db.schema import export_jobs, idempotency_keys, jobs, widget_data_cache, widget_queries, widgets
from server.errors import TesseraError
from server.exports.runner import run_export
from server.materialization.runner import TRANSIENT_ERRORS, run_materialization
from server.materialization.store import TERMINAL
from workers import metrics, resources
from workers.resources import Runtime

log = logging.getLogger("tessera.workers")

IDEMPOTENCY_RETENTION = text("interval '24 hours'")
QUERY_KIND_MATERIALIZED_VIEW = 2
# Widgets claimed per beat run; the rest are due again at the next minute.
DUE_BATCH = 500
RETRYABLE: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS,
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def _retry(task: Task[Any, Any], exc: BaseException) -> NoReturn:
    config = resources.settings()
    backoff = min(float(config.task_retry_backoff_max_seconds), 2.0**task.request.retries)
    # Full jitter: retries of many tasks that failed together do not come back together.
    raise task.retry(
        exc=exc if isinstance(exc, Exception) else None,
        countdown=random.uniform(backoff / 2, backoff),
        max_retries=config.task_max_retries,
    )


# --- exports ----------------------------------------------------------------------------------

EXPORT_OUTCOMES = {
    common_pb2.JOB_STATE_SUCCEEDED: "succeeded",
    common_pb2.JOB_STATE_FAILED: "failed",
    common_pb2.JOB_STATE_CANCELLED: "cancelled",
}


def already_ended(job: export_pb2.ExportJob, started: float) -> bool:
    """The job ended before this attempt began (a duplicate delivery): nothing to count."""
    if not job.HasField("end_time"):
        return False
    ended = job.end_time.ToDatetime(tzinfo=UTC).timestamp()
    return ended < time.time() - (time.monotonic() - started)


@shared_task(name=TASK_EXPORT, bind=True)
def render_export(self: Task[Any, Any], export_id: str) -> int:
    """Renders, prints and stores one export (or resumes it); returns its final state."""
    final = self.request.retries >= resources.settings().task_max_retries

    async def work(rt: Runtime) -> int:
        started = time.monotonic()
        job = await run_export(rt.exports, export_id, final_attempt=final)
        if job is not None and job.state in EXPORT_OUTCOMES and not already_ended(job, started):
            fmt = "pdf" if job.format == export_pb2.EXPORT_FORMAT_PDF else "png"
            metrics.observe_export(fmt, EXPORT_OUTCOMES[job.state], time.monotonic() - started)
        return int(job.state) if job is not None else 0

    try:
        return resources.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


@shared_task(name=TASK_EXPIRE_EXPORTS, bind=True)
def expire_exports(self: Task[Any, Any]) -> int:
    """Hourly: deletes the files of exports past their expiry (downloads already refuse them)."""

    async def work(rt: Runtime) -> int:
        removed = 0
        while True:
            async with rt.db.transaction() as conn:
                rows = (
                    await conn.execute(
                        select(export_jobs.c.id, export_jobs.c.storage_url)
                        .where(export_jobs.c.storage_url.is_not(None), export_jobs.c.expire_at < func.now())
                        .limit(DUE_BATCH)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
                for row in rows:
                    await rt.exports.storage.adelete(row.storage_url)
                if rows:
                    await conn.execute(
                        update(export_jobs)
                        .where(export_jobs.c.id.in_([row.id for row in rows]))
                        .values(storage_url=None)
                    )
            removed += len(rows)
            if len(rows) < DUE_BATCH:
                return removed

    try:
        return resources.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


# --- materialization --------------------------------------------------------------------------


@shared_task(name=TASK_MATERIALIZE_DASHBOARD, bind=True)
def materialize_dashboard(self: Task[Any, Any], job_id: str) -> int:
    """materialize_all_widgets: runs or resumes the job; returns its final state."""
    final = self.request.retries >= resources.settings().task_max_retries

    async def work(rt: Runtime) -> int:
        job = await run_materialization(rt.store, rt.materializer, job_id, final_attempt=final)
        return int(job.state) if job is not None else 0

    try:
        return resources.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


materialize_all_widgets = materialize_dashboard


@shared_task(name=TASK_MATERIALIZE_WIDGET, bind=True)
def materialize_widget(self: Task[Any, Any], widget_id: str) -> dict[str, Any]:
    """Warms one widget's current data (both masking levels when the query has PHI columns)."""

    async def work(rt: Runtime) -> dict[str, Any]:
        async with rt.db.read() as conn:
            facility = (
                await conn.execute(select(widgets.c.facility_id).where(widgets.c.id == uuid.UUID(widget_id)))
            ).scalar_one_or_none()
        if facility is None:
            return {"widget_id": widget_id, "status": "gone"}
        try:
            done = await rt.materializer.warm(facility, widget_id)
        except RETRYABLE:
            raise
        except TesseraError as exc:
            # Not retried: the same query fails the same way; the next due run tries again.
            log.warning("materialize widget %s failed: %s", widget_id, exc.reason)
            return {"widget_id": widget_id, "status": "failed", "reason": exc.reason}
        return {"widget_id": widget_id, "status": "ok", "rows": done.row_count, "levels": done.levels}

    try:
        return resources.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


@shared_task(name=TASK_DUE_WIDGETS, bind=True)
def materialize_due_widgets(self: Task[Any, Any]) -> list[str]:
    """Beat, every minute: claims widgets whose next_refresh_at is NULL or past (moving it to
    now + their refresh interval in the same statement, SKIP LOCKED, so overlapping runs never
    claim a widget twice) and fans them out to `tessera.materialize.widget`."""

    async def work(rt: Runtime) -> list[str]:
        due = (
            select(widgets.c.id)
            .where(
                widgets.c.query_id.is_not(None),
                or_(widgets.c.next_refresh_at.is_(None), widgets.c.next_refresh_at <= func.now()),
            )
            .order_by(widgets.c.next_refresh_at.asc().nulls_first())
            .limit(DUE_BATCH)
            .with_for_update(skip_locked=True)
        )
        async with rt.db.transaction() as conn:
            claimed = await conn.execute(
                update(widgets)
                .where(widgets.c.id.in_(due.scalar_subquery()))
                .values(
                    next_refresh_at=func.now()
                    + widgets.c.refresh_interval_seconds * literal_column("interval '1 second'")
                )
                .returning(widgets.c.id)
            )
            return [str(i) for i in claimed.scalars()]

    try:
        ids = resources.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)
    for widget_id in ids:
        materialize_widget.apply_async(args=(widget_id,))
    return ids


# --- maintenance ------------------------------------------------------------------------------


@shared_task(name=TASK_REFRESH_VIEWS, bind=True)
def refresh_materialized_views(self: Task[Any, Any]) -> dict[str, int]:
    """Beat, hourly: REFRESH ... CONCURRENTLY every MATERIALIZED_VIEW query's view, record its
    refresh_time (which changes its cache keys) and invalidate its entries (which also reaches
    tier 2 and a Redis that missed the key change)."""

    async def work(rt: Runtime) -> dict[str, int]:
        async with rt.db.read() as conn:
            views = (
                await conn.execute(
                    select(widget_queries.c.id, widget_queries.c.view_name, widget_queries.c.facility_id).where(
                        widget_queries.c.kind == QUERY_KIND_MATERIALIZED_VIEW,
                        widget_queries.c.view_name.is_not(None),
                    )
                )
            ).all()
        refreshed = failed = 0
        for view in views:
            try:
                await rt.views.refresh(view.view_name, view.facility_id)
            except TesseraError as exc:
                # One broken view must not stop the others.
                log.warning("refresh of view %s failed: %s", view.view_name, exc.reason)
                failed += 1
                continue
            async with rt.db.transaction() as conn:
                await conn.execute(
                    update(widget_queries).where(widget_queries.c.id == view.id).values(refresh_time=func.now())
                )
            await rt.cache.invalidate(str(view.id))
            refreshed += 1
        return {"refreshed": refreshed, "failed": failed}

    try:
        return resources.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


@shared_task(name=TASK_CLEANUP, bind=True)
def cleanup(self: Task[Any, Any]) -> dict[str, int]:
    """Daily: cache rows past their maximum staleness (no reader may be served them), request ids
    older than their 24-hour window, and the streams of jobs that ended a while ago (or are gone)."""

    async def work(rt: Runtime) -> dict[str, int]:
        config = rt.settings
        async with rt.db.transaction() as conn:
            cache_rows = await conn.execute(
                delete(widget_data_cache).where(
                    widget_data_cache.c.expires_at
                    < func.now() - config.cache_max_stale_seconds * literal_column("interval '1 second'")
                )
            )
            keys = await conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.created_at < func.now() - IDEMPOTENCY_RETENTION)
            )
        return {
            "cache_rows": int(cache_rows.rowcount or 0),
            "idempotency_keys": int(keys.rowcount or 0),
            "job_streams": await _cleanup_streams(rt),
        }

    try:
        return resources.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


async def _cleanup_streams(rt: Runtime) -> int:
    prefix = f"{rt.settings.redis_prefix}job:"
    retention: Any = rt.settings.job_stream_retention_seconds * literal_column("interval '1 second'")
    deleted = 0
    async for batch in _scan_batches(rt, f"{prefix}*"):
        ids: dict[uuid.UUID, str] = {}
        for raw in batch:
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                ids[uuid.UUID(key[len(prefix) :])] = key
            except ValueError:
                continue
        if not ids:
            continue
        async with rt.db.read() as conn:
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
            deleted += int(await rt.redis.delete(*doomed))
    return deleted


async def _scan_batches(rt: Runtime, pattern: str) -> Any:
    cursor: int = 0
    while True:
        cursor, keys = await rt.redis.scan(cursor=cursor, match=pattern, count=500)
        if keys:
            yield keys
        if cursor == 0:
            return
