"""Celery tasks: sync functions that run async domain code on the process's loop
(`workers.runtime.run`). Materialization runs as the system principal of the widget's facility
(server/materialization/materializer.py says why); every task is idempotent, so late acks and redelivery are
safe; transient failures (a dependency unavailable) retry with exponential backoff and jitter."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from datetime import UTC
from typing import Any, NoReturn

import redis.exceptions
from celery import Task, shared_task
from sqlalchemy.exc import InterfaceError, OperationalError

from dashboard.v1 import common_pb2, export_pb2
from server.app import WorkerRuntime
from server.broker.enqueue import CeleryEnqueuer
from server.broker.names import (
    QUEUE_EXPORTS,
    QUEUE_MATERIALIZE,
    TASK_CLEANUP,
    TASK_DUE_WIDGETS,
    TASK_EXPIRE_EXPORTS,
    TASK_EXPORT,
    TASK_MATERIALIZE_DASHBOARD,
    TASK_MATERIALIZE_WIDGET,
    TASK_MATERIALIZE_WIDGETS,
    TASK_REFRESH_VIEWS,
    TASK_REQUEUE_LOST,
)
from server.broker.probe import BrokerProbe
from server.errors import TesseraError
from server.exports.expiry import expire_files
from server.exports.runner import run_export
from server.jobs.sweep import requeue_lost
from server.maintenance import cleanup as cleanup_stale
from server.materialization.runner import TRANSIENT_ERRORS, run_materialization
from server.materialization.schedule import Refreshed, refresh_views, refresh_widgets, widget_facility
from server.materialization.sweep import SweepLimits, SweepResult, sweep_due_widgets
from workers import metrics, runtime

log = logging.getLogger("tessera.workers")

# Export files expired per hourly run; the rest go at the next.
EXPIRY_BATCH = 500
RETRYABLE: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS,
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def _retry(task: Task[Any, Any], exc: BaseException, args: tuple[Any, ...] | None = None) -> NoReturn:
    config = runtime.settings
    backoff = min(float(config.task_retry_backoff_max_seconds), 2.0**task.request.retries)
    # Full jitter: retries of many tasks that failed together do not come back together.
    raise task.retry(
        exc=exc if isinstance(exc, Exception) else None,
        countdown=random.uniform(backoff / 2, backoff),
        max_retries=config.task_max_retries,
        args=args,
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
    final = self.request.retries >= runtime.settings.task_max_retries

    async def work(rt: WorkerRuntime) -> int:
        started = time.monotonic()
        job = await run_export(rt.exports, export_id, final_attempt=final)
        if job is not None and job.state in EXPORT_OUTCOMES and not already_ended(job, started):
            fmt = "pdf" if job.format == export_pb2.EXPORT_FORMAT_PDF else "png"
            metrics.observe_export(fmt, EXPORT_OUTCOMES[job.state], time.monotonic() - started)
        return int(job.state) if job is not None else 0

    try:
        return runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


@shared_task(name=TASK_EXPIRE_EXPORTS, bind=True)
def expire_exports(self: Task[Any, Any]) -> int:
    """Hourly: deletes the files of exports past their expiry (downloads already refuse them)."""

    async def work(rt: WorkerRuntime) -> int:
        return await expire_files(rt.core.db, rt.exports.storage, EXPIRY_BATCH)

    try:
        return runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


# --- materialization --------------------------------------------------------------------------


@shared_task(name=TASK_MATERIALIZE_DASHBOARD, bind=True)
def materialize_dashboard(self: Task[Any, Any], job_id: str) -> int:
    """materialize_all_widgets: runs or resumes the job; returns its final state."""
    final = self.request.retries >= runtime.settings.task_max_retries

    async def work(rt: WorkerRuntime) -> int:
        job = await run_materialization(
            rt.core.materialization_store,
            rt.materializer,
            job_id,
            final_attempt=final,
            concurrency=rt.settings.materialize_concurrency,
        )
        return int(job.state) if job is not None else 0

    try:
        return runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


materialize_all_widgets = materialize_dashboard


@shared_task(name=TASK_MATERIALIZE_WIDGET, bind=True)
def materialize_widget(self: Task[Any, Any], widget_id: str) -> dict[str, Any]:
    """Warms one widget's current data (both masking levels when the query has PHI columns)."""

    async def work(rt: WorkerRuntime) -> dict[str, Any]:
        facility = await widget_facility(rt.core.db, widget_id)
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
        return runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


