"""CSV and XLSX exports of a widget's data and of a saved query's run, end to end: real server,
real Celery worker, a 100,000-row result read back with the csv module and openpyxl (row count,
types, masking), the audit event of the data read, who may export a query's run, validation
naming the field (and creating nothing), the CLI, and the worker's peak memory."""

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
from typer.testing import CliRunner

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.cli import app
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


# --- a saved query's run ---------------------------------------------------------------------

# The rows of SQL, cut by a required parameter (so a run binds the caller's values).
QUERY_SQL = SQL.replace("generate_series(1, 100000)", "generate_series(1, :top)")


@pytest.fixture(scope="module")
def saved_query(kit: ExportKit) -> q.Query:
    """A saved query with a PHI column and a required INT parameter; its interactive row cap is
    far lower than what an export of its run holds."""
    return kit.query(
        QUERY_SQL,
        parameters=[
            q.ParameterSpec(
                name="top", type=q.PARAMETER_TYPE_INT, required=True,
                min=c.ParameterValue(int_value=1), max=c.ParameterValue(int_value=ROWS),
            )
        ],
        options=q.QueryOptions(row_limit=100),
        sensitive_columns=[q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_REDACT)],
    )  # fmt: skip


def _query_request(query: q.Query, fmt: int, top: int | None = ROWS, **fields: Any) -> e.CreateExportRequest:
    values = {"top": c.ParameterValue(int_value=top)} if top is not None else {}
    source = e.QueryExportSource(query_id=query.id, parameter_values=values)
    return e.CreateExportRequest(format=fmt, query=source, **fields)


def _export_query(kit: ExportKit, query: q.Query, fmt: int, worker: WorkerProcess, md: Any = None) -> tuple[Any, bytes]:
    job = kit.stubs.exports.CreateExport(_query_request(query, fmt), metadata=md or kit.md, timeout=30)
    assert job.state == c.JOB_STATE_QUEUED and job.dashboard_id == "" and not job.widget_id
    assert job.query.query_id == query.id and job.query.query_version == query.version
    assert job.query.parameter_values["top"].int_value == ROWS
    try:
        done = kit.wait(job.id, md=md, timeout=60)
    except grpc.RpcError:
        pytest.fail(f"the export did not end; worker log:\n{worker.log[-5000:]}")
    assert done.state == c.JOB_STATE_SUCCEEDED, (done.error, worker.log[-5000:])
    meta, data = kit.download(job.id, md=md, chunk_size=1 << 20)
    assert meta.row_count == ROWS and meta.size_bytes == len(data)
    assert hashlib.sha256(data).hexdigest() == meta.sha256
    return done, data


def _my_exports(kit: ExportKit, md: Any = None) -> list[Any]:
    answer = kit.stubs.exports.ListExports(e.ListExportsRequest(page_size=1000), metadata=md or kit.md)
    return list(answer.exports)


def test_csv_of_a_saved_query_run_keeps_types_masks_phi_and_is_audited(
    kit: ExportKit, saved_query: q.Query, worker: WorkerProcess, auth: Any
) -> None:
    done, data = _export_query(kit, saved_query, CSV, worker)
    assert done.file.content_type == "text/csv" and done.file.filename.endswith(".csv")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == HEADER
    body = rows[1:]
    assert len(body) == ROWS, "the query's interactive cap (100) does not cut an export"
    assert body[0][:6] == ["1", "0.5", "0.3333", "2024-01-01 00:01:00", "2024-01-02", "false"]
    assert body[0][7] == "'=cmd()"
    assert {row[8] for row in body} == {"[REDACTED]"}, "PHI masked for a requester without phi:read"
    assert [int(row[0]) for row in body] == list(range(1, ROWS + 1))
    assert done.id in {job.id for job in _my_exports(kit)}, "the caller's list holds it"
    [event] = _data_events(kit, auth, done.id)
    assert event.actor == "alice" and event.row_count == ROWS and not event.phi_unmasked
    assert event.resource_version == saved_query.version


@pytest.mark.slow
def test_xlsx_of_a_saved_query_run_unmasked_for_a_phi_reader(
    kit: ExportKit, saved_query: q.Query, worker: WorkerProcess, auth: Any
) -> None:
    reader = auth("alice", "editor", kit.facility, permissions=("phi:read",))
    done, data = _export_query(kit, saved_query, XLSX, worker, md=reader)
    assert done.file.filename.endswith(".xlsx") and data.startswith(b"PK")
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True)["data"]
    rows = sheet.iter_rows(values_only=True)
    assert list(next(rows)) == HEADER
    count = 0
    for count, row in enumerate(rows, start=1):
        if count == 1:
            assert row[0] == 1 and isinstance(row[0], int) and row[1] == 0.5
            assert row[3] == dt.datetime(2024, 1, 1, 0, 1) and row[5] is False
        assert row[8] == f"Patient {count}"
    assert count == ROWS
    [event] = _data_events(kit, auth, done.id)
    assert event.phi_unmasked
    # The file shows PHI: the same requester without phi:read no longer downloads it.
    plain = auth("alice", "editor", kit.facility)
    expect_failure(lambda: kit.download(done.id, md=plain), grpc.StatusCode.PERMISSION_DENIED)


