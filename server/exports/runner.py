"""The body of the export task: render, print, store, as the requester.

Resumable and idempotent: a job already ended is left alone; a job found RUNNING (its worker died)
starts over and, because the file's path is derived from the job id, overwrites rather than adds
a file. Progress never goes backwards. Cancellation is noticed at every step (the step's update
finds the row CANCELLED and changes nothing); whatever was written is then removed.

Widget data comes through the same domain as GetWidgetData, with the requester's principal, so
facility scoping, PHI masking and the cache apply exactly as they would to the rpc; what is not
cached is computed (and cached) here. A widget whose data cannot be read renders as an error box;
a dependency that is down makes the task retry; a browser that keeps failing fails the job.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import tempfile
import time
import unicodedata
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dashboard.v1 import common_pb2, dashboard_pb2, export_pb2, query_pb2, widget_pb2
from server.access.policy import Access
from server.audit import facts
from server.audit.log import SUCCESS, AuditEvent, AuditLog
from server.auth.principal import Principal
from server.config import Settings
from server.dashboards.access import load_dashboard
from server.dashboards.versions import load_snapshot
from server.dataexport.writers import CsvTableWriter, TableWriter, XlsxTableWriter
from server.db.engine import Database
from server.errors import NotFound, PermissionDenied, TesseraError, Unavailable
from server.exports.browser import PrintedFile, Printer, PrintFailed
from server.exports.jobs import ExportStore, export_from_row, failed
from server.exports.principals import principal_from_json
from server.exports.progress import Cancelled, ProgressWriter, progress_writer
from server.exports.render import PageRenderer, PageSpec, RenderedWidget, WidgetContent
from server.exports.storage import ExportStorage
from server.jobs.revisions import TERMINAL
from server.jobs.sweep import exclusive
from server.materialization.runner import TRANSIENT_ERRORS
from server.protojson import from_json
from server.queries.masking import unmasked_phi_columns
from server.queries.service import QueryDomain
from server.widgetdata.service import WidgetDataDomain

__all__ = ["ExportDeps", "run_export"]

log = logging.getLogger("tessera.exports")

AUDIT_METHOD = "tessera.export.render"
DATA_AUDIT_METHOD = "tessera.export.data"
DATA_FORMATS = frozenset({export_pb2.EXPORT_FORMAT_CSV, export_pb2.EXPORT_FORMAT_XLSX})
# A CSV/XLSX job reports its progress every this many rows (each report is a row update).
DATA_PROGRESS_ROWS = 100_000
CONTENT_TYPES = {
    export_pb2.EXPORT_FORMAT_PDF: "application/pdf",
    export_pb2.EXPORT_FORMAT_PNG: "image/png",
    export_pb2.EXPORT_FORMAT_CSV: "text/csv",
    export_pb2.EXPORT_FORMAT_XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
RUNNING = common_pb2.JOB_STATE_RUNNING
# Widgets read and drawn at once by one export (the worker's small pools bound it too).
RENDER_CONCURRENCY = 4


@dataclass
class ExportDeps:
    """What a worker process renders exports with."""

    settings: Settings
    db: Database
    store: ExportStore
    storage: ExportStorage
    widget_data: WidgetDataDomain
    queries: QueryDomain
    printer: Printer
    audit: AuditLog


async def run_export(deps: ExportDeps, job_id: str, *, final_attempt: bool = True) -> export_pb2.ExportJob | None:
    """Runs (or resumes) one export; returns the job as it ended, None when it no longer exists
    or another delivery of its task holds it (server/jobs/sweep.py)."""
    async with exclusive(deps.store.db, job_id) as mine:
        if not mine:
            return None
        return await _export(deps, job_id, final_attempt=final_attempt)


async def _export(deps: ExportDeps, job_id: str, *, final_attempt: bool) -> export_pb2.ExportJob | None:
    row = await deps.store.row(job_id)
    if row is None:
        return None
    if row.state in TERMINAL:
        return export_from_row(row)
    content_type = CONTENT_TYPES[row.format]
    url = deps.storage.url_for(row.facility_id, job_id, content_type)
    started = time.monotonic()
    try:
        if row.query_id:
            return await _run_query_data(deps, row, url, content_type)
        if row.format in DATA_FORMATS:
            return await _run_data(deps, row, url, content_type)
        return await _run(deps, row, url, content_type)
    except Cancelled:
        await deps.storage.adelete(url)
        log.info("exports: %s cancelled; its file (if any) removed", job_id)
        return await deps.store.get(job_id)
    except PrintFailed as exc:
        await deps.storage.adelete(url)
        return await _fail(deps, job_id, "RENDER_FAILED", str(exc))
    except (NotFound, PermissionDenied) as exc:
        # The requester lost access to the dashboard (or the query) since they asked.
        await deps.storage.adelete(url)
        what = "query can no longer be run" if row.query_id else "dashboard can no longer be read"
        return await _fail(deps, job_id, "ACCESS_REVOKED", f"the {what}: {exc}")
    except TRANSIENT_ERRORS as exc:
        if not final_attempt:
            raise
        await deps.storage.adelete(url)
        return await _fail(deps, job_id, "UNAVAILABLE", f"a dependency stayed unavailable: {type(exc).__name__}")
    except TesseraError as exc:
        if row.format not in DATA_FORMATS:
            raise
        # The widget's query failed (its error, masked for the requester, is the job's).
        await deps.storage.adelete(url)
        return await _fail(deps, job_id, exc.reason or "QUERY_FAILED", exc.message)
    finally:
        log.info("exports: %s attempt took %.2f s", job_id, time.monotonic() - started)


async def _run(deps: ExportDeps, row: Any, url: str, content_type: str) -> export_pb2.ExportJob:
    job_id = str(row.id)
    principal = principal_from_json(row.principal)
    options = from_json(row.options, export_pb2.ExportOptions())
    filters = {name: from_json(value, common_pb2.ParameterValue()) for name, value in (row.filter_values or {}).items()}

    snapshot = await _readable_snapshot(deps.db, principal, str(row.dashboard_id), row.dashboard_version)
    widgets = sorted(snapshot.widgets, key=lambda w: (w.position.y, w.position.x, w.id))
    total = len(widgets)
    # Steps are written behind the work (server/exports/progress.py), in order.
    async with progress_writer(deps.store, job_id) as progress:
        progress.post(_start(total))
        renderer = PageRenderer(
            PageSpec(
                dashboard=snapshot,
                version=row.dashboard_version,
                filters=filters,
                generated_at=datetime.now(UTC),
                format=row.format,
                options=options,
            )
        )
        # The widget-data domain notes each frame it serves (with the PHI columns it shows
        # unmasked) exactly as it does for the rpc's audit event.
        with facts.collecting() as served:
            rendered = await _render_widgets(
                deps, progress, renderer, principal, widgets, row.dashboard_version, filters
            )
        fragments = [fragment for fragment, _ in rendered]
        rows_read = sum(data.frame.row_count for _, data in rendered if data is not None)
        phi_columns = sorted({column for seen in served.disclosures for column in seen.phi_columns})
        html = await asyncio.to_thread(renderer.document, fragments)

        name = "PDF" if row.format == export_pb2.EXPORT_FORMAT_PDF else "PNG"
        progress.raise_if_cancelled()
        progress.post(_stage(export_pb2.EXPORT_STAGE_PRINTING, f"printing {name}"))
        printed = await _print(deps.printer, row.format, html, options, snapshot.title)

        progress.raise_if_cancelled()
        progress.post(_stage(export_pb2.EXPORT_STAGE_STORING, f"storing {len(printed.data):,} bytes"))
        await deps.storage.awrite(url, printed.data)
        expire = datetime.now(UTC) + timedelta(seconds=deps.settings.export_retention_seconds)
        exported = _file(
            printed, content_type, expire, _filename(snapshot.title, row.dashboard_version, job_id, content_type)
        )
        await progress.drain()
    details = {
        "dashboard_id": str(row.dashboard_id),
        "format": name,
        "size_bytes": len(printed.data),
        "sha256": exported.sha256,
        "phi_columns": phi_columns,
    }
    return await _finish(
        deps, row, principal, url, exported, AUDIT_METHOD, row.dashboard_version, rows_read, phi_columns, details
    )


async def _finish(
    deps: ExportDeps,
    row: Any,
    principal: Principal,
    url: str,
    exported: export_pb2.ExportFile,
    method: str,
    version: int,
    rows: int,
    phi_columns: Sequence[str],
    details: dict[str, Any],
) -> export_pb2.ExportJob:
    """The end of every export: the job SUCCEEDED with its file (Cancelled if it was cancelled
    meanwhile), then the read audited as `method` with `details`."""
    job_id = str(row.id)
    stored = {"storage_url": url, "phi_unmasked": bool(phi_columns)}
    done = await deps.store.change(job_id, _succeed(exported), extra=lambda _: stored)
    if done is None:
        raise Cancelled
    deps.audit.record(
        AuditEvent(
            actor=principal.subject,
            method=method,
            outcome=SUCCESS,
            facility_id=row.facility_id,
            resource_type="export",
            resource_id=job_id,
            resource_version=version,
            row_count=rows,
            phi_unmasked=bool(phi_columns),
            correlation_id=row.correlation_id,
            details=details,
        )
    )
    await deps.audit.flush()
    return done


async def _run_data(deps: ExportDeps, row: Any, url: str, content_type: str) -> export_pb2.ExportJob:
    """A CSV or XLSX of one widget's data: rows streamed from the data source (resolved, bound
    and masked as GetWidgetData would serve them) into a local file a batch at a time, then
    encrypted into storage chunk by chunk. Memory holds one batch, never the result."""
    principal = principal_from_json(row.principal)
    filters = {name: from_json(value, common_pb2.ParameterValue()) for name, value in (row.filter_values or {}).items()}
    settings = deps.settings
    request = widget_pb2.GetWidgetDataRequest(
        widget_id=str(row.widget_id), dashboard_version=row.dashboard_version, filter_values=filters
    )
    frames = deps.widget_data.stream(
        principal,
        request,
        row_limit=settings.data_export_row_limit,
        timeout_seconds=settings.data_export_timeout_seconds,
        batch_rows=settings.data_export_batch_rows,
    )
    stored = await _write_and_store(deps, row, url, frames)
    snapshot = await _readable_snapshot(deps.db, principal, str(row.dashboard_id), row.dashboard_version)
    widget = next((w for w in snapshot.widgets if w.id.lower() == str(row.widget_id)), None)
    source = {
        "dashboard_id": str(row.dashboard_id),
        "widget_id": str(row.widget_id),
        "query_id": stored.written.query_id,
        "query_version": stored.written.query_version,
    }
    title = f"{snapshot.title} {widget.title if widget else ''}".strip()
    return await _finish_data_export(
        deps, row, principal, url, content_type, stored, title, row.dashboard_version, source
    )


@dataclass(frozen=True)
class _Stored:
    """A data export's file, encrypted into storage."""

    format_name: str
    written: _Written
    size: int
    digest: str


