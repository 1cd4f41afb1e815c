"""Exports end to end: real server, real Celery worker (subprocess, prefork), real Chromium, files
opened with poppler and Pillow. What was produced is checked, not what the code meant to produce:
page sizes, text (every widget title and KPI value exactly as GetWidgetData returns it), ink in
every widget's area, pagination that never cuts a widget, PNG size and transparency, unicode."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from tests.harness.exports import ExportKit, Stubs, stubs_for
from tests.harness.files import page_images, page_size_pts, pdf_words, pdfinfo, pdftotext, png_image
from tests.harness.rpc import expect_failure
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import broker_url_for, jobs_settings, worker_env
from workers.testing import WorkerProcess

SUCCEEDED, FAILED, CANCELLED = c.JOB_STATE_SUCCEEDED, c.JOB_STATE_FAILED, c.JOB_STATE_CANCELLED
PDF, PNG = e.EXPORT_FORMAT_PDF, e.EXPORT_FORMAT_PNG


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def export_settings(settings: Settings, migrated: str, storage: Path) -> Settings:
    return jobs_settings(settings, broker_url_for(settings.redis_url), export_storage_url=f"file://{storage}")


@pytest.fixture(scope="module")
def export_server(export_settings: Settings) -> Iterator[ServerHandle]:
    handle = start_in_thread(export_settings)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def worker(export_settings: Settings, storage: Path) -> Iterator[WorkerProcess]:
    env = worker_env(export_settings, TESSERA_EXPORT_STORAGE_URL=f"file://{storage}", TESSERA_LOG_LEVEL="INFO")
    process = WorkerProcess(env, queues="exports,maintenance").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def stubs(export_server: ServerHandle) -> Iterator[Stubs]:
    with grpc.insecure_channel(export_server.address) as channel:
        yield stubs_for(channel)


@pytest.fixture
def kit(stubs: Stubs, auth: Any, facility: str) -> ExportKit:
    return ExportKit(stubs, auth("alice", "editor", facility), facility)


# --- valid files, proven -------------------------------------------------------------------


def test_pdf_export_streams_progress_and_downloads_a_verified_file(kit: ExportKit, worker: WorkerProcess) -> None:
    board, widgets = kit.report_board()
    job = kit.create(board.id, PDF)
    assert job.state == c.JOB_STATE_QUEUED and job.stage == e.EXPORT_STAGE_QUEUED and job.revision == 1
    assert job.dashboard_version == board.published_version and job.progress.total_steps == len(widgets)
    # Defaults are filled in and reported.
    assert job.options.paper_size == e.PAPER_SIZE_A4 and job.options.orientation == e.ORIENTATION_LANDSCAPE

    events, _ = kit.watch(job.id)
    revisions = [event.revision for event in events]
    assert revisions == list(range(1, revisions[-1] + 1)), f"gaps or repeats: {revisions}"
    stages = [event.stage for event in events]
    assert stages[0] == e.EXPORT_STAGE_QUEUED and stages[-1] == e.EXPORT_STAGE_DONE
    assert e.EXPORT_STAGE_PRINTING in stages and e.EXPORT_STAGE_STORING in stages
    assert stages.index(e.EXPORT_STAGE_RENDERING) < stages.index(e.EXPORT_STAGE_PRINTING)
    assert stages.index(e.EXPORT_STAGE_PRINTING) < stages.index(e.EXPORT_STAGE_STORING)
    n = len(widgets)
    for i in range(1, n + 1):
        assert any(f"rendering widget {i} of {n}" in event.progress.message for event in events), i
    done = events[-1]
    assert done.state == SUCCEEDED, done.error
    assert done.progress.percent == 100 and done.HasField("end_time")
    assert (
        done.file.content_type == "application/pdf"
        and done.file.filename == f"export-report-v{job.dashboard_version}-{job.id[:8]}.pdf"
    )

    meta, data = kit.download(job.id, chunk_size=4096)
    assert meta == done.file
    assert len(data) == meta.size_bytes and hashlib.sha256(data).hexdigest() == meta.sha256
    assert data.startswith(b"%PDF-")
    # A resumed download continues where the first stopped.
    _, tail = kit.download(job.id, offset=1000)
    assert tail == data[1000:]

    info = pdfinfo(data)
    assert int(info["Pages"]) == meta.page_count >= 1
    assert_page_size(info, (842, 595))  # A4 landscape

    text = pdftotext(data)
    for widget in widgets:
        assert widget.title in text, widget.title
    for widget in widgets:
        if widget.HasField("kpi"):
            value = kit.value_text(widget)
            assert value in text, f"KPI {widget.title!r}: {value!r} not in the PDF"
    assert "Export report" in text and f"Version {job.dashboard_version}" in text
    assert_no_blank_widget(data, widgets)


def test_pdf_paper_sizes_orientation_margins_header_and_footer(kit: ExportKit, worker: WorkerProcess) -> None:
    board = kit.small_board()
    cases = [
        (e.PAPER_SIZE_A3, e.ORIENTATION_PORTRAIT, (842, 1191)),
        (e.PAPER_SIZE_LETTER, e.ORIENTATION_LANDSCAPE, (792, 612)),
        (e.PAPER_SIZE_LEGAL, e.ORIENTATION_PORTRAIT, (612, 1008)),
    ]
    jobs = [
        kit.create(
            board.id,
            PDF,
            e.ExportOptions(
                paper_size=paper,
                orientation=orientation,
                margins=e.Margins(top_mm=20, right_mm=15, bottom_mm=20, left_mm=15),
                header_text="Confidential — ward report",
                footer_text="Tessera test footer",
            ),
        )
        for paper, orientation, _ in cases
    ]
    for job, (_, _, expected) in zip(jobs, cases, strict=True):
        done = kit.wait(job.id)
        assert done.state == SUCCEEDED, done.error
        _, data = kit.download(job.id)
        assert_page_size(pdfinfo(data), expected)
        text = pdftotext(data)
        assert "Confidential — ward report" in text and "Tessera test footer" in text
        assert "1 of 1" in text or "1 / 1" in text, text[-300:]


def test_png_has_the_requested_size_scale_and_transparency(kit: ExportKit, worker: WorkerProcess) -> None:
    board = kit.small_board()
    opaque = kit.create(board.id, PNG, e.ExportOptions(width_px=900, scale_factor=2))
    clear = kit.create(board.id, PNG, e.ExportOptions(width_px=700, scale_factor=1, transparent_background=True))
    for job, width, scale, transparent in ((opaque, 900, 2, False), (clear, 700, 1, True)):
        done = kit.wait(job.id)
        assert done.state == SUCCEEDED, done.error
        meta, data = kit.download(job.id)
        image = png_image(data)
        assert meta.content_type == "image/png" and meta.page_count == 1
        assert image.size == (meta.width_px, meta.height_px)
        assert image.width == width * scale, image.size
        assert image.height > 200 * scale
        alpha = image.convert("RGBA").getchannel("A")
        lowest, _ = alpha.getextrema()
        if transparent:
            assert lowest == 0, "no transparent pixel in a transparent export"
        else:
            assert lowest == 255, "transparent pixels in an opaque export"
        # Ink: the page is not blank.
        assert image.convert("L").getextrema()[0] < 128


def test_thirty_widgets_and_a_500_row_table_paginate_without_cutting_a_widget(
    kit: ExportKit, worker: WorkerProcess
) -> None:
    board, widgets = kit.big_board(kpis=29, table_rows=500)
    job = kit.create(board.id, PDF, e.ExportOptions(orientation=e.ORIENTATION_PORTRAIT))
    done = kit.wait(job.id, timeout=180)
    assert done.state == SUCCEEDED, done.error
    _, data = kit.download(job.id)
    pages = int(pdfinfo(data)["Pages"])
    assert pages >= 3, pages
    words = pdf_words(data)
    by_text: dict[str, list[int]] = {}
    for word in words:
        by_text.setdefault(word.text, []).append(word.page)
    for widget in widgets:
        if widget.HasField("kpi"):
            # Each KPI has a one-word title and value unique to it: both on one page, once.
            title_pages = by_text.get(widget.title, [])
            value_pages = by_text.get(kit.value_text(widget), [])
            assert len(title_pages) == 1, (widget.title, title_pages)
            assert value_pages == title_pages, f"{widget.title} cut across pages {title_pages} / {value_pages}"
    # The table: every row once, in order, and its header on every page it spans.
    rows = [word for word in words if word.text.startswith("row-")]
    assert [word.text for word in rows] == [f"row-{i:04d}" for i in range(1, 501)]
    table_pages = sorted({word.page for word in rows})
    assert len(table_pages) >= 2
    header_pages = {word.page for word in words if word.text == "Identifier"}
    assert set(table_pages) <= header_pages, (table_pages, header_pages)


def test_unicode_text_renders(kit: ExportKit, worker: WorkerProcess) -> None:
    title = "Qualité des soins — 日本語レポート — مرحبا — שלום"
    board = kit.small_board(title=title, kpi_title="Überweisungen 東京")
    done = kit.wait(kit.create(board.id, PDF).id)
    assert done.state == SUCCEEDED, done.error
    _, data = kit.download(done.id)
    text = pdftotext(data)
    for fragment in ("Qualité des soins", "日本語レポート", "Überweisungen", "東京"):
        assert fragment in text, fragment
    # RTL text comes out (pdftotext may order it visually; either order is the same letters).
    for rtl in ("مرحبا", "שלום"):
        assert rtl in text or rtl[::-1] in text, rtl
    # No glyph fell back to a box (pdffonts would list a Type 3 fallback; poppler's text keeps U+FFFD).
    assert "\ufffd" not in text


def test_the_page_makes_no_request_and_runs_no_script(kit: ExportKit, worker: WorkerProcess) -> None:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{listener.server_address[1]}"
        hostile = f'<img src="{url}/img"><script>document.title="pwned"</script><link rel=stylesheet href="{url}/css">'
        board = kit.small_board(title=hostile, kpi_title=f'<iframe src="{url}/frame"></iframe>')
        for fmt in (PDF, PNG):
            done = kit.wait(kit.create(board.id, fmt).id)
            assert done.state == SUCCEEDED, done.error
            if fmt == PDF:
                _, data = kit.download(done.id)
                text = pdftotext(data)
                assert "<script>" in text and "<img" in text, "user text must show as text, escaped"
        assert hits == [], f"the export page made requests: {hits}"
    finally:
        listener.shutdown()


def test_a_dropped_watch_resumes_and_the_worker_counts_exports(kit: ExportKit, worker: WorkerProcess) -> None:
    board = kit.small_board(slow=True)
    before = _export_count(worker, "pdf", "succeeded")
    job = kit.create(board.id, PDF)
    first = kit.stubs.exports.WatchExport(e.WatchExportRequest(id=job.id), metadata=kit.md, timeout=60)
    seen = 0
    for event in first:
        if event.HasField("export"):
            seen = event.export.revision
            if event.export.stage == e.EXPORT_STAGE_RENDERING:
                break
    first.cancel()  # the client goes away mid-export
    last, _ = resume_watch(kit, job.id, seen)
    assert last.state == SUCCEEDED
    # The task records its duration just after the job's last revision is published.
    deadline = time.monotonic() + 10
    while _export_count(worker, "pdf", "succeeded") < before + 1:
        assert time.monotonic() < deadline, "the worker's export metrics did not move"
        time.sleep(0.1)


# --- bad input -----------------------------------------------------------------------------


def test_bad_input_is_refused_with_the_field_and_creates_nothing(kit: ExportKit, auth: Any, facility: str) -> None:
    board = kit.small_board()
    missing = str(uuid.uuid4())
    expect_failure(lambda: kit.create(missing, PDF), grpc.StatusCode.NOT_FOUND)
    stranger = auth("mallory", "admin", f"other-{facility}")
    expect_failure(lambda: kit.create(board.id, PDF, md=stranger), grpc.StatusCode.NOT_FOUND)
    expect_failure(
        lambda: kit.create(board.id, PDF, e.ExportOptions(scale_factor=9)),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="options.scale_factor",
    )
    expect_failure(
        lambda: kit.create(
            board.id,
            PDF,
            # 210 mm wide in portrait: 200 mm of margins leave 10.
            e.ExportOptions(orientation=e.ORIENTATION_PORTRAIT, margins=e.Margins(left_mm=100, right_mm=100)),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="options.margins",
    )
    expect_failure(
        lambda: kit.create(board.id, PDF, filter_values={"nope": c.ParameterValue(string_value="x")}),
        grpc.StatusCode.INVALID_ARGUMENT,
        field='filter_values["nope"]',
    )
    expect_failure(lambda: kit.create(board.id, PDF, dashboard_version=999), grpc.StatusCode.NOT_FOUND, reason=None)
    draft = kit.stubs.dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=kit.facility, title="Draft")), metadata=kit.md
    )
    expect_failure(
        lambda: kit.create(draft.id, PDF),
        grpc.StatusCode.FAILED_PRECONDITION,
        field="dashboard_version",
        reason="DASHBOARD_NOT_PUBLISHED",
    )
    # All or none: the second item is bad, so the first is not created either.
    batch = e.BatchCreateExportsRequest(
        requests=[
            e.CreateExportRequest(dashboard_id=board.id, format=PDF),
            e.CreateExportRequest(dashboard_id=draft.id, format=PNG),
        ]
    )
    expect_failure(
        lambda: kit.stubs.exports.BatchCreateExports(batch, metadata=kit.md),
        grpc.StatusCode.FAILED_PRECONDITION,
        field="requests[1].dashboard_version",
    )
    assert kit.list(board.id) == []


def test_filter_values_reach_every_widget_and_are_checked_when_created(kit: ExportKit, worker: WorkerProcess) -> None:
    spec = q.ParameterSpec(name="min_n", type=q.PARAMETER_TYPE_INT, min=c.ParameterValue(int_value=1))
    binding = {"filter_bindings": {"min_n": "min_n"}, "parameter_values": {"min_n": c.ParameterValue(int_value=1)}}
    config = {"kpi": w.KpiConfig(value_column="n"), "query_fields": {"parameters": [spec]}, "binding": binding}
    sql = "SELECT count(*) AS n FROM generate_series(1, 10) i WHERE i >= :min_n"
    board, _ = kit.board(
        "Filtered",
        ("Counted rows", sql, w.GridPosition(x=0, y=0, width=4, height=2), config),
        filters=(d.DashboardFilter(name="min_n", label="Minimum"),),
    )
    done = kit.wait(kit.create(board.id, PDF, filter_values={"min_n": c.ParameterValue(int_value=4)}).id)
    assert done.state == SUCCEEDED, done.error
    assert done.filter_values["min_n"].int_value == 4
    _, data = kit.download(done.id)
    text = pdftotext(data)
    assert "Minimum = 4" in text, "the header names the filters applied"
    assert re.search(r"\b7\b", text), "the KPI counted 4..10 with the filter bound"
    expect_failure(
        lambda: kit.create(board.id, PDF, filter_values={"min_n": c.ParameterValue(int_value=0)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="filter_values",
    )
    expect_failure(
        lambda: kit.create(board.id, PDF, filter_values={"min_n": c.ParameterValue(string_value="four")}),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="filter_values",
    )


def test_request_ids_batches_lists_and_pages(kit: ExportKit, worker: WorkerProcess) -> None:
    board = kit.small_board()
    request_id = str(uuid.uuid4())
    first = kit.create(board.id, PNG, request_id=request_id)
    again = kit.create(board.id, PNG, request_id=request_id)
    assert again.id == first.id
    expect_failure(lambda: kit.create(board.id, PDF, request_id=request_id), grpc.StatusCode.ALREADY_EXISTS)
    batch = kit.stubs.exports.BatchCreateExports(
        e.BatchCreateExportsRequest(
            requests=[e.CreateExportRequest(dashboard_id=board.id, format=fmt) for fmt in (PDF, PNG, PDF)]
        ),
        metadata=kit.md,
    )
    assert [job.format for job in batch.exports] == [PDF, PNG, PDF]
    for job in batch.exports:
        assert kit.wait(job.id).state == SUCCEEDED
    ids = [job.id for job in kit.list(board.id)]
    assert set(ids) == {first.id, *(job.id for job in batch.exports)}
    paged: list[str] = []
    token = ""
    while True:
        page = kit.stubs.exports.ListExports(
            e.ListExportsRequest(dashboard_id=board.id, page_size=2, page_token=token), metadata=kit.md
        )
        paged += [job.id for job in page.exports]
        token = page.next_page_token
        if not token:
            break
    assert paged == ids, "pages are the list, newest first, without repeats"
    mine = kit.stubs.exports.ListExports(e.ListExportsRequest(page_size=1000), metadata=kit.md)
    assert set(ids) <= {job.id for job in mine.exports}
    succeeded = kit.stubs.exports.ListExports(
        e.ListExportsRequest(dashboard_id=board.id, state=SUCCEEDED), metadata=kit.md
    )
    assert len(succeeded.exports) == 4


# --- isolation and PHI ---------------------------------------------------------------------


def test_exports_are_private_to_their_requester_and_carry_masking(
    kit: ExportKit, worker: WorkerProcess, auth: Any
) -> None:
    board = kit.phi_board()
    colleague = auth("bob", "viewer", kit.facility)
    kit.stubs.shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, user_id="bob", level=s.SHARE_LEVEL_VIEW), metadata=kit.md
    )
    reader = auth("alice", "editor", kit.facility, permissions=("phi:read",))
    unmasked = kit.wait(kit.create(board.id, PDF, md=reader).id, md=reader)
    masked = kit.wait(kit.create(board.id, PDF, md=colleague).id, md=colleague)
    assert unmasked.state == SUCCEEDED and masked.state == SUCCEEDED
    _, with_phi = kit.download(unmasked.id, md=reader)
    _, without_phi = kit.download(masked.id, md=colleague)
    assert "Ada Lovelace" in pdftotext(with_phi)
    assert "Ada Lovelace" not in pdftotext(without_phi)
    # Nobody else sees another's export, whatever they may see of the dashboard.
    for call in (
        lambda: kit.stubs.exports.GetExport(e.GetExportRequest(id=unmasked.id), metadata=colleague),
        lambda: kit.download(unmasked.id, md=colleague),
        lambda: kit.stubs.exports.CancelExport(e.CancelExportRequest(id=unmasked.id), metadata=colleague),
        lambda: list(kit.stubs.exports.WatchExport(e.WatchExportRequest(id=unmasked.id), metadata=colleague)),
    ):
        expect_failure(call, grpc.StatusCode.NOT_FOUND)
    assert unmasked.id not in [job.id for job in kit.list(board.id, md=colleague)]
    # The requester without phi:read any more may not take the unmasked file.
    expect_failure(
        lambda: kit.download(unmasked.id, md=kit.md),
        grpc.StatusCode.PERMISSION_DENIED,
        reason="PHI_PERMISSION_REQUIRED",
    )
    # A file without PHI is theirs whatever their permissions now.
    plain = kit.wait(kit.create(kit.small_board().id, PDF, md=reader).id, md=reader)
    assert plain.state == SUCCEEDED
    _, no_phi = kit.download(plain.id, md=kit.md)
    assert no_phi.startswith(b"%PDF-")
    # Another facility's admin: NOT_FOUND for everything.
    outsider = auth("alice", "admin", f"elsewhere-{kit.facility}")
    expect_failure(
        lambda: kit.stubs.exports.GetExport(e.GetExportRequest(id=masked.id), metadata=outsider),
        grpc.StatusCode.NOT_FOUND,
    )
    # The export is in the audit log with its rows and whether PHI left unmasked.
    events = kit.audit_events(auth, unmasked.id)
    assert len(events) == 1 and events[0].phi_unmasked and events[0].row_count == 1
    assert events[0].actor == "alice" and events[0].facility_id == kit.facility
    masked_events = kit.audit_events(auth, masked.id)
    assert len(masked_events) == 1 and not masked_events[0].phi_unmasked


# --- cancel and faults ---------------------------------------------------------------------


def test_cancel_during_rendering_leaves_no_file(kit: ExportKit, worker: WorkerProcess, storage: Path) -> None:
    board = kit.small_board(slow=True)
    job = kit.create(board.id, PDF)
    stream = kit.stubs.exports.WatchExport(e.WatchExportRequest(id=job.id), metadata=kit.md, timeout=60)
    for event in stream:
        if event.HasField("export") and event.export.stage == e.EXPORT_STAGE_RENDERING:
            break
    stream.cancel()
    cancelled = kit.stubs.exports.CancelExport(e.CancelExportRequest(id=job.id), metadata=kit.md)
    assert cancelled.state == CANCELLED and cancelled.stage == e.EXPORT_STAGE_DONE
    expect_failure(
        lambda: kit.stubs.exports.CancelExport(e.CancelExportRequest(id=job.id), metadata=kit.md),
        grpc.StatusCode.FAILED_PRECONDITION,
        reason="EXPORT_ALREADY_ENDED",
    )
    kit.wait_for_log(worker, f"{job.id} cancelled")
    assert not list(storage.rglob(f"{job.id}*")), "a cancelled export left a file"
    assert kit.wait(job.id).state == CANCELLED
    expect_failure(lambda: kit.download(job.id), grpc.StatusCode.FAILED_PRECONDITION, reason="EXPORT_NOT_READY")


@pytest.mark.slow
def test_worker_killed_mid_export_is_redelivered_and_writes_exactly_one_file(
    settings: Settings, migrated: str, tmp_path: Path, auth: Any, facility: str
) -> None:
    config = jobs_settings(
        settings,
        broker_url_for(settings.redis_url),
        export_storage_url=f"file://{tmp_path}",
        broker_visibility_timeout_seconds=3,
        broker_restore_interval_seconds=1,
    )
    env = worker_env(
        config,
        TESSERA_EXPORT_STORAGE_URL=f"file://{tmp_path}",
        TESSERA_BROKER_VISIBILITY_TIMEOUT_SECONDS="3",
        TESSERA_BROKER_RESTORE_INTERVAL_SECONDS="1",
    )
    handle = start_in_thread(config)
    try:
        with grpc.insecure_channel(handle.address) as channel:
            kit = ExportKit(stubs_for(channel), auth("alice", "editor", facility), facility)
            board = kit.small_board(slow=True)
            doomed = WorkerProcess(env, queues="exports", concurrency=1).start()
            job = kit.create(board.id, PDF)
            seen = 0
            for event in kit.stubs.exports.WatchExport(e.WatchExportRequest(id=job.id), metadata=kit.md, timeout=60):
                if event.HasField("export"):
                    seen = event.export.revision
                    if event.export.stage == e.EXPORT_STAGE_RENDERING:
                        break
            doomed.kill()
            rescuer = WorkerProcess(env, queues="exports", concurrency=1).start()
            try:
                # Nothing happens until the broker gives the task back (3 s visibility timeout):
                # the resumed watch sends heartbeats meanwhile, then the rescuer's revisions.
                done, beats = resume_watch(kit, job.id, seen)
            finally:
                rescuer.stop()
            assert done.state == SUCCEEDED, done.error
            assert beats >= 1, "an idle watch sends heartbeats"
            files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
            assert files == [f"{job.id}.pdf"], files
            _, data = kit.download(job.id)
            assert hashlib.sha256(data).hexdigest() == done.file.sha256
    finally:
        handle.stop()


def test_a_broker_that_refuses_the_task_fails_the_job_and_says_retry(
    settings: Settings, migrated: str, auth: Any, facility: str
) -> None:
    # Nothing listens on port 1: the enqueue fails after the job row was committed.
    config = jobs_settings(settings, "redis://127.0.0.1:1/0")
    handle = start_in_thread(config)
    try:
        with grpc.insecure_channel(handle.address) as channel:
            kit = ExportKit(stubs_for(channel), auth("alice", "editor", facility), facility)
            board = kit.small_board()
            expect_failure(lambda: kit.create(board.id, PDF), grpc.StatusCode.UNAVAILABLE, reason="BROKER_UNAVAILABLE")
            [job] = kit.list(board.id)
            assert job.state == FAILED and job.stage == e.EXPORT_STAGE_DONE
            assert job.error.reason == "BROKER_UNAVAILABLE" and "retry" in job.error.message
    finally:
        handle.stop()


@pytest.mark.slow
def test_chromium_failures_are_retried_then_fail_the_job_clearly(
    settings: Settings, migrated: str, tmp_path: Path, auth: Any, facility: str
) -> None:
    # A Chromium that fails its first launch, then works: the export still succeeds.
    flaky = tmp_path / "flaky-chromium"
    marker = tmp_path / "launched-once"
    real = Settings().chromium_path or _system_chromium()
    flaky.write_text(f'#!/bin/sh\nif [ ! -e "{marker}" ]; then touch "{marker}"; exit 1; fi\nexec "{real}" "$@"\n')
    flaky.chmod(0o755)
    config = jobs_settings(settings, broker_url_for(settings.redis_url), export_storage_url=f"file://{tmp_path}")
    handle = start_in_thread(config)
    try:
        with grpc.insecure_channel(handle.address) as channel:
            kit = ExportKit(stubs_for(channel), auth("alice", "editor", facility), facility)
            board = kit.small_board()
            for path, expected in ((str(flaky), SUCCEEDED), (str(tmp_path / "no-such-chromium"), FAILED)):
                # Every retry still happens; capping the backoff at 1 s (5 retries: 2.5-5 s, not 15-31 s)
                # keeps the failing half from waiting out production's delays.
                env = worker_env(
                    config,
                    TESSERA_EXPORT_STORAGE_URL=f"file://{tmp_path}",
                    TESSERA_CHROMIUM_PATH=path,
                    TESSERA_TASK_RETRY_BACKOFF_MAX_SECONDS="1",
                )
                process = WorkerProcess(env, queues="exports", concurrency=1).start()
                try:
                    done = kit.wait(kit.create(board.id, PDF).id, timeout=120)
                finally:
                    process.stop()
                assert done.state == expected, (path, done)
                if expected == FAILED:
                    assert done.error.reason == "RENDER_FAILED"
                    assert "no-such-chromium" in done.error.message or "attempt" in done.error.message
            assert marker.exists()
    finally:
        handle.stop()


def test_expired_files_are_removed_and_no_longer_served(
    kit: ExportKit, worker: WorkerProcess, export_settings: Settings, storage: Path
) -> None:
    board = kit.small_board()
    done = kit.wait(kit.create(board.id, PNG).id)
    assert done.state == SUCCEEDED
    assert list(storage.rglob(f"{done.id}.png"))
    kit.expire(export_settings, done.id)
    expect_failure(lambda: kit.download(done.id), grpc.StatusCode.FAILED_PRECONDITION, reason="EXPORT_EXPIRED")
    kit.run_expiry(export_settings)
    assert not list(storage.rglob(f"{done.id}*")), "the expired file is still stored"


# --- helpers -------------------------------------------------------------------------------


def assert_page_size(info: dict[str, str], expected: tuple[float, float]) -> None:
    # Chromium rounds page sizes to whole CSS pixels (A4 landscape is 842.88 x 595.92 pt).
    width, height = page_size_pts(info)
    assert abs(width - expected[0]) <= 1.5 and abs(height - expected[1]) <= 1.5, info["Page size"]


def assert_no_blank_widget(pdf: bytes, widgets: list[w.Widget]) -> None:
    """Each widget's card has ink below its title: the area from the title down to the next title
    under it in the same column (or 150 pt) holds at least a few dozen dark pixels."""
    images = page_images(pdf, dpi=72)  # one pixel per point, like pdftotext's boxes
    words = pdf_words(pdf)
    titles = {widget.title: next(word for word in words if word.text == widget.title.split()[0]) for widget in widgets}
    for widget in widgets:
        box = titles[widget.title]
        below = [
            other.y_min
            for other in titles.values()
            if other.page == box.page and other.y_min > box.y_max and abs(other.x_min - box.x_min) < 40
        ]
        bottom = min([box.y_max + 150, *below]) - 6
        image = images[box.page - 1].convert("L")
        region = image.crop((int(box.x_min), int(box.y_max) + 4, min(image.width, int(box.x_min) + 250), int(bottom)))
        ink = sum(1 for value in region.get_flattened_data() if value < 180)
        assert ink >= 30, f"the area of {widget.title!r} is blank ({ink} dark pixels)"


def resume_watch(kit: ExportKit, export_id: str, seen: int) -> tuple[e.ExportJob, int]:
    """Watches from `since_revision=seen` to the end: the revisions after `seen` with no gap and
    no repeat, every heartbeat at a revision already sent. Returns the last job and the number
    of heartbeats."""
    resumed = kit.stubs.exports.WatchExport(
        e.WatchExportRequest(id=export_id, since_revision=seen), metadata=kit.md, timeout=120
    )
    revisions: list[int] = []
    beats = 0
    last = e.ExportJob()
    for event in resumed:
        if event.HasField("export"):
            revisions.append(event.export.revision)
            last = event.export
        else:
            beats += 1
            assert event.heartbeat.revision >= seen
    assert revisions == list(range(seen + 1, seen + 1 + len(revisions))), (seen, revisions)
    return last, beats


def _export_count(worker: WorkerProcess, fmt: str, outcome: str) -> float:
    """tessera_export_duration_seconds_count from the worker's metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tessera_export_duration_seconds_count" and sample.labels == {
                "format": fmt,
                "outcome": outcome,
            }:
                return sample.value
    return 0.0


def _system_chromium() -> str:
    from server.exports.chromium import find_chromium

    return find_chromium("", None)
