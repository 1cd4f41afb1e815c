"""Value formats through the API: stored and returned as given; a bad one (unknown IANA zone,
CURRENCY without a code, a date pattern with an unknown directive) is INVALID_ARGUMENT naming the
field, on widgets and on the dashboard's default time zone."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import widget_pb2 as w
from tests.integration.test_widgets import make_board, refused, widget_spec

Code = grpc.StatusCode
V = w.ValueFormat


@pytest.fixture
def editor(auth: Any, facility: str) -> Any:
    return auth("editor-formats", "editor", facility)


def _table(board_id: str, value_format: w.ValueFormat) -> w.Widget:
    spec = widget_spec(board_id, "kpi")
    spec.ClearField("kpi")
    spec.table.CopyFrom(w.TableConfig(columns=[w.TableColumn(column="at", value_format=value_format)]))
    return spec


def test_a_widget_keeps_its_formats(widgets: Any, dashboards: Any, editor: Any, facility: str) -> None:
    board = make_board(dashboards, editor, facility)
    given = V(style=V.STYLE_DATE_TIME, date_pattern="%d %b %Y %H:%M", time_zone="Europe/Paris")
    created = widgets.CreateWidget(w.CreateWidgetRequest(widget=_table(board.id, given)), metadata=editor)
    assert widgets.GetWidget(w.GetWidgetRequest(id=created.id), metadata=editor).table.columns[0].value_format == given


@pytest.mark.parametrize(
    ("value_format", "field"),
    [
        (V(style=V.STYLE_DATE_TIME, time_zone="Mars/Olympus_Mons"), "widget.table.columns[0].value_format.time_zone"),
        (V(style=V.STYLE_CURRENCY), "widget.table.columns[0].value_format.currency_code"),
        (V(style=V.STYLE_DATE_TIME, date_pattern="%Q"), "widget.table.columns[0].value_format.date_pattern"),
    ],
)
def test_a_bad_format_is_invalid_naming_the_field(
    widgets: Any, dashboards: Any, editor: Any, facility: str, value_format: w.ValueFormat, field: str
) -> None:
    board = make_board(dashboards, editor, facility)
    _, reasons = refused(
        lambda: widgets.CreateWidget(w.CreateWidgetRequest(widget=_table(board.id, value_format)), metadata=editor),
        Code.INVALID_ARGUMENT,
    )
    assert field in reasons


def test_the_dashboard_time_zone_is_kept_and_checked(dashboards: Any, editor: Any, facility: str) -> None:
    board = make_board(dashboards, editor, facility, layout=d.GridLayout(time_zone="America/New_York"))
    assert dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=editor).layout.time_zone == (
        "America/New_York"
    )
    _, reasons = refused(
        lambda: make_board(dashboards, editor, facility, layout=d.GridLayout(time_zone="Nowhere/Atlantis")),
        Code.INVALID_ARGUMENT,
    )
    assert "dashboard.layout.time_zone" in reasons