async def _finish_data_export(
    deps: ExportDeps,
    row: Any,
    principal: Principal,
    url: str,
    content_type: str,
    stored: _Stored,
    title: str,
    version: int,
    source: dict[str, Any],
) -> export_pb2.ExportJob:
    """The end of every data export, whatever its rows came from: its file (named from `title`
    and `version`), audited as a data read with `source` (what was read) in its details."""
    written = stored.written
    exported = export_pb2.ExportFile(
        content_type=content_type,
        size_bytes=stored.size,
        sha256=stored.digest,
        filename=_filename(title, version, str(row.id), content_type),
        row_count=written.rows,
    )
    exported.expire_time.FromDatetime(datetime.now(UTC) + timedelta(seconds=deps.settings.export_retention_seconds))
    details = {
        **source,
        "format": stored.format_name,
        "size_bytes": stored.size,
        "sha256": stored.digest,
        "truncated": written.truncated,
        "phi_columns": list(written.phi_columns),
    }
    return await _finish(
        deps, row, principal, url, exported, DATA_AUDIT_METHOD, version, written.rows, written.phi_columns, details
    )


async def _write_and_store(
    deps: ExportDeps, row: Any, url: str, frames: AsyncGenerator[tuple[query_pb2.Query, common_pb2.DataFrame]]
) -> _Stored:
    """Streams the frames into a local file a batch at a time, then encrypts it into storage."""
    job_id = str(row.id)
    name = "CSV" if row.format == export_pb2.EXPORT_FORMAT_CSV else "XLSX"
    await _step(deps, job_id, _start_writing(name))
    with tempfile.TemporaryDirectory(prefix="tessera-data-", dir=deps.settings.data_export_temp_dir or None) as scratch:
        path = Path(scratch) / f"export.{name.lower()}"
        written = await _write_table(deps, job_id, frames, row.format, path, Path(scratch))
        await _step(deps, job_id, _stage(export_pb2.EXPORT_STAGE_STORING, f"storing {written.rows:,} rows"))
        size = path.stat().st_size
        digest = await deps.storage.awrite_path(url, path)
    return _Stored(name, written, size, digest)


