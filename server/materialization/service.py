"""The materialization-job domain behind MaterializeDashboard, GetMaterializationJob and
WatchMaterializationJob.

Access goes through the job's dashboard: a caller who cannot read it gets NOT_FOUND for the job
(never revealing another facility's jobs). A caller limited to the published version
(READ_PUBLISHED) materializes the published version and sees only the jobs they requested.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import common_pb2, widget_pb2
from server import idempotency
from server.access.policy import Access
from server.auth.principal import Principal
from server.broker.enqueue import Enqueue
from server.broker.names import KIND_MATERIALIZE
from server.dashboards.access import load_dashboard
from server.dashboards.versions import load_snapshot
from server.db.engine import Database
from server.db.schema import widgets
from server.errors import NotFound, PermissionDenied
from server.jobs.revisions import TERMINAL
from server.materialization.store import JobStore
from server.protojson import to_json

__all__ = ["JobDomain"]

log = logging.getLogger("tessera.jobs")

METHOD = "MaterializeDashboard"


class JobDomain:
    def __init__(self, db: Database, store: JobStore, enqueue: Enqueue) -> None:
        self._db = db
        self.store = store
        self._enqueue = enqueue

    async def materialize(
        self, principal: Principal, request: widget_pb2.MaterializeDashboardRequest, digest: bytes
    ) -> widget_pb2.MaterializationJob:
        request_id = request.request_id
        try:
            async with self._db.transaction() as conn:
                if request_id:
                    existing = await idempotency.find(conn, principal.subject, METHOD, request_id, digest)
                    if existing is not None:
                        return await self.get(principal, str(existing))
                job = await self._create(conn, principal, request)
                if request_id:
                    await idempotency.remember(conn, principal.subject, METHOD, request_id, digest, uuid.UUID(job.id))
        except IntegrityError:
            # A concurrent retry with the same request_id won the race: return its job.
            winner = await idempotency.race_winner(self._db, principal.subject, METHOD, request_id, digest)
            if winner is None:
                raise
            return await self.get(principal, str(winner))
        await self.store.publish(job)
        error = common_pb2.JobError(reason="BROKER_UNAVAILABLE", message="the job could not be queued; retry")

        def fail(current: widget_pb2.MaterializationJob) -> bool:
            if current.state in TERMINAL:
                return False
            current.state = common_pb2.JOB_STATE_FAILED
            current.error.CopyFrom(error)
            return True

        await self.store.enqueue(job, self._enqueue, fail, "materialization")
        return job

    async def _create(
        self, conn: AsyncConnection, principal: Principal, request: widget_pb2.MaterializeDashboardRequest
    ) -> widget_pb2.MaterializationJob:
        board, access = await load_dashboard(conn, principal, request.dashboard_id, Access.READ_PUBLISHED)
        version = request.dashboard_version
        if access is Access.READ_PUBLISHED:
            # Such a reader sees the published version and nothing else.
            if version and version != board.published_version:
                raise NotFound("dashboard_version", f"{board.id}@{version}")
            version = board.published_version
        widget_ids = await _widgets_with_queries(conn, board.id, version)
        params = {
            "dashboard_version": version,
            "filter_values": {name: to_json(value) for name, value in request.filter_values.items()},
        }
        return await JobStore.insert(
            conn,
            kind=KIND_MATERIALIZE,
            dashboard_id=board.id,
            facility_id=board.facility_id,
            requested_by=principal.subject,
            params=params,
            widget_ids=widget_ids,
        )

    async def _visible_row(self, principal: Principal, job_id: str) -> Any:
        row = await self.store.row(job_id)
        if row is None:
            raise NotFound("materialization_job", job_id)
        try:
            async with self._db.read() as conn:
                _, access = await load_dashboard(conn, principal, str(row.dashboard_id), Access.READ_PUBLISHED)
        except (NotFound, PermissionDenied):
            raise NotFound("materialization_job", job_id) from None
        if access is Access.READ_PUBLISHED and row.requested_by != principal.subject:
            raise NotFound("materialization_job", job_id)
        return row

    async def get(self, principal: Principal, job_id: str) -> widget_pb2.MaterializationJob:
        await self._visible_row(principal, job_id)
        return await self.store.get(job_id)

    async def watch(
        self, principal: Principal, job_id: str, since_revision: int
    ) -> AsyncIterator[widget_pb2.WatchMaterializationJobResponse]:
        await self._visible_row(principal, job_id)
        async for event in self.store.watch(job_id, since_revision):
            yield event


async def _widgets_with_queries(conn: AsyncConnection, dashboard_id: uuid.UUID, version: int) -> list[str]:
    """The widgets to materialize, in grid order: from the version's snapshot, or the current ones."""
    if version:
        board = await load_snapshot(conn, dashboard_id, version)
        ordered = sorted(board.widgets, key=lambda w: (w.position.y, w.position.x))
        return [w.id for w in ordered if w.HasField("query") and w.query.query_id]
    rows = await conn.execute(
        select(widgets.c.id)
        .where(widgets.c.dashboard_id == dashboard_id, widgets.c.query_id.is_not(None))
        .order_by(widgets.c.y, widgets.c.x, widgets.c.id)
    )
    ids: list[uuid.UUID] = list(rows.scalars().all())
    return [str(ident) for ident in ids]
