"""Materialization jobs: the `jobs` table as a RevisionStore (server/jobs/revisions.py holds the
mechanics: revisions under the row lock, snapshots on a bounded Redis Stream, resumable watches)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import common_pb2, widget_pb2
from server.config import Settings
from server.db.engine import Database
from server.db.schema import jobs
from server.jobs.revisions import TERMINAL, JobKind, RevisionStore
from server.protojson import from_json, to_json, ts
from server.redis_client import RedisClient

__all__ = [
    "MATERIALIZATION",
    "TERMINAL",
    "MaterializationStore",
    "job_from_row",
    "stream_key",
]

STREAM = "job"


def stream_key(prefix: str, job_id: str) -> str:
    return f"{prefix}{STREAM}:{job_id.lower()}"


def set_times(message: Any, row: Any) -> None:
    """create_time, update_time and end_time from the row's timestamps."""
    for field, value in (("create_time", row.created_at), ("update_time", row.updated_at), ("end_time", row.ended_at)):
        stamp = ts(value)
        if stamp is not None:
            getattr(message, field).CopyFrom(stamp)


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
    set_times(job, row)
    return job


def _values(job: widget_pb2.MaterializationJob) -> dict[str, Any]:
    return {
        "state": job.state,
        "progress": to_json(job.progress),
        "widgets": [to_json(w) for w in job.widgets],
        "error": to_json(job.error) if job.HasField("error") else None,
    }


MATERIALIZATION: JobKind[widget_pb2.MaterializationJob, widget_pb2.WatchMaterializationJobResponse] = JobKind(
    table=jobs,
    resource_type="materialization_job",
    stream=STREAM,
    parse=widget_pb2.MaterializationJob.FromString,
    from_row=job_from_row,
    to_values=_values,
    event=lambda job: widget_pb2.WatchMaterializationJobResponse(job=job),
    heartbeat=lambda beat: widget_pb2.WatchMaterializationJobResponse(heartbeat=beat),
)


class MaterializationStore(RevisionStore[widget_pb2.MaterializationJob, widget_pb2.WatchMaterializationJobResponse]):
    def __init__(self, db: Database, redis: RedisClient, settings: Settings) -> None:
        super().__init__(MATERIALIZATION, db, redis, settings)

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
