"""What the `tessera.materialize.dashboard` task runs: materialize every widget of a job that is
not done yet, recording each step as a new revision.

Idempotent: progress is derived from the per-widget states (never incremented), a widget already
SUCCEEDED or FAILED is skipped, and each transition is applied only when the widget is not
terminal yet; so a redelivered task (its worker died) resumes where the job stands and two
deliveries running at once (a Redis visibility timeout shorter than the task) cannot
double-count. A widget left RUNNING by a dead worker is simply materialized again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
import redis.exceptions
from sqlalchemy.exc import InterfaceError, OperationalError

from dashboard.v1 import common_pb2, widget_pb2
from server.errors import InvalidArgument, TesseraError, Unavailable
from server.jobs.sweep import exclusive
from server.materialization.materializer import Materializer
from server.materialization.store import TERMINAL, MaterializationStore
from server.protojson import from_json

__all__ = ["TRANSIENT_ERRORS", "run_materialization", "safe_error"]

log = logging.getLogger("tessera.jobs")

QUEUED, RUNNING = common_pb2.JOB_STATE_QUEUED, common_pb2.JOB_STATE_RUNNING
SUCCEEDED, FAILED = common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED
# Worth a retry of the task (with backoff) rather than failing the widget. The database's as
# SQLAlchemy wraps them, and as psycopg raises them for statements run on the driver
# (server/db/compiled.py).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    Unavailable,
    OSError,
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# Reasons whose messages may quote data: the job is readable by callers without PHI access, and
# the materializer runs with it, so only the reason and SQLSTATE are kept.
_DATA_BEARING_REASONS = frozenset({"QUERY_FAILED", "QUERY_PARAMETER_INVALID"})


def safe_error(exc: TesseraError) -> common_pb2.JobError:
    if exc.reason in _DATA_BEARING_REASONS or isinstance(exc, InvalidArgument):
        sqlstate = exc.metadata.get("sqlstate", "")
        detail = f" (SQLSTATE {sqlstate})" if sqlstate else ""
        return common_pb2.JobError(reason=exc.reason, message=f"the widget's query failed{detail}")
    return common_pb2.JobError(reason=exc.reason, message=exc.message)


def _progress(job: widget_pb2.MaterializationJob, message: str) -> None:
    total = len(job.widgets)
    done = sum(1 for w in job.widgets if w.state == SUCCEEDED)
    failed = sum(1 for w in job.widgets if w.state == FAILED)
    job.progress.CopyFrom(
        common_pb2.JobProgress(
            total_steps=total,
            completed_steps=done,
            failed_steps=failed,
            percent=100 if total == 0 else (done + failed) * 100 // total,
            message=message,
        )
    )


def _widget_step(
    index: int,
    state: int,
    message: str,
    *,
    row_count: int = 0,
    error: common_pb2.JobError | None = None,
) -> Callable[[widget_pb2.MaterializationJob], bool]:
    def mutate(job: widget_pb2.MaterializationJob) -> bool:
        if job.state in TERMINAL:
            return False
        entry = job.widgets[index]
        if entry.state in (SUCCEEDED, FAILED) or entry.state == state:
            return False  # already recorded (by another delivery)
        entry.state = state  # type: ignore[assignment]
        entry.row_count = row_count
        if error is not None:
            entry.error.CopyFrom(error)
        job.state = RUNNING
        _progress(job, message)
        return True

    return mutate


def _finish(job: widget_pb2.MaterializationJob) -> bool:
    if job.state in TERMINAL or any(w.state not in (SUCCEEDED, FAILED) for w in job.widgets):
        return False
    failed = sum(1 for w in job.widgets if w.state == FAILED)
    total = len(job.widgets)
    if failed:
        job.state = FAILED
        job.error.CopyFrom(
            common_pb2.JobError(reason="WIDGETS_FAILED", message=f"{failed} of {total} widgets failed to materialize")
        )
        _progress(job, f"failed: {failed} of {total} widgets failed")
    else:
        job.state = SUCCEEDED
        _progress(job, f"done: {total} of {total} widgets materialized")
    return True


def _start(job: widget_pb2.MaterializationJob) -> bool:
    if job.state != QUEUED:
        return False
    job.state = RUNNING
    _progress(job, "started")
    return True


async def run_materialization(
    store: MaterializationStore,
    materializer: Materializer,
    job_id: str,
    *,
    final_attempt: bool = True,
    concurrency: int = 1,
) -> widget_pb2.MaterializationJob | None:
    """Runs (or resumes) the job. Transient errors propagate (the task retries with backoff)
    unless this is the final attempt, which records them as the widget's failure. None: the job
    is gone, or another delivery of its task holds it (server/jobs/sweep.py)."""
    async with exclusive(store.db, job_id) as mine:
        if not mine:
            return None
        return await _materialize(store, materializer, job_id, final_attempt=final_attempt, concurrency=concurrency)


async def _materialize(
    store: MaterializationStore, materializer: Materializer, job_id: str, *, final_attempt: bool, concurrency: int
) -> widget_pb2.MaterializationJob | None:
    row = await store.row(job_id)
    if row is None:
        log.info("jobs: %s no longer exists (its dashboard was deleted?)", job_id)
        return None
    if row.state in TERMINAL:
        return await store.get(job_id)
    await store.change(job_id, _start)
    job = await store.get(job_id)
    params = row.params or {}
    version = int(params.get("dashboard_version", 0))
    filters = {
        name: from_json(value, common_pb2.ParameterValue())
        for name, value in (params.get("filter_values") or {}).items()
    }
    total = len(job.widgets)
    # Widgets run `concurrency` at a time (their SQL waits on PostgreSQL); each records its own
    # steps under the job's row lock, so concurrent steps never lose one another's revisions.
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(index: int, widget_id: str) -> None:
        step = f"widget {index + 1} of {total}"
        async with gate:
            await store.change(job_id, _widget_step(index, RUNNING, f"materializing {step}"))
            try:
                done = await materializer.warm(
                    row.facility_id, widget_id, dashboard_version=version, filter_values=filters
                )
            except TRANSIENT_ERRORS as exc:
                if not final_attempt:
                    raise
                error = common_pb2.JobError(
                    reason="UNAVAILABLE", message="a dependency stayed unavailable; retry later"
                )
                if isinstance(exc, TesseraError):
                    error = safe_error(exc)
                await store.change(job_id, _widget_step(index, FAILED, f"{step} failed", error=error))
            except TesseraError as exc:
                await store.change(job_id, _widget_step(index, FAILED, f"{step} failed", error=safe_error(exc)))
            except Exception:
                # A bug: logged with its traceback; the caller sees only a reason.
                log.exception("jobs: materializing widget %s of job %s failed", widget_id, job_id)
                error = common_pb2.JobError(reason="MATERIALIZATION_FAILED", message="materializing the widget failed")
                await store.change(job_id, _widget_step(index, FAILED, f"{step} failed", error=error))
            else:
                await store.change(job_id, _widget_step(index, SUCCEEDED, f"{step} done", row_count=done.row_count))

    pending = [
        one(index, entry.widget_id) for index, entry in enumerate(job.widgets) if entry.state not in (SUCCEEDED, FAILED)
    ]
    outcomes = await asyncio.gather(*pending, return_exceptions=True)
    # A transient error (not the final attempt) retries the task: the widgets done stay done.
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    await store.change(job_id, _finish)
    return await store.get(job_id)
