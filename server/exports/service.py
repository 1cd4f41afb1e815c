"""The export domain behind ExportService.

An export is private to the principal who asked for it: its file may hold PHI that only they may
see unmasked, so nobody else gets, watches, cancels, lists or downloads it, and they only while
they can still read the dashboard (NOT_FOUND otherwise, never revealing it). A file that shows PHI
unmasked is refused (PERMISSION_DENIED) to its requester once they lost `phi:read`.

Creating validates everything a worker would otherwise fail on later: the version (the published
one when none is given; FAILED_PRECONDITION for a dashboard never published), filter names and
values (resolved for every widget exactly as GetWidgetData would), and options (page geometry).
A batch is all or none: every item is validated, then all rows are inserted in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import common_pb2, dashboard_pb2, export_pb2, query_pb2, widget_pb2
from server import idempotency, pagination
from server.access.policy import (
    Access,
    JobResource,
    QueryFacts,
    job_visible,
    query_export_visible,
    require_export_file,
    visible_exports,
)
from server.auth.principal import Principal
from server.broker.enqueue import Enqueue
from server.dashboards.access import job_facts, load_dashboard, readable_access, visible_job_row
from server.dashboards.versions import load_snapshot
from server.db.engine import Database
from server.db.schema import export_jobs, widget_queries
from server.errors import (
    DataLoss,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    TesseraError,
)
from server.exports.crypto import TamperedFile, UnknownKey
from server.exports.jobs import ExportStore, export_from_row, failed
from server.exports.options import geometry, normalized
from server.exports.principals import principal_to_json
from server.exports.storage import ExportStorage
from server.jobs.revisions import TERMINAL
from server.protojson import to_json
from server.queries.parameters import bind
from server.queries.service import QueryDomain
from server.widgetdata.service import WidgetDataDomain

__all__ = ["ExportDomain"]

log = logging.getLogger("tessera.exports")

METHOD = "CreateExport"


DEFAULT_CHUNK = 256 * 1024
MIN_CHUNK = 4 * 1024
# A page narrower or shorter than this (after margins) cannot hold a widget.
MIN_CONTENT_MM = 50.0
FORMAT_NAMES = {
    export_pb2.EXPORT_FORMAT_PDF: "PDF",
    export_pb2.EXPORT_FORMAT_PNG: "PNG",
    export_pb2.EXPORT_FORMAT_CSV: "CSV",
    export_pb2.EXPORT_FORMAT_XLSX: "XLSX",
}
# Formats that hold one widget's rows rather than the dashboard's page.
DATA_FORMATS = frozenset({export_pb2.EXPORT_FORMAT_CSV, export_pb2.EXPORT_FORMAT_XLSX})


@dataclass(frozen=True)
class _Plan:
    """A validated create: what the row will hold."""

    dashboard_id: uuid.UUID | None
    facility_id: str
    version: int
    options: export_pb2.ExportOptions
    widget_count: int
    widget_id: uuid.UUID | None = None
    # A CSV/XLSX of a saved query's run: the version that will run.
    query: query_pb2.Query | None = None


class ExportDomain:
    def __init__(
        self,
        db: Database,
        store: ExportStore,
        storage: ExportStorage,
        widget_data: WidgetDataDomain,
        queries: QueryDomain,
        enqueue: Enqueue,
    ) -> None:
        self._db = db
        self.store = store
        self._storage = storage
        self._widget_data = widget_data
        self._queries = queries
        self._enqueue = enqueue

    # --- create ---------------------------------------------------------------------------------

    async def create(
        self, principal: Principal, request: export_pb2.CreateExportRequest, digest: bytes, correlation_id: str = ""
    ) -> export_pb2.ExportJob:
        created = await self._create_all(principal, [request], [digest], correlation_id, prefix=lambda _: "")
        return created[0]

    async def batch_create(
        self, principal: Principal, request: export_pb2.BatchCreateExportsRequest, correlation_id: str = ""
    ) -> list[export_pb2.ExportJob]:
        items = list(request.requests)
        digests = [idempotency.request_hash(item) for item in items]
        return await self._create_all(principal, items, digests, correlation_id, prefix=lambda i: f"requests[{i}].")

    async def _create_all(
        self,
        principal: Principal,
        items: Sequence[export_pb2.CreateExportRequest],
        digests: Sequence[bytes],
        correlation_id: str,
        prefix: Callable[[int], str],
    ) -> list[export_pb2.ExportJob]:
        plans = [await self._plan(principal, item, prefix(i)) for i, item in enumerate(items)]
        fresh: list[export_pb2.ExportJob] = []

        async def create(conn: AsyncConnection, _: None, i: int) -> tuple[uuid.UUID, export_pb2.ExportJob]:
            fresh.append(await _insert(conn, principal, items[i], plans[i], correlation_id))
            return uuid.UUID(fresh[-1].id), fresh[-1]

        async def existing(export_id: uuid.UUID) -> export_pb2.ExportJob:
            async with self._db.read() as conn:
                return export_from_row(await _row(conn, export_id))

        keys = [
            idempotency.RequestKey(principal.subject, METHOD, item.request_id, digest)
            for item, digest in zip(items, digests, strict=True)
        ]
        out = await idempotency.create_once(self._db, keys, create, existing, prepare=idempotency.nothing_to_prepare)
        new = [job for job in out if any(job is f for f in fresh)]  # not an earlier request's job
        for job in new:
            await self.store.publish(job)
        for job in new:
            await self._queue(job)
        return [await self.store.get(job.id) if any(job is n for n in new) else job for job in out]

    async def check(self, principal: Principal, request: export_pb2.CreateExportRequest, prefix: str = "") -> str:
        """Validates an export exactly as CreateExport would, creating nothing (what a report
        subscription is checked with); returns the dashboard's facility."""
        plan = await self._plan(principal, request, prefix)
        return plan.facility_id

    async def _queue(self, job: export_pb2.ExportJob) -> None:
        fail = failed("BROKER_UNAVAILABLE", "the export could not be queued; retry")
        await self.store.enqueue(job, self._enqueue, fail, "export")

    async def _plan(self, principal: Principal, request: export_pb2.CreateExportRequest, prefix: str) -> _Plan:
        options = normalized(request.options)
        if request.HasField("query"):
            return await self._plan_query(principal, request, options, prefix)
        if not request.dashboard_id:
            raise InvalidArgument.field(
                f"{prefix}dashboard_id", "required (or `query`, for a CSV or XLSX of a saved query's run)"
            )
        _check_geometry(options, prefix)
        async with self._db.read() as conn:
            board, access = await load_dashboard(conn, principal, request.dashboard_id, Access.READ_PUBLISHED)
            version = request.dashboard_version or board.published_version or 0
            if access is Access.READ_PUBLISHED and version != board.published_version:
                # Such a reader sees the published version and nothing else.
                raise NotFound("dashboard_version", f"{board.id}@{request.dashboard_version}")
            if not version:
                raise FailedPrecondition(
                    "the dashboard has no published version: publish it or name a version",
                    reason="DASHBOARD_NOT_PUBLISHED",
                    violations=[
                        FieldViolation(
                            f"{prefix}dashboard_version",
                            "required: the dashboard has no published version",
                            "DASHBOARD_NOT_PUBLISHED",
                        )
                    ],
                )
            snapshot = await load_snapshot(conn, board.id, version)
        if request.format in DATA_FORMATS:
            widget_id = await self._check_data_widget(principal, request, snapshot, version, prefix)
            return _Plan(board.id, board.facility_id, version, options, widget_count=1, widget_id=widget_id)
        if request.widget_id:
            raise InvalidArgument.field(
                f"{prefix}widget_id", "only CSV and XLSX exports name a widget; PDF and PNG export the whole dashboard"
            )
        await self._check_values(principal, request, snapshot, version, prefix)
        return _Plan(board.id, board.facility_id, version, options, widget_count=len(snapshot.widgets))

    async def _plan_query(
        self,
        principal: Principal,
        request: export_pb2.CreateExportRequest,
        options: export_pb2.ExportOptions,
        prefix: str,
    ) -> _Plan:
        """A CSV/XLSX of a saved query's run: the caller must be allowed to run the query (as
        RunQuery: an editor of its facility, NOT_FOUND otherwise) and the values must bind."""
        if request.format not in DATA_FORMATS:
            raise InvalidArgument.field(f"{prefix}query", "only CSV and XLSX export a saved query's run")
        extra = [
            name
            for name, present in (
                ("dashboard_id", bool(request.dashboard_id)),
                ("dashboard_version", bool(request.dashboard_version)),
                ("widget_id", bool(request.widget_id)),
                ("filter_values", bool(request.filter_values)),
            )
            if present
        ]
        if extra:
            raise InvalidArgument(
                f"{prefix}{extra[0]}: must be empty when a saved query's run is exported",
                violations=[
                    FieldViolation(f"{prefix}{name}", "must be empty when a saved query's run (`query`) is exported")
                    for name in extra
                ],
            )
        source = request.query
        query = await self._queries.runnable(principal, source.query_id, source.query_version)
        bind(query.parameters, source.parameter_values, f"{prefix}query.parameter_values")
        return _Plan(None, query.facility_id, 0, options, widget_count=1, query=query)

    async def _check_data_widget(
        self,
        principal: Principal,
        request: export_pb2.CreateExportRequest,
        snapshot: dashboard_pb2.Dashboard,
        version: int,
        prefix: str,
    ) -> uuid.UUID:
        """The widget of a CSV/XLSX export: one of this dashboard version's widgets, with a
        query, whose filter values bind (exactly as GetWidgetData would bind them)."""
        if not request.widget_id:
            raise InvalidArgument.field(
                f"{prefix}widget_id", "required for CSV and XLSX: the widget whose data to export"
            )
        widget = next((w for w in snapshot.widgets if w.id.lower() == request.widget_id.lower()), None)
        if widget is None:
            raise InvalidArgument.field(
                f"{prefix}widget_id", f"version {version} of the dashboard has no widget {request.widget_id}"
            )
        if not widget.query.query_id:
            raise InvalidArgument.field(f"{prefix}widget_id", "the widget has no query: it has no data to export")
        declared = {f.name for f in snapshot.filters}
        unknown = [name for name in request.filter_values if name not in declared]
        if unknown:
            raise InvalidArgument(
                f"the dashboard declares no filter {unknown[0]!r}",
                violations=[
                    FieldViolation(f'{prefix}filter_values["{n}"]', f"the dashboard declares no filter {n!r}")
                    for n in unknown
                ],
                reason="UNKNOWN_FILTER",
            )
        data_request = widget_pb2.GetWidgetDataRequest(
            widget_id=widget.id, dashboard_version=version, filter_values=request.filter_values
        )
        try:
            await self._widget_data.check(principal, data_request)
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"{prefix}filter_values: {exc.message}",
                violations=[FieldViolation(f"{prefix}filter_values", v.description, v.reason) for v in exc.violations]
                or [FieldViolation(f"{prefix}filter_values", exc.message)],
                reason=exc.reason,
            ) from exc
        return uuid.UUID(widget.id)

    async def _check_values(
        self,
        principal: Principal,
        request: export_pb2.CreateExportRequest,
        snapshot: dashboard_pb2.Dashboard,
        version: int,
        prefix: str,
    ) -> None:
        """Filter names and values as every widget would bind them (INVALID_ARGUMENT naming the
        filter); a widget that cannot load for other reasons renders as an error box instead."""
        declared = {f.name for f in snapshot.filters}
        unknown = [name for name in request.filter_values if name not in declared]
        if unknown:
            raise InvalidArgument(
                f"the dashboard declares no filter {unknown[0]!r}",
                violations=[
                    FieldViolation(f'{prefix}filter_values["{n}"]', f"the dashboard declares no filter {n!r}")
                    for n in unknown
                ],
                reason="UNKNOWN_FILTER",
            )
        if not request.filter_values:
            return  # nothing of the caller's to bind: each widget reads as its dashboard shows it
        for widget in snapshot.widgets:
            if not widget.query.query_id:
                continue
            data_request = widget_pb2.GetWidgetDataRequest(
                widget_id=widget.id, dashboard_version=version, filter_values=request.filter_values
            )
            try:
                await self._widget_data.check(principal, data_request)
            except InvalidArgument as exc:
                raise InvalidArgument(
                    f"{prefix}filter_values: widget {widget.title!r}: {exc.message}",
                    violations=[
                        FieldViolation(f"{prefix}filter_values", f"widget {widget.title!r}: {v.description}", v.reason)
                        for v in exc.violations
                    ]
                    or [FieldViolation(f"{prefix}filter_values", f"widget {widget.title!r}: {exc.message}")],
                    reason=exc.reason,
                ) from exc
            except TesseraError:
                continue

    # --- read -----------------------------------------------------------------------------------

    async def _visible_row(self, principal: Principal, export_id: str) -> Any:
        row = await self.store.row(export_id)
        if row is not None and row.dashboard_id is None:  # a saved query's run
            async with self._db.read() as conn:
                if not await _query_export_visible(conn, principal, row):
                    raise NotFound(JobResource.EXPORT.value, export_id)
            return row
        return await visible_job_row(self._db, self.store, principal, JobResource.EXPORT, export_id, row)

    async def get(self, principal: Principal, export_id: str) -> export_pb2.ExportJob:
        return export_from_row(await self._visible_row(principal, export_id))

    async def list(
        self, principal: Principal, request: export_pb2.ListExportsRequest
    ) -> tuple[list[export_pb2.ExportJob], str]:
        size = pagination.page_size(request.page_size)
        filters = pagination.fingerprint("exports", request.dashboard_id, int(request.state))
        cursor = pagination.decode(request.page_token, filters)
        conditions = [visible_exports(principal)]  # the policy's SQL twin
        async with self._db.read() as conn:
            if request.dashboard_id:
                board, _ = await load_dashboard(conn, principal, request.dashboard_id, Access.READ_PUBLISHED)
                conditions.append(export_jobs.c.dashboard_id == board.id)
            if request.state:
                conditions.append(export_jobs.c.state == int(request.state))
            if cursor is not None:
                conditions.append(pagination.older_than(export_jobs, cursor))
            rows = (
                await conn.execute(
                    select(export_jobs)
                    .where(*conditions)
                    .order_by(*pagination.newest_first(export_jobs))
                    .limit(size + 1)
                )
            ).all()
        page = rows[:size]
        token = pagination.next_token(rows, size, filters)
        # Every row re-checked with the policy itself, loading each dashboard on the page once.
        async with self._db.read() as conn:
            boards = {row.dashboard_id for row in page if row.dashboard_id is not None}
            access = {d: await readable_access(conn, principal, str(d)) for d in boards}
            kept = []
            for row in page:
                if row.dashboard_id is None:
                    visible = await _query_export_visible(conn, principal, row)
                else:
                    visible = job_visible(principal, job_facts(JobResource.EXPORT, row), access[row.dashboard_id])
                if visible:
                    kept.append(row)
        page = kept
        return [export_from_row(row) for row in page], token

    async def watch(
        self, principal: Principal, export_id: str, since_revision: int
    ) -> AsyncIterator[export_pb2.WatchExportResponse]:
        await self._visible_row(principal, export_id)
        async for event in self.store.watch(export_id, since_revision):
            yield event

    # --- cancel ---------------------------------------------------------------------------------

    async def cancel(self, principal: Principal, export_id: str) -> export_pb2.ExportJob:
        await self._visible_row(principal, export_id)
        ended: list[int] = []

        def cancel(job: export_pb2.ExportJob) -> bool:
            if job.state in TERMINAL:
                ended.append(job.state)
                return False
            job.state = common_pb2.JOB_STATE_CANCELLED
            job.stage = export_pb2.EXPORT_STAGE_DONE
            job.progress.message = "cancelled"
            return True

        changed = await self.store.change(export_id, cancel)
        if changed is None:
            state = common_pb2.JobState.Name(ended[0]) if ended else "unknown"
            raise FailedPrecondition(
                f"the export already ended ({state})", reason="EXPORT_ALREADY_ENDED", metadata={"state": state}
            )
        # The worker notices between steps and removes whatever it wrote.
        return changed

    # --- download -------------------------------------------------------------------------------

    async def download(
        self, principal: Principal, request: export_pb2.DownloadExportRequest
    ) -> AsyncIterator[export_pb2.DownloadExportResponse]:
        chunk = request.chunk_size or DEFAULT_CHUNK
        if chunk < MIN_CHUNK:
            raise InvalidArgument.field("chunk_size", f"must be 0 (default) or between {MIN_CHUNK} and 4194304")
        row = await self._visible_row(principal, request.id)
        job = export_from_row(row)
        if job.state != common_pb2.JOB_STATE_SUCCEEDED or not row.storage_url:
            state = common_pb2.JobState.Name(job.state)
            raise FailedPrecondition(
                f"the export has no file ({state})", reason="EXPORT_NOT_READY", metadata={"state": state}
            )
        if row.expire_at is not None and row.expire_at <= datetime.now(UTC):
            raise FailedPrecondition("the export's file expired", reason="EXPORT_EXPIRED")
        require_export_file(principal, row.phi_unmasked)
        if request.offset > job.file.size_bytes:
            raise InvalidArgument.field("offset", f"beyond the end of the file ({job.file.size_bytes} bytes)")
        chunks = self._storage.chunks(row.storage_url, request.offset, chunk)
        try:
            # The first chunk is read before anything is sent: it authenticates the whole file,
            # so a tampered file is refused before even its metadata goes out.
            data = await asyncio.to_thread(next, chunks, None)
            yield export_pb2.DownloadExportResponse(file=job.file)
            while data is not None:
                yield export_pb2.DownloadExportResponse(chunk=data)
                data = await asyncio.to_thread(next, chunks, None)
        except FileNotFoundError:
            raise FailedPrecondition("the export's file is gone", reason="EXPORT_EXPIRED") from None
        except TamperedFile as error:
            log.error("export file refused: %s", error, extra={"export_id": request.id})
            raise DataLoss(
                "the export's stored file failed its integrity check and is refused",
                reason="EXPORT_FILE_TAMPERED",
            ) from None
        except UnknownKey as error:
            log.error("export file refused: %s", error, extra={"export_id": request.id})
            raise DataLoss(
                "the export's stored file was encrypted with a key this server does not hold",
                reason="EXPORT_KEY_UNKNOWN",
                metadata={"key_id": error.key_id},
            ) from None
        finally:
            chunks.close()