async def _run_query_data(deps: ExportDeps, row: Any, url: str, content_type: str) -> export_pb2.ExportJob:
    """A CSV or XLSX of a saved query's run, as the requester (RunQuery's access rule checked
    again, masking for them), streamed as `_run_data` streams a widget's rows."""
    principal = principal_from_json(row.principal)
    values = {
        name: from_json(value, common_pb2.ParameterValue()) for name, value in (row.parameter_values or {}).items()
    }
    settings = deps.settings
    query = await deps.queries.runnable(principal, str(row.query_id), row.query_version or 0)

    async def frames() -> AsyncGenerator[tuple[query_pb2.Query, common_pb2.DataFrame]]:
        stream = deps.queries.stream(
            principal,
            query,
            values,
            row_limit=settings.data_export_row_limit,
            timeout_seconds=settings.data_export_timeout_seconds,
            batch_rows=settings.data_export_batch_rows,
        )
        try:
            async for frame in stream:
                yield query, frame
        finally:
            await stream.aclose()

    stored = await _write_and_store(deps, row, url, frames())
    source = {"query_id": query.id, "query_version": query.version}
    return await _finish_data_export(
        deps, row, principal, url, content_type, stored, query.name or "query", query.version, source
    )


@dataclass
class _Written:
    rows: int = 0
    truncated: bool = False
    query_id: str = ""
    query_version: int = 0
    phi_columns: tuple[str, ...] = ()


