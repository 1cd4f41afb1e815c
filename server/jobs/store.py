"""Job state and its event stream.

The `jobs` row is the truth. Every change runs in one transaction that locks the row, applies the
change to a MaterializationJob working copy and writes it back with `revision = revision + 1`;
AFTER the commit the new snapshot is appended to the bounded stream `{prefix}job:{id}`
(XADD MAXLEN ~ N, fields `rev` and `job`). Publishing after commit means a watcher that sees
revision r in the stream always finds at least r in the row.

A watch reads the row, sends the snapshot (or, when resuming, the missed revisions still in the
stream), then blocks on the stream. Revisions <= the last one sent are skipped (no duplicates);
a revision beyond last+1 (a trimmed stream, a lost XADD, Redis down for a while) makes it re-read
the row and send that snapshot (no gaps: every snapshot is the whole job). While idle it sends
heartbeats and re-reads the row each time (so an XADD lost to a crash between commit and publish
costs at most one heartbeat interval). Redis unavailable: it polls the row instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from google.protobuf import timestamp_pb2
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import common_pb2, widget_pb2
from server.config import Settings
from server.db.engine import Database
from server.db.schema import jobs
from server.errors import NotFound
from server.protojson import from_json, to_json, ts

__all__ = [
    "TERMINAL",
    "JobStore",
    "job_from_row",
    "stream_key",
]

log = logging.getLogger("tessera.jobs")

TERMINAL = frozenset({common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED})
_REDIS_ERRORS = (redis.exceptions.RedisError, OSError)
# XREAD BLOCK stays well under the client's socket timeout (5 s in server.app).
_BLOCK_MAX_SECONDS = 2.0
# After a Redis failure a watch polls the row for this long before trying Redis again.
_REDIS_RETRY_SECONDS = 2.0

# Mutates the working copy; returns False when there is nothing to change (no new revision).
Mutation = Callable[[widget_pb2.MaterializationJob], bool]


def stream_key(prefix: str, job_id: str) -> str:
    return f"{prefix}job:{job_id.lower()}"


def job_from_row(row: Any) -> widget_pb2.MaterializationJob:
    job = widget_pb2.MaterializationJob(
        id=str(row.id),
        dashboard_id=str(row.dashboard_id),
        state=row.state,
        progress=from_json(row.progress, common_pb2.JobProgress()),
        widgets=[from_json(w, widget_pb2.WidgetMaterialization()) for w in row.widgets or []],
        revision=row.revision,
    )
    if row.error:
        job.error.CopyFrom(from_json(row.error, common_pb2.JobError()))
    for field, value in (("create_time", row.created_at), ("update_time", row.updated_at), ("end_time", row.ended_at)):
        stamp = ts(value)
        if stamp is not None:
            getattr(job, field).CopyFrom(stamp)
    return job


def _entries(answer: Any) -> list[tuple[str, int, bytes]]:
    """(entry id, revision, snapshot bytes) from an XREAD answer ([(stream, [(id, fields)])])."""
    out: list[tuple[str, int, bytes]] = []
    for _, entries in answer or []:
        for entry_id, fields in entries or []:
            ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            out.append((ident, int(fields[b"rev"]), bytes(fields[b"job"])))
    return out


def _heartbeat(revision: int) -> widget_pb2.WatchMaterializationJobResponse:
    now = timestamp_pb2.Timestamp()
    now.FromDatetime(datetime.now(UTC))
    return widget_pb2.WatchMaterializationJobResponse(heartbeat=common_pb2.Heartbeat(time=now, revision=revision))


def _event(job: widget_pb2.MaterializationJob) -> widget_pb2.WatchMaterializationJobResponse:
    return widget_pb2.WatchMaterializationJobResponse(job=job)


class JobStore:
    def __init__(self, db: Database, redis: aioredis.Redis, settings: Settings) -> None:
        self._db = db
        self._redis = redis
        self._prefix = settings.redis_prefix
        self._heartbeat = float(settings.job_heartbeat_seconds)
        self._poll = float(settings.job_poll_seconds)
        self._max_len = int(settings.job_stream_max_len)
        self._ttl = int(settings.job_stream_ttl_seconds)

    # --- write ----------------------------------------------------------------------------------

    @staticmethod
    async def insert(
        conn: AsyncConnection,
        *,
        kind: str,
        dashboard_id: uuid.UUID,
        facility_id: str,
        requested_by: str,
        params: Mapping[str, Any],
        widget_ids: list[str],
    ) -> widget_pb2.MaterializationJob:
        """Creates a QUEUED job (revision 1) in the caller's transaction; the caller publishes
        it after commit."""
        total = len(widget_ids)
        progress = common_pb2.JobProgress(total_steps=total, message=f"queued: {total} widgets")
        entries = [
            to_json(widget_pb2.WidgetMaterialization(widget_id=w, state=common_pb2.JOB_STATE_QUEUED))
            for w in widget_ids
        ]
        row = (
            await conn.execute(
                jobs.insert()
                .values(
                    kind=kind,
                    dashboard_id=dashboard_id,
                    facility_id=facility_id,
                    requested_by=requested_by,
                    state=common_pb2.JOB_STATE_QUEUED,
                    params=dict(params),
                    progress=to_json(progress),
                    widgets=entries,
                    revision=1,
                )
                .returning(jobs)
            )
        ).one()
        return job_from_row(row)

    async def change(self, job_id: str, mutate: Mutation) -> widget_pb2.MaterializationJob | None:
        """Applies `mutate` under the row lock and commits it as the next revision, then
        publishes it. None when the job does not exist or `mutate` changed nothing."""
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(select(jobs).where(jobs.c.id == uuid.UUID(job_id)).with_for_update())
            ).one_or_none()
            if row is None:
                return None
            job = job_from_row(row)
            if not mutate(job):
                return None
            values: dict[str, Any] = {
                "state": job.state,
                "progress": to_json(job.progress),
                "widgets": [to_json(w) for w in job.widgets],
                "error": to_json(job.error) if job.HasField("error") else None,
                "revision": jobs.c.revision + 1,
            }
            if job.state in TERMINAL and row.ended_at is None:
                values["ended_at"] = func.now()
            updated = (
                await conn.execute(update(jobs).where(jobs.c.id == row.id).values(**values).returning(jobs))
            ).one()
        changed = job_from_row(updated)
        # One line per progress event (the worker's logs carry the rpc's correlation id).
        log.info(
            "job progress",
            extra={
                "job_id": changed.id,
                "revision": changed.revision,
                "state": common_pb2.JobState.Name(changed.state),
                "percent": changed.progress.percent,
                "step": changed.progress.message,
            },
        )
        await self.publish(changed)
        return changed

    async def publish(self, job: widget_pb2.MaterializationJob) -> None:
        """Appends the snapshot to the job's stream. A failure is logged, not raised: watchers
        recover from the row (gap detection, heartbeat re-reads, polling)."""
        key = stream_key(self._prefix, job.id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(
                    key,
                    {"rev": str(job.revision), "job": job.SerializeToString()},
                    maxlen=self._max_len,
                    approximate=True,
                )
                pipe.expire(key, self._ttl)
                await pipe.execute()
        except _REDIS_ERRORS as exc:
            log.warning("jobs: could not publish revision %d of %s: %r", job.revision, job.id, exc)

    # --- read -----------------------------------------------------------------------------------

    async def row(self, job_id: str) -> Any:
        try:
            ident = uuid.UUID(job_id)
        except ValueError:
            return None
        async with self._db.read() as conn:
            return (await conn.execute(select(jobs).where(jobs.c.id == ident))).one_or_none()

    async def get(self, job_id: str) -> widget_pb2.MaterializationJob:
        row = await self.row(job_id)
        if row is None:
            raise NotFound("materialization_job", job_id)
        return job_from_row(row)

    async def watch(
        self, job_id: str, since_revision: int
    ) -> AsyncIterator[widget_pb2.WatchMaterializationJobResponse]:
        """The watch stream (see the module docstring). Access is the caller's business."""
        job = await self.get(job_id)
        key = stream_key(self._prefix, job.id)
        last = since_revision
        if since_revision < job.revision:
            for caught_up in await self._catch_up(key, since_revision, job):
                yield _event(caught_up)
                last = caught_up.revision
                if caught_up.state in TERMINAL:
                    return
        elif job.state in TERMINAL:
            return  # the caller already has the final revision
        cursor = "0-0"
        redis_retry_at = 0.0
        next_beat = time.monotonic() + self._heartbeat
        while True:
            wait = max(0.0, next_beat - time.monotonic())
            fresh: list[widget_pb2.MaterializationJob] = []
            if time.monotonic() >= redis_retry_at:
                try:
                    block_ms = max(1, round(min(wait, _BLOCK_MAX_SECONDS) * 1000))
                    answer = await self._redis.xread({key: cursor}, count=100, block=block_ms)
                except _REDIS_ERRORS as exc:
                    log.warning("jobs: watch of %s polls the row, Redis failed: %r", job_id, exc)
                    redis_retry_at = time.monotonic() + _REDIS_RETRY_SECONDS
                    answer = []
                for entry_id, revision, payload in _entries(answer):
                    cursor = entry_id
                    if revision <= last:
                        continue
                    expected = fresh[-1].revision + 1 if fresh else last + 1
                    if revision == expected:
                        fresh.append(widget_pb2.MaterializationJob.FromString(payload))
                    else:
                        # A gap: the row holds at least this revision (published after commit).
                        fresh.append(await self.get(job_id))
                        break
            else:
                await asyncio.sleep(min(self._poll, wait) if wait > 0 else 0)
                current = await self.get(job_id)
                if current.revision > last:
                    fresh.append(current)
            for snapshot in fresh:
                if snapshot.revision <= last:
                    continue
                yield _event(snapshot)
                last = snapshot.revision
                next_beat = time.monotonic() + self._heartbeat
                if snapshot.state in TERMINAL:
                    return
            if time.monotonic() >= next_beat:
                current = await self.get(job_id)
                if current.revision > last:
                    yield _event(current)
                    last = current.revision
                    if current.state in TERMINAL:
                        return
                else:
                    yield _heartbeat(last)
                next_beat = time.monotonic() + self._heartbeat

    async def _catch_up(
        self, key: str, since_revision: int, current: widget_pb2.MaterializationJob
    ) -> list[widget_pb2.MaterializationJob]:
        """What a watch sends first: the snapshot (since 0); for a resume, every revision after
        `since_revision` that the stream still holds contiguously, completed by the row's
        snapshot when the stream ends early; just the row's snapshot when the stream cannot
        bridge the gap."""
        if since_revision == 0:
            return [current]
        try:
            entries = await self._redis.xrange(key, "-", "+")
        except _REDIS_ERRORS as exc:
            log.warning("jobs: resume from the row, Redis failed: %r", exc)
            return [current]
        missed: list[widget_pb2.MaterializationJob] = []
        expected = since_revision + 1
        for _, revision, payload in _entries([(key, entries)]):
            if revision < expected:
                continue
            if revision != expected:
                break
            missed.append(widget_pb2.MaterializationJob.FromString(payload))
            expected += 1
        if not missed:
            return [current]
        if missed[-1].revision < current.revision:
            missed.append(current)
        return missed
