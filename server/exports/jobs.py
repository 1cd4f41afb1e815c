"""Export jobs: the `export_jobs` table as a RevisionStore (revisions under the row lock, snapshots
on a bounded Redis Stream, resumable watches; see server/jobs/revisions.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from dashboard.v1 import common_pb2, export_pb2
from server.config import Settings
from server.db.engine import Database
from server.db.schema import export_jobs
from server.jobs.revisions import TERMINAL, JobKind, RevisionStore
from server.materialization.store import set_times
from server.protojson import from_json, to_json
from server.redis_client import RedisClient

__all__ = ["EXPORT", "ExportStore", "export_from_row", "failed"]


def export_from_row(row: Any) -> export_pb2.ExportJob:
    job = export_pb2.ExportJob(
        id=str(row.id),
        dashboard_id=str(row.dashboard_id) if row.dashboard_id else "",
        dashboard_version=row.dashboard_version,
        format=row.format,
        options=from_json(row.options, export_pb2.ExportOptions()),
        state=row.state,
        stage=row.stage,
        progress=from_json(row.progress, common_pb2.JobProgress()),
        requested_by=row.requested_by,
        revision=row.revision,
        widget_id=str(row.widget_id) if row.widget_id else "",
    )
    for name, value in (row.filter_values or {}).items():
        job.filter_values[name].CopyFrom(from_json(value, common_pb2.ParameterValue()))
    if row.query_id:
        job.query.query_id = str(row.query_id)
        job.query.query_version = row.query_version or 0
        for name, value in (row.parameter_values or {}).items():
            job.query.parameter_values[name].CopyFrom(from_json(value, common_pb2.ParameterValue()))
    if row.file:
        job.file.CopyFrom(from_json(row.file, export_pb2.ExportFile()))
    if row.error:
        job.error.CopyFrom(from_json(row.error, common_pb2.JobError()))
    set_times(job, row)
    return job


def failed(reason: str, message: str) -> Callable[[export_pb2.ExportJob], bool]:
    """The mutation that ends a job FAILED with this error (nothing, for a job already ended)."""

    def fail(job: export_pb2.ExportJob) -> bool:
        if job.state in TERMINAL:
            return False
        job.state = common_pb2.JOB_STATE_FAILED
        job.stage = export_pb2.EXPORT_STAGE_DONE
        job.progress.message = "failed"
        job.error.CopyFrom(common_pb2.JobError(reason=reason, message=message))
        return True

    return fail


def _values(job: export_pb2.ExportJob) -> dict[str, Any]:
    has_file = job.HasField("file")
    return {
        "state": job.state,
        "stage": job.stage,
        "progress": to_json(job.progress),
        "file": to_json(job.file) if has_file else None,
        "error": to_json(job.error) if job.HasField("error") else None,
        "expire_at": job.file.expire_time.ToDatetime(tzinfo=UTC) if has_file else None,
    }


EXPORT: JobKind[export_pb2.ExportJob, export_pb2.WatchExportResponse] = JobKind(
    table=export_jobs,
    resource_type="export",
    stream="export",
    parse=export_pb2.ExportJob.FromString,
    from_row=export_from_row,
    to_values=_values,
    event=lambda job: export_pb2.WatchExportResponse(export=job),
    heartbeat=lambda beat: export_pb2.WatchExportResponse(heartbeat=beat),
)


class ExportStore(RevisionStore[export_pb2.ExportJob, export_pb2.WatchExportResponse]):
    def __init__(self, db: Database, redis: RedisClient, settings: Settings) -> None:
        super().__init__(EXPORT, db, redis, settings)