async def _write_table(
    deps: ExportDeps,
    job_id: str,
    frames: AsyncGenerator[tuple[query_pb2.Query, common_pb2.DataFrame]],
    export_format: int,
    path: Path,
    scratch: Path,
) -> _Written:
    writer: TableWriter = (
        CsvTableWriter(path) if export_format == export_pb2.EXPORT_FORMAT_CSV else XlsxTableWriter(path, scratch)
    )
    written = _Written()
    reported = 0
    try:
        async for query, frame in frames:
            if not written.query_id:
                written.query_id, written.query_version = query.id, query.version
                sensitive = (c.column for c in query.sensitive_columns)
                written.phi_columns = tuple(unmasked_phi_columns(frame, sensitive))
            await asyncio.to_thread(writer.write, frame)
            written.rows += frame.row_count
            written.truncated = written.truncated or frame.truncated
            if written.rows - reported >= DATA_PROGRESS_ROWS:
                reported = written.rows
                await _step(deps, job_id, _rows_written(written.rows))
    finally:
        await frames.aclose()
        await asyncio.to_thread(writer.close)
    return written


def _start_writing(name: str) -> Callable[[export_pb2.ExportJob], bool]:
    def start(job: export_pb2.ExportJob) -> bool:
        if job.state in TERMINAL:
            return False
        job.state = RUNNING
        job.stage = export_pb2.EXPORT_STAGE_WRITING
        job.progress.total_steps = 1
        job.progress.message = f"writing {name}"
        return True

    return start


def _rows_written(rows: int) -> Callable[[export_pb2.ExportJob], bool]:
    def progress(job: export_pb2.ExportJob) -> bool:
        if job.state in TERMINAL:
            return False
        job.progress.message = f"{rows:,} rows written"
        return True

    return progress


async def _render_widgets(
    deps: ExportDeps,
    progress: ProgressWriter,
    renderer: PageRenderer,
    principal: Principal,
    widgets: list[widget_pb2.Widget],
    version: int,
    filters: dict[str, common_pb2.ParameterValue],
) -> list[tuple[RenderedWidget, widget_pb2.WidgetData | None]]:
    """Every widget's data and fragment, in the widgets' order. A few at a time: reading one
    widget's data overlaps drawing another's chart (vl-convert, in threads). Progress counts the
    widgets done; a cancelled job stops the others."""
    limit = asyncio.Semaphore(RENDER_CONCURRENCY)
    total = len(widgets)
    done = 0

    async def one(widget: widget_pb2.Widget) -> tuple[RenderedWidget, widget_pb2.WidgetData | None]:
        nonlocal done
        async with limit:
            progress.raise_if_cancelled()
            content, data = await _content(deps.widget_data, principal, widget, version, filters)
            fragment = await asyncio.to_thread(renderer.widget, content)
        done += 1
        title = widget.title or "untitled widget"
        progress.post(_progress(done, total, f"rendering widget {done} of {total}: {title}"))
        return fragment, data

    tasks = [asyncio.create_task(one(widget)) for widget in widgets]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _readable_snapshot(
    db: Database, principal: Principal, dashboard_id: str, version: int
) -> dashboard_pb2.Dashboard:
    async with db.read() as conn:
        board, _ = await load_dashboard(conn, principal, dashboard_id, Access.READ_PUBLISHED)
        return await load_snapshot(conn, board.id, version)


