"""Issue 17: a CSV data export of 1,000,000 rows against PostgreSQL's own COPY.

- `data_export.csv`: CreateExport(CSV) of a widget whose query yields 1,000,000 rows (integer,
  float, numeric, timestamp, date, boolean, text) until SUCCEEDED on the watch stream, then the
  verified download. Reported: rows/s and the worker's peak resident set (VmHWM of its processes;
  the worker is started for this benchmark, so the peak is the export's).
  Baseline, same run: `COPY (<the same query>) TO STDOUT WITH (FORMAT csv, HEADER)` read whole by
  psycopg. `ratio` = export seconds / COPY seconds.
- `data_export.query_csv`: the same rows as a saved query's run (`CreateExportRequest.query`, no
  dashboard), against the same COPY.

A real server (in a thread), a real Celery worker (subprocess) and a broker prefix of its own.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import psutil
import psycopg

from bench.harness import Bench
from dashboard.v1 import common_pb2 as c
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import widget_pb2 as w
from tests.harness.exports import ExportKit, stubs_for
from tests.harness.server import start_in_thread
from tests.integration.test_jobs import broker_url_for, jobs_settings, worker_env
from workers.testing import WorkerProcess

ROWS = 1_000_000
SQL = (
    "SELECT i AS id, i * 0.5::float8 AS score, round(i / 3.0, 4) AS ratio,"
    " timestamp '2024-01-01' + i * interval '1 second' AS seen_at, date '2024-01-01' + (i % 365) AS day,"
    " i % 2 = 0 AS even, 'note ' || i AS note FROM generate_series(1, {rows}) i"
)


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    rounds = 3 if full else 1
    sql = SQL.format(rows=ROWS)
    folder = tempfile.mkdtemp(prefix="tessera-bench-data-")
    config = jobs_settings(
        bench.settings, broker_url_for(bench.settings.redis_url), export_storage_url=f"file://{folder}"
    )
    server = start_in_thread(config)
    worker = WorkerProcess(worker_env(config, TESSERA_EXPORT_STORAGE_URL=f"file://{folder}"), queues="exports")
    worker.start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            facility = f"bench-{uuid.uuid4().hex[:8]}"
            kit = ExportKit(stubs_for(channel), bench.metadata("editor", facility), facility)
            board, widgets = kit.board(
                "Bench data export",
                ("Ledger", sql, w.GridPosition(x=0, y=0, width=12, height=4), {"table": w.TableConfig()}),
            )
            saved = kit.query(sql)
            exports, query_exports, copies = [], [], []
            size = query_size = 0
            for _ in range(rounds):
                copies.append(_copy_seconds(bench.dsn, sql))
                seconds, size = _export_seconds(kit, board.id, widgets[0].id)
                exports.append(seconds)
                seconds, query_size = _query_export_seconds(kit, saved.id)
                query_exports.append(seconds)
            peak = _peak_rss_mib(worker)
    finally:
        worker.stop()
        server.stop()
    export_s, copy_s, query_s = min(exports), min(copies), min(query_exports)
    return [
        {
            "name": "data_export.csv",
            "rows": ROWS,
            "bytes": size,
            "export_seconds": round(export_s, 2),
            "export_rows_per_s": round(ROWS / export_s),
            "copy_seconds": round(copy_s, 2),
            "copy_rows_per_s": round(ROWS / copy_s),
            "ratio": round(export_s / copy_s, 2),
            "worker_peak_rss_mib": round(peak),
            "rounds": rounds,
        },
        {
            "name": "data_export.query_csv",
            "rows": ROWS,
            "bytes": query_size,
            "export_seconds": round(query_s, 2),
            "export_rows_per_s": round(ROWS / query_s),
            "copy_seconds": round(copy_s, 2),
            "ratio": round(query_s / copy_s, 2),
            "worker_peak_rss_mib": round(peak),
            "rounds": rounds,
        },
    ]


def _copy_seconds(dsn: str, sql: str) -> float:
    started = time.perf_counter()
    received = 0
    with (
        psycopg.connect(dsn) as conn,
        conn.cursor() as cursor,
        cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy,
    ):
        for data in copy:
            received += len(data)
    assert received > 0
    return time.perf_counter() - started


def _export_seconds(kit: ExportKit, dashboard_id: str, widget_id: str) -> tuple[float, int]:
    started = time.perf_counter()
    job = kit.create(dashboard_id, e.EXPORT_FORMAT_CSV, widget_id=widget_id)
    done = kit.wait(job.id, timeout=900)
    assert done.state == c.JOB_STATE_SUCCEEDED, done.error
    meta, data = kit.download(job.id, chunk_size=1 << 20)
    elapsed = time.perf_counter() - started
    assert meta.row_count == ROWS and len(data) == meta.size_bytes
    return elapsed, len(data)


def _query_export_seconds(kit: ExportKit, query_id: str) -> tuple[float, int]:
    started = time.perf_counter()
    request = e.CreateExportRequest(format=e.EXPORT_FORMAT_CSV, query=e.QueryExportSource(query_id=query_id))
    job = kit.stubs.exports.CreateExport(request, metadata=kit.md, timeout=30)
    done = kit.wait(job.id, timeout=900)
    assert done.state == c.JOB_STATE_SUCCEEDED, done.error
    meta, data = kit.download(job.id, chunk_size=1 << 20)
    elapsed = time.perf_counter() - started
    assert meta.row_count == ROWS and len(data) == meta.size_bytes
    return elapsed, len(data)


def _peak_rss_mib(worker: WorkerProcess) -> float:
    main = psutil.Process(worker.process.pid)
    peaks = [0.0]
    for process in [main, *main.children(recursive=True)]:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except FileNotFoundError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
    return max(peaks)
