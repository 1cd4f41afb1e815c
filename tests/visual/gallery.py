"""The gallery: dashboards that exercise the export layout, with their data (no database).

- `hospital`: the sample dashboard of every widget type (tests/unit/export_render_samples).
- `edges`: empty, null-heavy, one-row and 500-row data; long titles and category labels; unicode
  and right-to-left text; value formats of every style.
- `thirty`: 30 widgets of every type and size on one dashboard.
- `sizes` (full run only): every chart type at 2x2, 4x3, 6x4 and 12x8.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from dashboard.v1 import common_pb2, dashboard_pb2, widget_pb2
from server.exports.render import WidgetContent
from tests.unit.export_render_samples import dashboard_of, frame_of, sample_dashboard, widget

__all__ = ["BOARDS", "FULL_BOARDS", "Board"]

V = widget_pb2.ValueFormat
Frame = common_pb2.DataFrame


@dataclass(frozen=True)
class Board:
    name: str
    build: Callable[[], tuple[dashboard_pb2.Dashboard, list[WidgetContent]]]


def _days(n: int) -> list[dt.date]:
    return [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(n)]


def _line(n: int, nulls: bool = False) -> Frame:
    values: list[object] = [round(50 + 30 * math.sin(i / 9) + (i % 7), 2) for i in range(n)]
    if nulls:
        values = [None if i % 3 else v for i, v in enumerate(values)]
    return frame_of([("day", "date", _days(n)), ("value", "float8", values)])


LONG_UNITS = [
    "Cardiothoracic surgery and transplant services",
    "Paediatric intensive care (level 3)",
    "Accident & emergency — minor injuries",
    "Maternity and neonatal unit",
    "Geriatric rehabilitation",
    "Oncology day unit",
]
RTL = ["قسم الطوارئ", "יחידת טיפול נמרץ", "心臓血管外科", "Ünïcödé wärd", "ICU"]


def _bar(labels: list[str], series: list[str] | None = None) -> Frame:
    rows = [
        (label, s, 10 + (i * 13 + j * 7) % 40) for i, label in enumerate(labels) for j, s in enumerate(series or ["-"])
    ]
    columns: list[tuple[str, str, list[object]]] = [("unit", "text", [r[0] for r in rows])]
    if series:
        columns.append(("year", "text", [r[1] for r in rows]))
    columns.append(("n", "int8", [r[2] for r in rows]))
    return frame_of(columns)


def _heat() -> Frame:
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    cells = [(d, h, (i * 5 + h * 3) % 17) for i, d in enumerate(days) for h in range(24)]
    return frame_of(
        [
            ("weekday", "text", [c[0] for c in cells]),
            ("hour", "int4", [c[1] for c in cells]),
            ("n", "int8", [c[2] for c in cells]),
        ]
    )


def _sites(n: int) -> Frame:
    names = [f"Site {chr(65 + i % 26)}{i // 26 or ''} General Hospital" for i in range(n)]
    lats = [51.5 + 0.02 * math.sin(i) + 0.01 * (i % 5) for i in range(n)]
    lons = [-0.12 + 0.03 * math.cos(i * 1.7) for i in range(n)]
    return frame_of(
        [
            ("site", "text", names),
            ("lat", "float8", lats),
            ("lon", "float8", lons),
            ("beds", "int8", [40 + (i * 37) % 400 for i in range(n)]),
        ]
    )


def _stamps(n: int) -> Frame:
    start = dt.datetime(2026, 12, 4, 16, 29, 15, 314175, tzinfo=dt.UTC)
    return frame_of(
        [
            ("at", "timestamptz", [start - dt.timedelta(minutes=37 * i) for i in range(n)]),
            ("unit", "text", [(LONG_UNITS + RTL)[i % 11] for i in range(n)]),
            ("cost", "numeric", [Decimal(f"{1234.5 + i * 97.13:.2f}") for i in range(n)]),
            ("share", "float8", [round(0.05 * (i % 20), 3) for i in range(n)]),
            ("stay_h", "float8", [3.5 + 11 * i for i in range(n)]),
        ]
    )


def _edges() -> tuple[dashboard_pb2.Dashboard, list[WidgetContent]]:
    empty = frame_of([("day", "date", []), ("value", "float8", [])])
    items: list[tuple[widget_pb2.Widget, Frame]] = [
        (
            widget(
                "Revenue this month, all sites and all payers combined, provisional",
                0,
                0,
                3,
                2,
                kpi=widget_pb2.KpiConfig(
                    value_column="cost",
                    comparison_column="cost",
                    value_format=V(style=V.STYLE_CURRENCY, currency_code="EUR", decimals=0),
                ),
            ),
            _stamps(1),
        ),
        (
            widget(
                "Occupancy",
                3,
                0,
                2,
                2,
                kpi=widget_pb2.KpiConfig(value_column="share", value_format=V(style=V.STYLE_PERCENT, decimals=1)),
            ),
            _stamps(3),
        ),
        (
            widget("Nothing yet", 5, 0, 3, 2, line=widget_pb2.LineChartConfig(x_column="day", y_columns=["value"])),
            empty,
        ),
        (
            widget(
                "One point",
                8,
                0,
                4,
                2,
                line=widget_pb2.LineChartConfig(x_column="day", y_columns=["value"], show_points=True),
            ),
            _line(1),
        ),
        (
            widget(
                "Mostly missing values (two in three are NULL)",
                0,
                2,
                6,
                3,
                line=widget_pb2.LineChartConfig(x_column="day", y_columns=["value"], show_points=True),
            ),
            _line(60, nulls=True),
        ),
        (
            widget(
                "500 days",
                6,
                2,
                6,
                3,
                area=widget_pb2.AreaChartConfig(
                    x_column="day", y_columns=["value"], y_format=V(style=V.STYLE_NUMBER, decimals=0, suffix=" pts")
                ),
            ),
            _line(500),
        ),
        (
            widget(
                "Admissions by unit with very long unit names that must not collide",
                0,
                5,
                6,
                4,
                bar=widget_pb2.BarChartConfig(category_column="unit", value_columns=["n"], series_column="year"),
            ),
            _bar(LONG_UNITS, ["2024", "2025", "2026 (provisional figures)"]),
        ),
        (
            widget(
                "وحدات · יחידות · 病棟",
                6,
                5,
                6,
                4,
                bar=widget_pb2.BarChartConfig(
                    category_column="unit",
                    value_columns=["n"],
                    orientation=widget_pb2.BAR_ORIENTATION_HORIZONTAL,
                    category_order=["ICU"],
                ),
            ),
            _bar(RTL),
        ),
        (
            widget(
                "Arrivals by hour (configured weekday order)",
                0,
                9,
                6,
                4,
                heatmap=widget_pb2.HeatmapConfig(
                    x_column="hour",
                    y_column="weekday",
                    value_column="n",
                    y_order=["Sun", "Mon"],
                ),
            ),
            _heat(),
        ),
        (
            widget(
                "Sites close together",
                6,
                9,
                6,
                4,
                map=widget_pb2.MapConfig(
                    latitude_column="lat", longitude_column="lon", value_column="beds", label_column="site"
                ),
            ),
            _sites(12),
        ),
        (
            widget(
                "Formatted table",
                0,
                13,
                12,
                4,
                table=widget_pb2.TableConfig(
                    columns=[
                        widget_pb2.TableColumn(
                            column="at",
                            label="When (Paris)",
                            value_format=V(
                                style=V.STYLE_DATE_TIME, date_pattern="%d %b %Y %H:%M", time_zone="Europe/Paris"
                            ),
                        ),
                        widget_pb2.TableColumn(column="unit", label="Unit"),
                        widget_pb2.TableColumn(
                            column="cost", value_format=V(style=V.STYLE_CURRENCY, currency_code="USD")
                        ),
                        widget_pb2.TableColumn(column="share", value_format=V(style=V.STYLE_PERCENT, decimals=1)),
                        widget_pb2.TableColumn(
                            column="stay_h",
                            label="Stay",
                            value_format=V(style=V.STYLE_DURATION, duration_unit=V.DURATION_UNIT_HOURS),
                        ),
                    ]
                ),
            ),
            _stamps(8),
        ),
        (
            widget(
                "Referrals by country (choropleth)",
                0,
                17,
                6,
                4,
                map=widget_pb2.MapConfig(
                    region_column="country", value_column="n", value_format=V(style=V.STYLE_NUMBER, suffix=" pts")
                ),
            ),
            frame_of(
                [
                    ("country", "text", ["United Kingdom", "250", "276", "Spain", "Italy", "724", "Nowhere"]),
                    ("n", "int8", [5, 7, 9, 3, 4, 3, 1]),
                ]
            ),
        ),
    ]
    board = dashboard_of("Edge cases: empty, NULLs, 1 and 500 rows, long and RTL labels", [w for w, _ in items])
    return board, [WidgetContent(w, frame=f) for w, f in items]


def _kinds(x: int, y: int, w: int, h: int, index: int) -> tuple[widget_pb2.Widget, Frame]:
    title = f"Widget {index + 1}"
    kind = index % 7
    if kind == 0:
        return widget(title, x, y, w, h, kpi=widget_pb2.KpiConfig(value_column="n")), _bar(["a"])
    if kind == 1:
        return widget(title, x, y, w, h, line=widget_pb2.LineChartConfig(x_column="day", y_columns=["value"])), _line(
            30
        )
    if kind == 2:
        config = widget_pb2.AreaChartConfig(x_column="unit", y_columns=["n"], series_column="year", stacked=True)
        return widget(title, x, y, w, h, area=config), _bar(["Q1", "Q2", "Q3", "Q4"], ["North", "South", "East"])
    if kind == 3:
        return widget(
            title, x, y, w, h, bar=widget_pb2.BarChartConfig(category_column="unit", value_columns=["n"])
        ), _bar(LONG_UNITS[:4])
    if kind == 4:
        config_h = widget_pb2.HeatmapConfig(x_column="hour", y_column="weekday", value_column="n")
        return widget(title, x, y, w, h, heatmap=config_h), _heat()
    if kind == 5:
        config_m = widget_pb2.MapConfig(latitude_column="lat", longitude_column="lon", label_column="site")
        return widget(title, x, y, w, h, map=config_m), _sites(5)
    return widget(title, x, y, w, h, table=widget_pb2.TableConfig()), _stamps(4)


def _thirty() -> tuple[dashboard_pb2.Dashboard, list[WidgetContent]]:
    items = []
    sizes = [3, 3, 2, 4, 4, 4, 6, 6, 3, 3, 3, 3]
    x = y = row_h = 0
    for index in range(30):
        w = sizes[index % len(sizes)]
        h = 2 if w <= 3 else 3
        if x + w > 12:
            x, y = 0, y + row_h
            row_h = 0
        items.append(_kinds(x, y, w, h, index))
        x += w
        row_h = max(row_h, h)
    board = dashboard_of("Thirty widgets", [w for w, _ in items])
    return board, [WidgetContent(w, frame=f) for w, f in items]


def _sizes() -> tuple[dashboard_pb2.Dashboard, list[WidgetContent]]:
    items = []
    y = 0
    for index in range(7):
        for w, h in ((2, 2), (4, 3), (6, 4), (12, 8)):
            item = _kinds(0, y, w, h, index)
            if item[0].HasField("map"):
                # Sized points with their key: the map's legend must give way on small cards too.
                item[0].map.value_column = "beds"
            items.append(
                (
                    widget(
                        f"{item[0].title} {w}x{h}",
                        0,
                        y,
                        w,
                        h,
                        **{str(item[0].WhichOneof("config")): getattr(item[0], str(item[0].WhichOneof("config")))},
                    ),
                    item[1],
                )
            )
            y += h
    board = dashboard_of("Every widget type at 2x2, 4x3, 6x4 and 12x8", [w for w, _ in items])
    return board, [WidgetContent(w, frame=f) for w, f in items]


BOARDS = [Board("hospital", sample_dashboard), Board("edges", _edges), Board("thirty", _thirty)]
FULL_BOARDS = [*BOARDS, Board("sizes", _sizes)]