def test_only_who_may_run_the_query_exports_its_run(kit: ExportKit, saved_query: q.Query, auth: Any) -> None:
    job = kit.stubs.exports.CreateExport(_query_request(saved_query, CSV, top=5), metadata=kit.md)
    stranger = auth("alice", "admin", f"fac-{uuid.uuid4().hex[:10]}")
    viewer = auth("victor", "viewer", kit.facility)
    colleague = auth("mallory", "editor", kit.facility)
    exports = kit.stubs.exports
    before = len(_my_exports(kit))
    expect_failure(
        lambda: exports.CreateExport(_query_request(saved_query, CSV), metadata=stranger), grpc.StatusCode.NOT_FOUND
    )
    expect_failure(
        lambda: exports.CreateExport(_query_request(saved_query, CSV), metadata=viewer),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    for md in (stranger, viewer, colleague):
        expect_failure(
            lambda md=md: exports.GetExport(e.GetExportRequest(id=job.id), metadata=md), grpc.StatusCode.NOT_FOUND
        )
        expect_failure(lambda md=md: kit.download(job.id, md=md), grpc.StatusCode.NOT_FOUND)
        assert job.id not in {j.id for j in _my_exports(kit, md)}
    # The requester demoted to viewer no longer sees their own export of a query's run.
    demoted = auth("alice", "viewer", kit.facility)
    expect_failure(
        lambda: exports.GetExport(e.GetExportRequest(id=job.id), metadata=demoted), grpc.StatusCode.NOT_FOUND
    )
    assert job.id not in {j.id for j in _my_exports(kit, demoted)}
    assert len(_my_exports(kit)) == before


def test_bad_query_exports_name_the_field_and_create_nothing(
    kit: ExportKit, saved_query: q.Query, table: tuple[Any, list[Any]]
) -> None:
    board, (widget, _) = table
    before = len(_my_exports(kit))
    top = 'query.parameter_values["top"]'
    cases = [
        (_query_request(saved_query, CSV, top=None), top, "required"),
        (_query_request(saved_query, CSV, top=ROWS + 1), top, ""),
        (_query_request(saved_query, CSV, top=0), top, ""),
        (e.CreateExportRequest(format=CSV, query=e.QueryExportSource(
            query_id=saved_query.id, parameter_values={"top": c.ParameterValue(string_value="ten")})), top, ""),
        (e.CreateExportRequest(format=CSV, query=e.QueryExportSource(
            query_id=saved_query.id, parameter_values={"top": c.ParameterValue(int_value=5),
                                                       "bottom": c.ParameterValue(int_value=1)})),
         'query.parameter_values["bottom"]', ""),
        (_query_request(saved_query, e.EXPORT_FORMAT_PDF), "query", "only CSV and XLSX"),
        (_query_request(saved_query, CSV, dashboard_id=board.id), "dashboard_id", "must be empty"),
        (_query_request(saved_query, CSV, widget_id=widget.id), "widget_id", "must be empty"),
        (e.CreateExportRequest(format=CSV), "dashboard_id", "required"),
        (e.CreateExportRequest(format=CSV, query=e.QueryExportSource(query_id="not-a-uuid")), "query.query_id", ""),
    ]  # fmt: skip
    for request, field, words in cases:
        error = expect_failure(
            lambda request=request: kit.stubs.exports.CreateExport(request, metadata=kit.md),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert any(f == field and words in text for f, text in error.violations), (request, error.violations)
    expect_failure(
        lambda: kit.stubs.exports.CreateExport(
            e.CreateExportRequest(format=CSV, query=e.QueryExportSource(query_id=str(uuid.uuid4()))), metadata=kit.md
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert len(_my_exports(kit)) == before, "no job was created"


def test_the_cli_exports_a_saved_query_run(
    kit: ExportKit, saved_query: q.Query, worker: WorkerProcess, export_server: ServerHandle,
    export_settings: Settings, tmp_path: Path,
) -> None:  # fmt: skip
    from server.auth.tokens import mint_token

    token = mint_token(export_settings, subject="alice", roles=["editor"], facilities=[kit.facility], permissions=[])
    env = {"TESSERA_ADDRESS": export_server.address, "COLUMNS": "200", "TESSERA_TOKEN": token, "TESSERA_LINK_TOKEN": ""}
    args = ["export", "--query", saved_query.id, "--format", "csv", "--param", "top=7", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, (result.output, worker.log[-3000:])
    [path] = tmp_path.glob("*.csv")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    assert len(rows) == 8 and rows[-1][0] == "7" and "7 row(s)" in result.stdout
    both = CliRunner().invoke(app, ["export", str(uuid.uuid4()), "--query", saved_query.id, "--format", "csv"], env=env)
    assert both.exit_code == 2 and "not both" in both.output
    pdf = CliRunner().invoke(app, ["export", "--query", saved_query.id], env=env)
    assert pdf.exit_code == 2 and "csv or xlsx" in pdf.output