@shared_task(name=TASK_MATERIALIZE_WIDGETS, bind=True)
def materialize_widgets(self: Task[Any, Any], widget_ids: list[str]) -> dict[str, int]:
    """A chunk of the due-widget sweep, refreshed a few at a time; a retry carries only the
    widgets that met an unavailable dependency."""

    async def work(rt: WorkerRuntime) -> Refreshed:
        return await refresh_widgets(
            rt.core.db,
            rt.materializer,
            widget_ids,
            concurrency=rt.settings.materialize_concurrency,
            transient=RETRYABLE,
        )

    try:
        done = runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)
    if done.transient and self.request.retries < runtime.settings.task_max_retries:
        _retry(self, next(iter(done.transient.values())), args=(list(done.transient),))
    return {"ok": len(done.ok), "gone": len(done.gone), "failed": len(done.failed), "transient": len(done.transient)}


_probe: BrokerProbe | None = None


def _waiting_tasks() -> int:
    """Tasks waiting in the materialize queue (the broker unreachable counts as full)."""
    global _probe
    if _probe is None:
        _probe = BrokerProbe(runtime.settings)
    depths = _probe.depths([QUEUE_MATERIALIZE])
    return (
        depths.depths.get(QUEUE_MATERIALIZE, 0) if depths.reachable else runtime.settings.materialize_max_waiting_tasks
    )


@shared_task(name=TASK_DUE_WIDGETS, bind=True)
def materialize_due_widgets(self: Task[Any, Any]) -> dict[str, Any]:
    """Beat, every minute: drains the widgets that are due, a chunk per `tessera.materialize.widgets`
    task, as fast as workers take them (server/materialization/sweep.py)."""
    config = runtime.settings

    def dispatch(ids: list[str]) -> None:
        materialize_widgets.apply_async(args=(ids,))

    async def waiting() -> int:
        return await asyncio.to_thread(_waiting_tasks)

    async def work(rt: WorkerRuntime) -> SweepResult:
        limits = SweepLimits(
            chunk=config.materialize_chunk_size,
            max_waiting=config.materialize_max_waiting_tasks,
            budget_seconds=config.materialize_sweep_budget_seconds,
        )
        return await sweep_due_widgets(rt.core.db, dispatch, waiting, limits)

    try:
        done = runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)
    if not done.drained:
        log.warning(
            "due-widget sweep: %d widgets claimed, more still due after %.0f s (held off %.0f s): workers are behind",
            done.claimed,
            config.materialize_sweep_budget_seconds,
            done.held_off_seconds,
        )
    return dataclasses.asdict(done)


# --- maintenance ------------------------------------------------------------------------------


@shared_task(name=TASK_REFRESH_VIEWS, bind=True)
def refresh_materialized_views(self: Task[Any, Any]) -> dict[str, int]:
    """Beat, hourly: refreshes every managed materialized view (server/materialization/schedule.py)."""

    async def work(rt: WorkerRuntime) -> dict[str, int]:
        done = await refresh_views(rt.core.db, rt.views, rt.core.cache)
        return {"refreshed": done.refreshed, "failed": done.failed}

    try:
        return runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


@shared_task(name=TASK_CLEANUP, bind=True)
def cleanup(self: Task[Any, Any]) -> dict[str, int]:
    """Daily: server/maintenance.py's clean-up."""

    async def work(rt: WorkerRuntime) -> dict[str, int]:
        return dataclasses.asdict(await cleanup_stale(rt.core.db, rt.core.redis, rt.settings))

    try:
        return runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


# --- lost messages ----------------------------------------------------------------------------


@shared_task(name=TASK_REQUEUE_LOST, bind=True)
def requeue_lost_jobs(self: Task[Any, Any]) -> dict[str, int]:
    """Every minute: sends again the task of every job QUEUED past `job_queued_timeout_seconds`
    (its message was lost); a second delivery of a live one finds the job held and leaves it."""
    timeout = runtime.settings.job_queued_timeout_seconds
    materialize = CeleryEnqueuer(self.app, TASK_MATERIALIZE_DASHBOARD, QUEUE_MATERIALIZE)
    export = CeleryEnqueuer(self.app, TASK_EXPORT, QUEUE_EXPORTS)

    async def work(rt: WorkerRuntime) -> dict[str, int]:
        core = rt.core
        materializations = await requeue_lost(core.db, core.materialization_store, materialize, timeout)
        exports = await requeue_lost(core.db, core.export_store, export, timeout)
        return {"materializations": len(materializations), "exports": len(exports)}

    try:
        return runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)
