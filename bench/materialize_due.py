"""Issue 13: does materialization keep up? 1,000 widgets, each on a query of its own whose SQL
takes about 10 ms, all due at once; one beat tick (`tessera.materialize.due_widgets`) is sent to
a real worker (its own process, prefork, the default concurrency) and the clock runs until every
widget's data was recomputed (a tier-2 row computed after the tick).

Baseline, same run: the same 1,000 statements run back to back on one psycopg connection (the
SQL's own cost). Reported: seconds until all were refreshed, widgets per minute that rate
sustains, how many were refreshed within 60 s, and the ratio to the baseline."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from bench.harness import Bench
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.broker.app import make_celery
from server.broker.names import TASK_DUE_WIDGETS
from server.config import Settings
from workers.testing import WorkerProcess

FACILITY = "north-general"
PER_BOARD = 50
BEAT_SECONDS = 60.0
# A statement of about 10 ms on these machines; each widget's text differs (its own cache key).
SQL = "SELECT count(*) AS n FROM generate_series(1, {rows}) g WHERE g % 97 <> {salt}"


def _calibrate(dsn: str, target_ms: float = 10.0) -> int:
    rows = 20_000
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(6):
            started = time.perf_counter()
            for _ in range(5):
                conn.execute(SQL.format(rows=rows, salt=1))
            took = (time.perf_counter() - started) / 5 * 1000
            rows = max(1000, int(rows * target_ms / took))
    return rows


def _seed(bench: Bench, count: int, rows: int) -> tuple[list[str], list[str]]:
    md = bench.metadata("editor", FACILITY)
    queries = query_pb2_grpc.QueryServiceStub(bench.channel)
    boards = dashboard_pb2_grpc.DashboardServiceStub(bench.channel)
    widgets = widget_pb2_grpc.WidgetServiceStub(bench.channel)
    board_ids = [
        boards.CreateDashboard(
            d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=FACILITY, title=f"due {i}")), metadata=md
        ).id
        for i in range((count + PER_BOARD - 1) // PER_BOARD)
    ]

    def make(i: int) -> tuple[str, str]:
        sql = SQL.format(rows=rows, salt=i % 97) + f" AND {i} = {i}"
        query = queries.CreateQuery(
            q.CreateQueryRequest(query=q.Query(facility_id=FACILITY, name=f"due {uuid.uuid4().hex[:8]}", sql=sql)),
            metadata=md,
        )
        slot = i % PER_BOARD
        widget = w.Widget(
            dashboard_id=board_ids[i // PER_BOARD],
            title=f"w{i}",
            position=w.GridPosition(x=(slot % 12), y=slot // 12, width=1, height=1),
            kpi=w.KpiConfig(value_column="n"),
            query=w.QueryBinding(query_id=query.id),
        )
        created = widgets.CreateWidget(w.CreateWidgetRequest(widget=widget), metadata=md)
        return created.id, sql

    # Widgets of one board are created in order (grid checks lock the board); boards in parallel.
    def board(b: int) -> list[tuple[str, str]]:
        return [make(i) for i in range(b * PER_BOARD, min(count, (b + 1) * PER_BOARD))]

    with ThreadPoolExecutor(4) as pool:
        made = [pair for part in pool.map(board, range(len(board_ids))) for pair in part]
    return [m[0] for m in made], [m[1] for m in made]


def _baseline(dsn: str, statements: list[str]) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for sql in statements:
            conn.execute(sql).fetchall()
        return time.perf_counter() - started


def _refreshed(dsn: str, widget_ids: list[str], since: Any) -> tuple[int, float]:
    """Widgets recomputed since the tick, and seconds from the tick to the last of them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT w.id), coalesce(extract(epoch FROM max(c.computed_at) - %s), 0)"
            " FROM widgets w JOIN widget_data_cache c ON c.query_id = w.query_id"
            " WHERE w.id = ANY(%s::uuid[]) AND c.computed_at >= %s",
            (since, widget_ids, since),
        ).fetchone()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)


def _worker_env(settings: Settings) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BROKER_URL": settings.effective_broker_url,
        "TESSERA_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "TESSERA_REDIS_PREFIX": settings.redis_prefix,
        "TESSERA_LOG_LEVEL": "WARNING",
    }


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    count = 1000
    rows = _calibrate(bench.dsn)
    widget_ids, statements = _seed(bench, count, rows)
    baseline = _baseline(bench.dsn, statements)
    defaults = Settings()
    worker = WorkerProcess(_worker_env(bench.settings), queues="materialize", concurrency=defaults.worker_concurrency)
    worker.start()
    results: list[dict[str, Any]] = []
    try:
        for attempt in range(2 if full else 1):
            with psycopg.connect(bench.dsn, autocommit=True) as conn:
                conn.execute(
                    "UPDATE widgets SET next_refresh_at = NULL, refresh_interval_seconds = 60"
                    " WHERE id = ANY(%s::uuid[])",
                    (widget_ids,),
                )
                row = conn.execute("SELECT now()").fetchone()
                assert row is not None
                since = row[0]
            started = time.perf_counter()
            make_celery(bench.settings).send_task(TASK_DUE_WIDGETS)
            within_beat = 0
            done, last = 0, 0.0
            while time.perf_counter() - started < 2 * BEAT_SECONDS:
                done, last = _refreshed(bench.dsn, widget_ids, since)
                if time.perf_counter() - started <= BEAT_SECONDS:
                    within_beat = done
                if done >= count:
                    break
                time.sleep(0.25)
            results.append(
                {
                    "workload": "materialize_due_widgets",
                    "attempt": attempt,
                    "widgets": count,
                    "sql_ms_each": round(baseline / count * 1000, 2),
                    "worker_concurrency": defaults.worker_concurrency,
                    "refreshed": done,
                    "refreshed_within_60s": within_beat,
                    "seconds_to_last_refresh": round(last, 2),
                    "seconds_to_all": round(last, 2) if done >= count else None,
                    # The rate the worker sustained while it had work.
                    "widgets_per_minute": round(done / last * 60) if last else 0,
                    "baseline": "the same statements back to back on one psycopg connection",
                    "baseline_seconds": round(baseline, 2),
                    "ratio": round(last / baseline, 2),
                }
            )
    finally:
        worker.stop()
    return results