def _check_geometry(options: export_pb2.ExportOptions, prefix: str) -> None:
    page = geometry(options)
    m = options.margins
    problems: list[FieldViolation] = []
    if page.page_width_mm - m.left_mm - m.right_mm < MIN_CONTENT_MM:
        problems.append(
            FieldViolation(
                f"{prefix}options.margins",
                f"left + right margins leave less than {MIN_CONTENT_MM:g} mm of a {page.page_width_mm:g} mm wide page",
            )
        )
    if page.page_height_mm - m.top_mm - m.bottom_mm < MIN_CONTENT_MM:
        problems.append(
            FieldViolation(
                f"{prefix}options.margins",
                f"top + bottom margins leave less than {MIN_CONTENT_MM:g} mm of a {page.page_height_mm:g} mm high page",
            )
        )
    if problems:
        raise InvalidArgument(f"{problems[0].field}: {problems[0].description}", violations=problems)


async def _row(conn: AsyncConnection, export_id: uuid.UUID) -> Any:
    return (await conn.execute(select(export_jobs).where(export_jobs.c.id == export_id))).one()


async def _insert(
    conn: AsyncConnection,
    principal: Principal,
    request: export_pb2.CreateExportRequest,
    plan: _Plan,
    correlation_id: str,
) -> export_pb2.ExportJob:
    """A QUEUED job (revision 1) in the caller's transaction; published after commit."""
    total = plan.widget_count
    name = FORMAT_NAMES.get(request.format, "export")
    if plan.query is not None:
        what = f"the run of query {plan.query.name!r}"
    else:
        what = "one widget's data" if plan.widget_id else f"{total} widgets"
    progress = common_pb2.JobProgress(total_steps=total, message=f"queued: {name} of {what}")
    row = (
        await conn.execute(
            export_jobs.insert()
            .values(
                dashboard_id=plan.dashboard_id,
                facility_id=plan.facility_id,
                requested_by=principal.subject,
                dashboard_version=plan.version,
                format=int(request.format),
                options=to_json(plan.options),
                filter_values={name: to_json(value) for name, value in request.filter_values.items()},
                state=common_pb2.JOB_STATE_QUEUED,
                stage=export_pb2.EXPORT_STAGE_QUEUED,
                progress=to_json(progress),
                revision=1,
                principal=principal_to_json(principal),
                correlation_id=correlation_id,
                widget_id=plan.widget_id,
                query_id=uuid.UUID(plan.query.id) if plan.query else None,
                query_version=plan.query.version if plan.query else None,
                parameter_values={name: to_json(value) for name, value in request.query.parameter_values.items()},
            )
            .returning(export_jobs)
        )
    ).one()
    return export_from_row(row)


async def _query_export_visible(conn: AsyncConnection, principal: Principal, row: Any) -> bool:
    head = (
        await conn.execute(
            select(widget_queries.c.facility_id, widget_queries.c.owner_id).where(widget_queries.c.id == row.query_id)
        )
    ).first()
    query = QueryFacts(str(row.query_id), head.facility_id, head.owner_id) if head is not None else None
    return query_export_visible(principal, job_facts(JobResource.EXPORT, row), query)
