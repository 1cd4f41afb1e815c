"""CSV and XLSX exports of a widget's data, end to end: real server, real Celery worker, a
100,000-row result read back with the csv module and openpyxl (row count, types, masking), the
audit event of the data read, validation naming the field, and the worker's peak memory."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import openpyxl
import psutil
import pytest

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from tests.harness.exports import ExportKit, Stubs, stubs_for
from tests.harness.rpc import expect_failure
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import broker_url_for, jobs_settings, worker_env
from workers.testing import WorkerProcess

CSV, XLSX = e.EXPORT_FORMAT_CSV, e.EXPORT_FORMAT_XLSX
ROWS = 100_000
# Every type an export must keep: integers, floats, numerics, timestamps, dates, booleans, text
# that a spreadsheet would run as a formula, NULLs, and a PHI column.
SQL = (
    "SELECT i AS id, i * 0.5::float8 AS score, round(i / 3.0, 4) AS ratio,"
    " timestamp '2024-01-01 00:00:00' + i * interval '1 minute' AS seen_at,"
    " date '2024-01-01' + (i % 365) AS day, i % 2 = 0 AS even,"
    " CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || i END AS note,"
    " CASE WHEN i = 1 THEN '=cmd()' ELSE 'ok' END AS formula,"
    " 'Patient ' || i AS patient_name"
    " FROM generate_series(1, 100000) i ORDER BY i"
)
# XLSX is slower to write and read back: the same 100,000 rows, fewer columns.
XLSX_SQL = (
    "SELECT i AS id, i * 0.5::float8 AS score, timestamp '2024-01-01 00:00:00' + i * interval '1 minute' AS seen_at,"
    " CASE WHEN i = 1 THEN '=cmd()' WHEN i % 10 = 0 THEN NULL ELSE 'ok' END AS formula,"
    " 'Patient ' || i AS patient_name FROM generate_series(1, 100000) i ORDER BY i"
)
XLSX_HEADER = ["id", "score", "seen_at", "formula", "patient_name"]
HEADER = ["id", "score", "ratio", "seen_at", "day", "even", "note", "formula", "patient_name"]


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data-exports")


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
    env = worker_env(export_settings, TESSERA_EXPORT_STORAGE_URL=f"file://{storage}")
    process = WorkerProcess(env, queues="exports").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def stubs(export_server: ServerHandle) -> Iterator[Stubs]:
    with grpc.insecure_channel(export_server.address) as channel:
        yield stubs_for(channel)


@pytest.fixture(scope="module")
def facility_m() -> str:
    return f"fac-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def kit(stubs: Stubs, auth: Any, facility_m: str) -> ExportKit:
    return ExportKit(stubs, auth("alice", "editor", facility_m), facility_m)


@pytest.fixture(scope="module")
def table(kit: ExportKit) -> tuple[Any, list[Any]]:
    """A published dashboard whose table widget reads 100,000 rows (its query's interactive cap
    is far lower: the export must not be cut by it)."""
    sensitive = [q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_REDACT)]
    board, widgets = kit.board(
        "Registry extract",
        ("Admissions ledger", SQL, w.GridPosition(x=0, y=0, width=12, height=4),
         {"table": w.TableConfig(), "query_fields": {"sensitive_columns": sensitive}}),
        ("Admissions sheet", XLSX_SQL, w.GridPosition(x=0, y=4, width=12, height=4),
         {"table": w.TableConfig(), "query_fields": {"sensitive_columns": list(sensitive)}}),
    )  # fmt: skip
    return board, widgets


def _export(
    kit: ExportKit, board: Any, widget: Any, fmt: int, worker: WorkerProcess, md: Any = None
) -> tuple[Any, bytes]:
    job = kit.create(board.id, fmt, widget_id=widget.id, md=md)
    assert job.widget_id == widget.id and job.state == c.JOB_STATE_QUEUED
    try:
        done = kit.wait(job.id, md=md, timeout=40)
    except grpc.RpcError:
        pytest.fail(f"the export did not end; worker log:\n{worker.log[-5000:]}")
    assert done.state == c.JOB_STATE_SUCCEEDED, (done.error, worker.log[-5000:])
    meta, data = kit.download(job.id, md=md, chunk_size=1 << 20)
    assert meta.row_count == ROWS and meta.size_bytes == len(data)
    assert hashlib.sha256(data).hexdigest() == meta.sha256, "the streamed encryption announces the plaintext's digest"
    return done, data


def _worker_peak_rss_mib(worker: WorkerProcess) -> float:
    """The largest peak resident set (VmHWM) of the worker's processes (main and pool)."""
    main = psutil.Process(worker.process.pid)
    peaks = []
    for process in [main, *main.children(recursive=True)]:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def test_csv_of_100k_rows_keeps_types_and_masks_phi(
    kit: ExportKit, table: tuple[Any, list[Any]], worker: WorkerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    board, (widget, _) = table
    done, data = _export(kit, board, widget, CSV, worker)
    assert done.file.content_type == "text/csv" and done.file.filename.endswith(".csv")
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte order mark"
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == HEADER
    body = rows[1:]
    assert len(body) == ROWS
    first, tenth = body[0], body[9]
    assert first[:6] == ["1", "0.5", "0.3333", "2024-01-01 00:01:00", "2024-01-02", "false"]
    assert first[7] == "'=cmd()", "a formula is neutralised"
    assert tenth[6] == "" and body[8][6] == "note 9", "NULL is the empty field"
    assert {row[8] for row in body} == {"[REDACTED]"}, "PHI masked for a requester without phi:read"
    assert [int(row[0]) for row in body] == list(range(1, ROWS + 1))
    peak = _worker_peak_rss_mib(worker)
    with capsys.disabled():
        print(f"\n[data export] CSV {ROWS:,} rows, {len(data):,} bytes; worker peak RSS {peak:.0f} MiB")


def test_xlsx_of_100k_rows_has_numbers_dates_and_masking(
    kit: ExportKit, table: tuple[Any, list[Any]], worker: WorkerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    board, (_, widget) = table
    done, data = _export(kit, board, widget, XLSX, worker)
    assert done.file.filename.endswith(".xlsx") and data.startswith(b"PK")
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    sheet = book["data"]
    rows = sheet.iter_rows(values_only=True)
    assert list(next(rows)) == XLSX_HEADER
    count = 0
    for count, row in enumerate(rows, start=1):
        if count == 1:
            assert row[0] == 1 and isinstance(row[0], int) and row[1] == 0.5
            assert row[2] == dt.datetime(2024, 1, 1, 0, 1)
            assert row[3] == "=cmd()", "text stays text, never a formula"
        if count == 10:
            assert row[3] is None
        assert row[4] == "[REDACTED]"
    assert count == ROWS
    peak = _worker_peak_rss_mib(worker)
    with capsys.disabled():
        print(f"\n[data export] XLSX {ROWS:,} rows, {len(data):,} bytes; worker peak RSS {peak:.0f} MiB")


def test_a_phi_reader_gets_phi_and_the_read_is_audited(
    kit: ExportKit, table: tuple[Any, list[Any]], worker: WorkerProcess, auth: Any
) -> None:
    board, (widget, _) = table
    reader = auth("alice", "editor", kit.facility, permissions=("phi:read",))
    done, data = _export(kit, board, widget, CSV, worker, md=reader)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[1][8] == "Patient 1" and rows[-1][8] == f"Patient {ROWS}"
    events = _data_events(kit, auth, done.id)
    assert len(events) == 1
    event = events[0]
    assert event.actor == "alice" and event.row_count == ROWS and event.phi_unmasked


def _data_events(kit: ExportKit, auth: Any, export_id: str) -> list[Any]:
    import time

    from dashboard.v1 import share_pb2 as s

    admin = auth("auditor", "admin", kit.facility)
    deadline = time.monotonic() + 10
    while True:
        answer = kit.stubs.shares.ListAuditEvents(
            s.ListAuditEventsRequest(resource_id=export_id, facility_id=kit.facility), metadata=admin
        )
        found = [event for event in answer.events if event.method == "tessera.export.data"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_nobody_else_sees_a_data_export(kit: ExportKit, table: tuple[Any, list[Any]], auth: Any) -> None:
    board, (widget, _) = table
    job = kit.create(board.id, CSV, widget_id=widget.id)
    other = auth("mallory", "editor", kit.facility)
    expect_failure(
        lambda: kit.stubs.exports.GetExport(e.GetExportRequest(id=job.id), metadata=other), grpc.StatusCode.NOT_FOUND
    )
    stranger = auth("eve", "admin", f"fac-{uuid.uuid4().hex[:10]}")
    expect_failure(lambda: kit.create(board.id, CSV, widget_id=widget.id, md=stranger), grpc.StatusCode.NOT_FOUND)
    expect_failure(
        lambda: kit.stubs.exports.GetExport(e.GetExportRequest(id=job.id), metadata=stranger), grpc.StatusCode.NOT_FOUND
    )


def test_bad_requests_name_the_field(kit: ExportKit, table: tuple[Any, list[Any]]) -> None:
    board, (widget, _) = table
    cases = [
        (dict(fmt=CSV), "widget_id", "required for CSV and XLSX"),
        (dict(fmt=XLSX, widget_id=str(uuid.uuid4())), "widget_id", "has no widget"),
        (dict(fmt=e.EXPORT_FORMAT_PDF, widget_id=widget.id), "widget_id", "only CSV and XLSX"),
        (dict(fmt=CSV, widget_id=widget.id, filter_values={"ward": c.ParameterValue(string_value="x")}),
         'filter_values["ward"]', "declares no filter"),
    ]  # fmt: skip
    for fields, field, words in cases:
        fmt = fields.pop("fmt")
        error = expect_failure(
            lambda fmt=fmt, fields=fields: kit.create(board.id, fmt, **fields), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert any(f == field and words in text for f, text in error.violations), (fields, error.violations)