async def _content(
    widget_data: WidgetDataDomain,
    principal: Principal,
    widget: widget_pb2.Widget,
    version: int,
    filters: dict[str, common_pb2.ParameterValue],
) -> tuple[WidgetContent, widget_pb2.WidgetData | None]:
    if not widget.query.query_id:
        return WidgetContent(widget=widget, frame=None, error="This widget has no query."), None
    request = widget_pb2.GetWidgetDataRequest(widget_id=widget.id, dashboard_version=version, filter_values=filters)
    try:
        data = await widget_data.get(principal, request)
    except Unavailable:
        raise  # a dependency is down: the task retries
    except TesseraError as exc:
        # The page says what went wrong where the widget would be: never a blank area.
        return WidgetContent(widget=widget, frame=None, error=exc.message), None
    return WidgetContent(widget=widget, frame=data.frame, error=None), data


async def _print(
    printer: Printer, export_format: int, html: str, options: export_pb2.ExportOptions, title: str
) -> PrintedFile:
    if export_format == export_pb2.EXPORT_FORMAT_PDF:
        return await printer.pdf(html, options, title=title)
    return await printer.png(html, options)


# --- job changes (each returns False, changing nothing, when the job was cancelled) -------------


async def _step(deps: ExportDeps, job_id: str, mutate: Callable[[export_pb2.ExportJob], bool]) -> None:
    if await deps.store.change(job_id, mutate) is None:
        raise Cancelled


def _start(total: int) -> Callable[[export_pb2.ExportJob], bool]:
    def start(job: export_pb2.ExportJob) -> bool:
        if job.state in TERMINAL:
            return False
        job.state = RUNNING
        job.stage = export_pb2.EXPORT_STAGE_RENDERING
        job.progress.total_steps = total
        job.progress.message = f"rendering {total} widgets"
        job.progress.percent = _percent(job.progress.completed_steps, total)
        return True

    return start


def _progress(done: int, total: int, message: str) -> Callable[[export_pb2.ExportJob], bool]:
    def progress(job: export_pb2.ExportJob) -> bool:
        if job.state in TERMINAL:
            return False
        # A resumed attempt re-renders from the first widget; the job's progress does not go back.
        job.progress.completed_steps = max(job.progress.completed_steps, done)
        job.progress.percent = _percent(job.progress.completed_steps, total)
        job.progress.message = message
        return True

    return progress


def _stage(stage: int, message: str) -> Callable[[export_pb2.ExportJob], bool]:
    def change(job: export_pb2.ExportJob) -> bool:
        if job.state in TERMINAL:
            return False
        job.stage = stage  # type: ignore[assignment]
        job.progress.message = message
        return True

    return change


def _succeed(exported: export_pb2.ExportFile) -> Callable[[export_pb2.ExportJob], bool]:
    def succeed(job: export_pb2.ExportJob) -> bool:
        if job.state in TERMINAL:
            return False
        job.state = common_pb2.JOB_STATE_SUCCEEDED
        job.stage = export_pb2.EXPORT_STAGE_DONE
        job.progress.completed_steps = job.progress.total_steps
        job.progress.percent = 100
        job.progress.message = f"done: {exported.filename}"
        job.file.CopyFrom(exported)
        return True

    return succeed


async def _fail(deps: ExportDeps, job_id: str, reason: str, message: str) -> export_pb2.ExportJob:
    log.warning("exports: %s failed: %s: %s", job_id, reason, message)
    await deps.store.change(job_id, failed(reason, message))
    return await deps.store.get(job_id)


def _percent(done: int, total: int) -> int:
    # Rendering is most of the work; printing and storing are the last 10 %.
    return 90 * done // total if total else 0


def _file(printed: PrintedFile, content_type: str, expire: datetime, filename: str) -> export_pb2.ExportFile:
    exported = export_pb2.ExportFile(
        content_type=content_type,
        size_bytes=len(printed.data),
        sha256=hashlib.sha256(printed.data).hexdigest(),
        page_count=printed.page_count,
        width_px=printed.width_px,
        height_px=printed.height_px,
        filename=filename,
    )
    exported.expire_time.FromDatetime(expire)
    return exported


_EXTENSIONS = {
    "application/pdf": "pdf",
    "image/png": "png",
    "text/csv": "csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}


def _filename(title: str, version: int, job_id: str, content_type: str) -> str:
    """`<title slug>-v<version>-<export id prefix>.<ext>`: readable, and two exports of one
    version (a batch of paper sizes) never suggest the same name."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_title).strip("-").lower()[:80] or "dashboard"
    extension = _EXTENSIONS[content_type]
    return f"{slug}-v{version}-{job_id[:8]}.{extension}"
