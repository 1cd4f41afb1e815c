"""Builds what integration tests read (queries, dashboards, widgets), through the public API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import duration_pb2

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w


@dataclass
class Kit:
    """Creates what the tests read, through the public API."""

    queries: Any
    dashboards: Any
    widgets: Any
    md: Any
    facility: str
    _y: int = 0

    def query(self, sql: str, *params: q.ParameterSpec, **fields: Any) -> q.Query:
        query = q.Query(
            facility_id=self.facility, name=f"q {uuid.uuid4().hex[:6]}", sql=sql, parameters=params, **fields
        )
        return self.queries.CreateQuery(q.CreateQueryRequest(query=query), metadata=self.md)

    def board(self, *filters: d.DashboardFilter, **fields: Any) -> d.Dashboard:
        board = d.Dashboard(facility_id=self.facility, title="Board", filters=filters, **fields)
        return self.dashboards.CreateDashboard(d.CreateDashboardRequest(dashboard=board), metadata=self.md)

    def widget(self, board: d.Dashboard, query: q.Query | None, *, refresh: int = 0, **binding: Any) -> w.Widget:
        self._y += 2
        widget = w.Widget(
            dashboard_id=board.id,
            title="w",
            position=w.GridPosition(x=0, y=self._y, width=4, height=2),
            table=w.TableConfig(),
        )
        if query is not None:
            widget.query.CopyFrom(w.QueryBinding(query_id=query.id, **binding))
        if refresh:
            widget.refresh_interval.CopyFrom(duration_pb2.Duration(seconds=refresh))
        return self.widgets.CreateWidget(w.CreateWidgetRequest(widget=widget), metadata=self.md)

    def materialize(self, board: d.Dashboard, **request: Any) -> w.MaterializationJob:
        return self.widgets.MaterializeDashboard(
            w.MaterializeDashboardRequest(dashboard_id=board.id, **request), metadata=self.md, timeout=10
        )

    def data(self, widget_id: str, md: Any = None, **request: Any) -> w.WidgetData:
        return self.widgets.GetWidgetData(
            w.GetWidgetDataRequest(widget_id=widget_id, **request), metadata=md or self.md, timeout=30
        )


def board_with_queries(
    queries: Any, dashboards: Any, widgets: Any, md: Any, facility: str, *specs: tuple[str, Sequence[str]]
) -> tuple[d.Dashboard, list[tuple[q.Query, w.Widget]]]:
    """A dashboard in `facility` with one table widget per (sql, sensitive column names), each on
    a query of its own: what the audit tests read PHI through."""
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="phi reads")), metadata=md
    )
    made = []
    for y, (sql, sensitive) in enumerate(specs):
        query = queries.CreateQuery(
            q.CreateQueryRequest(
                query=q.Query(
                    facility_id=facility,
                    name=f"phi {uuid.uuid4().hex[:6]}",
                    sql=sql,
                    sensitive_columns=[q.SensitiveColumn(column=c) for c in sensitive],
                )
            ),
            metadata=md,
        )
        widget = widgets.CreateWidget(
            w.CreateWidgetRequest(
                widget=w.Widget(
                    dashboard_id=board.id,
                    title="w",
                    position=w.GridPosition(x=0, y=2 * y, width=4, height=2),
                    table=w.TableConfig(),
                    query=w.QueryBinding(query_id=query.id),
                )
            ),
            metadata=md,
        )
        made.append((query, widget))
    return board, made
