"""What export tests and the export benchmark build and read, through the public API: dashboards
of every widget type, exports followed to the end, downloads verified by the caller."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, export_pb2_grpc, query_pb2_grpc, share_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from server.db.migrate import sync_url

__all__ = ["ExportKit", "Stubs", "stubs_for"]

TERMINAL = {c.JOB_STATE_SUCCEEDED, c.JOB_STATE_FAILED, c.JOB_STATE_CANCELLED}
# About 1-4 s (idle or loaded 2-core machine): long enough to watch, cancel or kill a worker mid-export.
SLOW_SQL = "SELECT count(*) AS n FROM generate_series(1, 5000) a CROSS JOIN generate_series(1, 2000) b"


@dataclass(frozen=True)
class Stubs:
    dashboards: Any
    widgets: Any
    queries: Any
    exports: Any
    shares: Any


def stubs_for(channel: grpc.Channel) -> Stubs:
    return Stubs(
        dashboard_pb2_grpc.DashboardServiceStub(channel),
        widget_pb2_grpc.WidgetServiceStub(channel),
        query_pb2_grpc.QueryServiceStub(channel),
        export_pb2_grpc.ExportServiceStub(channel),
        share_pb2_grpc.ShareServiceStub(channel),
    )


def _position(x: int, y: int, width: int, height: int) -> w.GridPosition:
    return w.GridPosition(x=x, y=y, width=width, height=height)


@dataclass
class ExportKit:
    stubs: Stubs
    md: Any
    facility: str

    # --- building ----------------------------------------------------------------------------

    def query(self, sql: str, **fields: Any) -> q.Query:
        query = q.Query(facility_id=self.facility, name=f"q {uuid.uuid4().hex[:8]}", sql=sql, **fields)
        return self.stubs.queries.CreateQuery(q.CreateQueryRequest(query=query), metadata=self.md)

    def board(
        self,
        title: str,
        *widgets: tuple[str, str, w.GridPosition, dict[str, Any]],
        filters: tuple[d.DashboardFilter, ...] = (),
    ) -> tuple[Any, list[Any]]:
        """A published dashboard with the given widgets: (title, sql, position, config); a config
        may carry `query_fields` (for the query) and `binding` (QueryBinding fields)."""
        board = self.stubs.dashboards.CreateDashboard(
            d.CreateDashboardRequest(
                dashboard=d.Dashboard(
                    facility_id=self.facility, title=title, description="Generated for a test.", filters=filters
                )
            ),
            metadata=self.md,
        )
        created = []
        for widget_title, sql, position, config in widgets:
            query = self.query(sql, **config.pop("query_fields", {}))
            widget = w.Widget(
                dashboard_id=board.id,
                title=widget_title,
                position=position,
                query=w.QueryBinding(query_id=query.id, **config.pop("binding", {})),
                **config,
            )
            created.append(
                self.stubs.widgets.CreateWidget(w.CreateWidgetRequest(widget=widget), metadata=self.md, timeout=10)
            )
        board = self.stubs.dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=self.md)
        return board, created

    def report_board(self, extra_kpis: int = 0) -> tuple[Any, list[Any]]:
        """All seven widget types (eight widgets), plus `extra_kpis` KPIs below them."""
        series = "FROM generate_series(1, 12) i"
        widgets: list[tuple[str, str, w.GridPosition, dict[str, Any]]] = [
            ("Revenue total", "SELECT 1234.50::numeric AS revenue", _position(0, 0, 3, 2),
             {"kpi": w.KpiConfig(value_column="revenue")}),
            ("Visits today", "SELECT 42 AS visits", _position(3, 0, 3, 2), {"kpi": w.KpiConfig(value_column="visits")}),
            ("Admissions trend", f"SELECT i AS month, (20 + 3 * i) AS admissions {series}", _position(6, 0, 6, 4),
             {"line": w.LineChartConfig(x_column="month", y_columns=["admissions"])}),
            ("Occupancy area", f"SELECT i AS month, (50 + i) AS occupied, (30 - i) AS free {series}",
             _position(0, 2, 6, 4),
             {"area": w.AreaChartConfig(x_column="month", y_columns=["occupied", "free"], stacked=True)}),
            ("Cases by ward", "SELECT ward, n FROM (VALUES ('North', 12), ('South', 30), ('East', 21)) t(ward, n)",
             _position(6, 4, 6, 4), {"bar": w.BarChartConfig(category_column="ward", value_columns=["n"])}),
            ("Results table", "SELECT 'row-' || lpad(i::text, 4, '0') AS identifier, i * 3 AS amount "
             "FROM generate_series(1, 8) i", _position(0, 6, 6, 4),
             {"table": w.TableConfig(columns=[w.TableColumn(column="identifier", label="Identifier"),
                                              w.TableColumn(column="amount", label="Amount")])}),
            ("Load heatmap", "SELECT h AS hour, d AS day, (h * d) % 7 AS load "
             "FROM generate_series(0, 5) h, generate_series(1, 5) d", _position(6, 8, 6, 4),
             {"heatmap": w.HeatmapConfig(x_column="hour", y_column="day", value_column="load")}),
            ("Clinics map", "SELECT * FROM (VALUES (51.5, -0.12, 10, 'London'), (48.85, 2.35, 7, 'Paris'), "
             "(52.52, 13.4, 4, 'Berlin')) t(lat, lon, patients, city)", _position(0, 10, 6, 4),
             {"map": w.MapConfig(latitude_column="lat", longitude_column="lon", value_column="patients",
                                 label_column="city")}),
        ]  # fmt: skip
        for i in range(extra_kpis):
            position = _position(6 + 3 * (i % 2), 12 + 2 * (i // 2), 3, 2)
            config: dict[str, Any] = {"kpi": w.KpiConfig(value_column="v")}
            widgets.append((f"Extra{i + 1:02d} metric", f"SELECT {5000 + i} AS v", position, config))
        return self.board("Export report", *widgets)

    def small_board(self, *, title: str = "Small board", kpi_title: str = "Small KPI", slow: bool = False) -> Any:
        widgets: list[tuple[str, str, w.GridPosition, dict[str, Any]]] = [
            (kpi_title, "SELECT 7 AS n", _position(0, 0, 4, 2), {"kpi": w.KpiConfig(value_column="n")})
        ]
        if slow:
            options = q.QueryOptions()
            options.timeout.FromSeconds(60)
            slow_config: dict[str, Any] = {"table": w.TableConfig(), "query_fields": {"options": options}}
            widgets.append(("Slow table", SLOW_SQL, _position(4, 0, 8, 3), slow_config))
        board, _ = self.board(title, *widgets)
        return board

    def big_board(self, *, kpis: int, table_rows: int) -> tuple[Any, list[Any]]:
        widgets: list[tuple[str, str, w.GridPosition, dict[str, Any]]] = [
            (f"Kpi{i:02d}", f"SELECT {100000 + i} AS v", _position(3 * (i % 4), 2 * (i // 4), 3, 2),
             {"kpi": w.KpiConfig(value_column="v")})
            for i in range(kpis)
        ]  # fmt: skip
        y = 2 * ((kpis + 3) // 4)
        widgets.append(
            ("Ledger", f"SELECT 'row-' || lpad(i::text, 4, '0') AS identifier, i * 7 AS amount "
             f"FROM generate_series(1, {table_rows}) i ORDER BY i", _position(0, y, 12, 8),
             {"table": w.TableConfig(columns=[w.TableColumn(column="identifier", label="Identifier"),
                                              w.TableColumn(column="amount", label="Amount")])})
        )  # fmt: skip
        return self.board("Big board", *widgets)

    def phi_board(self) -> Any:
        sensitive = [q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_REDACT)]
        board, _ = self.board(
            "Patients",
            ("Patient list", "SELECT 'Ada Lovelace' AS patient_name, 3 AS visits", _position(0, 0, 12, 3),
             {"table": w.TableConfig(), "query_fields": {"sensitive_columns": sensitive}}),
        )  # fmt: skip
        return board

    # --- exporting ---------------------------------------------------------------------------

    def create(
        self,
        dashboard_id: str,
        fmt: int,
        options: e.ExportOptions | None = None,
        *,
        md: Any = None,
        **fields: Any,
    ) -> Any:
        request = e.CreateExportRequest(dashboard_id=dashboard_id, format=fmt, **fields)
        if options is not None:
            request.options.CopyFrom(options)
        return self.stubs.exports.CreateExport(request, metadata=md or self.md, timeout=30)

    def watch(self, export_id: str, *, md: Any = None, timeout: float = 120) -> tuple[list[Any], list[Any]]:
        jobs: list[Any] = []
        beats: list[Any] = []
        stream = self.stubs.exports.WatchExport(
            e.WatchExportRequest(id=export_id), metadata=md or self.md, timeout=timeout
        )
        for event in stream:
            (jobs if event.HasField("export") else beats).append(
                event.export if event.HasField("export") else event.heartbeat
            )
        assert jobs and jobs[-1].state in TERMINAL, jobs[-1:] or "no event"
        return jobs, beats

    def wait(self, export_id: str, *, md: Any = None, timeout: float = 120) -> Any:
        return self.watch(export_id, md=md, timeout=timeout)[0][-1]

    def download(self, export_id: str, *, md: Any = None, chunk_size: int = 0, offset: int = 0) -> tuple[Any, bytes]:
        parts = list(
            self.stubs.exports.DownloadExport(
                e.DownloadExportRequest(id=export_id, chunk_size=chunk_size, offset=offset),
                metadata=md or self.md,
                timeout=60,
            )
        )
        assert parts and parts[0].HasField("file"), "the first message is the file's metadata"
        assert all(part.HasField("chunk") for part in parts[1:])
        if chunk_size:
            assert all(len(part.chunk) <= chunk_size for part in parts[1:])
        return parts[0].file, b"".join(part.chunk for part in parts[1:])

    def list(self, dashboard_id: str, *, md: Any = None) -> list[Any]:
        answer = self.stubs.exports.ListExports(
            e.ListExportsRequest(dashboard_id=dashboard_id, page_size=1000), metadata=md or self.md
        )
        return list(answer.exports)

    def value_text(self, widget: Any) -> str:
        """The KPI's value as GetWidgetData returns it."""
        data = self.stubs.widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=self.md)
        column = next(col for col in data.frame.columns if col.name == widget.kpi.value_column)
        values = getattr(column, column.WhichOneof("values")).values
        return str(values[0])

    def audit_events(self, auth: Any, resource_id: str, timeout: float = 10) -> list[Any]:
        admin = auth("auditor", "admin", self.facility)
        deadline = time.monotonic() + timeout
        while True:
            answer = self.stubs.shares.ListAuditEvents(
                s.ListAuditEventsRequest(resource_id=resource_id, facility_id=self.facility), metadata=admin
            )
            found = [event for event in answer.events if event.method == "tessera.export.render"]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    # --- out of band ---------------------------------------------------------------------------

    @staticmethod
    def wait_for_log(worker: Any, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in worker.log:
            assert time.monotonic() < deadline, f"{text!r} not in the worker's log"
            time.sleep(0.1)

    @staticmethod
    def expire(settings: Settings, export_id: str) -> None:
        with psycopg.connect(sync_url(settings.database_url).replace("+psycopg", "")) as conn:
            conn.execute("UPDATE export_jobs SET expire_at = now() - interval '1 minute' WHERE id = %s", (export_id,))

    @staticmethod
    def run_expiry(settings: Settings, timeout: float = 30) -> None:
        from server.broker.app import make_celery
        from server.broker.names import TASK_EXPIRE_EXPORTS

        make_celery(settings).send_task(TASK_EXPIRE_EXPORTS, queue="maintenance")
        deadline = time.monotonic() + timeout
        with psycopg.connect(sync_url(settings.database_url).replace("+psycopg", "")) as conn:
            while True:
                left = conn.execute(
                    "SELECT count(*) FROM export_jobs WHERE storage_url IS NOT NULL AND expire_at < now()"
                ).fetchone()
                if left is not None and left[0] == 0:
                    return
                assert time.monotonic() < deadline, "expired files were not removed"
                time.sleep(0.2)
