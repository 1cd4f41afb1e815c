"""Dashboards, widgets and frames for the export renderer's tests: a realistic hospital dashboard
with every widget type, and small builders for one-off widgets."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

from dashboard.v1 import common_pb2, dashboard_pb2, export_pb2, widget_pb2
from server.exports.render import PageRenderer, PageSpec, RenderedWidget, WidgetContent
from server.queries.frame import build_frame

GENERATED_AT = dt.datetime(2026, 3, 14, 9, 26, 53, tzinfo=dt.UTC)


def frame_of(columns: Sequence[tuple[str, str, Sequence[object]]], truncated: bool = False) -> common_pb2.DataFrame:
    """A frame from (name, PostgreSQL type name, values) columns of equal length."""
    rows = list(zip(*(values for _, _, values in columns), strict=True)) if columns else []
    return build_frame([(name, 0, type_name) for name, type_name, _ in columns], rows, truncated)


def masked(frame: common_pb2.DataFrame, name: str, texts: Sequence[str]) -> common_pb2.DataFrame:
    """The frame with column `name` replaced by masked text, as server.queries.masking leaves it."""
    out = common_pb2.DataFrame()
    out.CopyFrom(frame)
    for column in out.columns:
        if column.name == name:
            column.type = common_pb2.COLUMN_TYPE_STRING
            column.masked = True
            column.string_values.values[:] = list(texts)
    return out


def widget(
    title: str, x: int, y: int, w: int, h: int, widget_id: str | None = None, description: str = "", **config: object
) -> widget_pb2.Widget:
    """A widget at (x, y, w, h) with one config member, e.g. kpi=widget_pb2.KpiConfig(...)."""
    (kind, value), *rest = config.items()
    assert not rest, "one config member"
    result = widget_pb2.Widget(
        id=widget_id or f"w-{x}-{y}",
        title=title,
        description=description,
        position=widget_pb2.GridPosition(x=x, y=y, width=w, height=h),
    )
    getattr(result, kind).CopyFrom(value)
    return result


def dashboard_of(title: str, widgets: Sequence[widget_pb2.Widget], description: str = "") -> dashboard_pb2.Dashboard:
    board = dashboard_pb2.Dashboard(
        id="d-1",
        title=title,
        description=description,
        version=7,
        filters=[
            dashboard_pb2.DashboardFilter(name="region", label="Region"),
            dashboard_pb2.DashboardFilter(name="period", label="Period"),
        ],
    )
    board.widgets.extend(widgets)
    return board


def render(
    board: dashboard_pb2.Dashboard,
    contents: Sequence[WidgetContent],
    export_format: int = export_pb2.EXPORT_FORMAT_PDF,
    options: export_pb2.ExportOptions | None = None,
    filters: Mapping[str, common_pb2.ParameterValue] | None = None,
) -> tuple[str, list[RenderedWidget]]:
    renderer = PageRenderer(
        PageSpec(
            dashboard=board,
            version=board.version,
            filters=filters if filters is not None else {},
            generated_at=GENERATED_AT,
            format=export_format,
            options=options or export_pb2.ExportOptions(),
        )
    )
    rendered = [renderer.widget(content) for content in contents]
    return renderer.document(rendered), rendered


# ---------------------------------------------------------------------------------------------
# The sample hospital dashboard

DAYS = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(14)]
WARDS = ["Cardiology", "Oncology", "Pädiatrie"]
FILTERS = {
    "region": common_pb2.ParameterValue(string_value="Île-de-France"),
    "period": common_pb2.ParameterValue(
        date_range_value=common_pb2.DateRange(
            start={"year": 2026, "month": 3, "day": 1}, end={"year": 2026, "month": 3, "day": 14}
        )
    ),
}


def sample_widgets() -> list[tuple[widget_pb2.Widget, common_pb2.DataFrame | None, str | None]]:
    pct = widget_pb2.NumberFormat(decimals=1, suffix="%")
    money = widget_pb2.NumberFormat(prefix="$", thousands_separator=True)
    admissions = [
        (day, ward, 20 + (i * 7 + j * 11) % 17 + j * 5) for i, day in enumerate(DAYS) for j, ward in enumerate(WARDS)
    ]
    heat = [
        (day, hour, round(40 + 30 * math.sin(hour / 3.8) + 8 * d, 1))
        for d, day in enumerate(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
        for hour in range(0, 24, 2)
    ]
    clinics = [
        ("Paris Nord", 48.90, 2.35, 412),
        ("Lyon Centre", 45.76, 4.84, 260),
        ("Marseille", 43.30, 5.37, 318),
        ("Bordeaux", 44.84, -0.58, 150),
        ("Lille", 50.63, 3.06, 190),
        ("Strasbourg", 48.57, 7.75, 120),
        ("Nantes", 47.22, -1.55, 135),
    ]
    patients = frame_of(
        [
            ("mrn", "text", [f"MRN-{10_000 + i}" for i in range(8)]),
            ("name", "text", ["Zoë Martin", "李小龙", "محمد علي", "José Núñez", "Åsa Berg", "דוד לוי", "Chloé", "Ola"]),
            ("ward", "text", [WARDS[i % 3] for i in range(8)]),
            ("los_days", "numeric", [Decimal(f"{2 + i * 0.75:.2f}") for i in range(8)]),
            ("charges", "float8", [1520.5 * (i + 1) for i in range(8)]),
        ]
    )
    patients = masked(patients, "name", ["[REDACTED]"] * 8)
    return [
        (
            widget(
                "Admissions today",
                0,
                0,
                3,
                2,
                kpi=widget_pb2.KpiConfig(value_column="today", comparison_column="yesterday"),
            ),
            frame_of([("today", "int8", [128]), ("yesterday", "int8", [117])]),
            None,
        ),
        (
            widget(
                "Bed occupancy",
                3,
                0,
                3,
                2,
                kpi=widget_pb2.KpiConfig(
                    value_column="occ",
                    format=pct,
                    thresholds=[
                        widget_pb2.Threshold(value=0, color="#16a34a"),
                        widget_pb2.Threshold(value=85, color="#dc2626"),
                    ],
                ),
            ),
            frame_of([("occ", "float8", [91.26])]),
            None,
        ),
        (
            widget("Average length of stay", 6, 0, 3, 2, kpi=widget_pb2.KpiConfig(value_column="alos")),
            frame_of([("alos", "numeric", [Decimal("4.3500")])]),
            None,
        ),
        (
            widget(
                "Revenue (month)",
                9,
                0,
                3,
                2,
                kpi=widget_pb2.KpiConfig(value_column="rev", format=money, comparison_column="prev"),
            ),
            frame_of([("rev", "numeric", [Decimal("1284730.40")]), ("prev", "numeric", [Decimal("1310200.00")])]),
            None,
        ),
        (
            widget(
                "Daily admissions by ward",
                0,
                2,
                8,
                4,
                description="Patients admitted per day, all entry points",
                line=widget_pb2.LineChartConfig(
                    x_column="day", y_columns=["admissions"], series_column="ward", show_points=True
                ),
            ),
            frame_of(
                [
                    ("day", "date", [a[0] for a in admissions]),
                    ("ward", "text", [a[1] for a in admissions]),
                    ("admissions", "int8", [a[2] for a in admissions]),
                ]
            ),
            None,
        ),
        (
            widget(
                "Beds by department",
                8,
                2,
                4,
                4,
                bar=widget_pb2.BarChartConfig(
                    category_column="department",
                    value_columns=["beds"],
                    orientation=widget_pb2.BAR_ORIENTATION_HORIZONTAL,
                ),
            ),
            frame_of(
                [
                    ("department", "text", ["Emergency", "Surgery", "Maternity", "ICU", "Geriatrics"]),
                    ("beds", "int8", [42, 64, 28, 18, 51]),
                ]
            ),
            None,
        ),
        (
            widget(
                "Bed-days by ward (stacked)",
                0,
                6,
                6,
                4,
                area=widget_pb2.AreaChartConfig(
                    x_column="day", y_columns=["admissions"], series_column="ward", stacked=True
                ),
            ),
            frame_of(
                [
                    ("day", "date", [a[0] for a in admissions]),
                    ("ward", "text", [a[1] for a in admissions]),
                    ("admissions", "int8", [a[2] for a in admissions]),
                ]
            ),
            None,
        ),
        (
            widget(
                "Emergency arrivals by hour",
                6,
                6,
                6,
                4,
                heatmap=widget_pb2.HeatmapConfig(
                    x_column="hour", y_column="weekday", value_column="arrivals", color_scheme="oranges"
                ),
            ),
            frame_of(
                [
                    ("weekday", "text", [h[0] for h in heat]),
                    ("hour", "int4", [h[1] for h in heat]),
                    ("arrivals", "float8", [h[2] for h in heat]),
                ]
            ),
            None,
        ),
        (
            widget(
                "Clinics by patient volume",
                0,
                10,
                6,
                5,
                map=widget_pb2.MapConfig(
                    latitude_column="lat", longitude_column="lon", value_column="patients", label_column="clinic"
                ),
            ),
            frame_of(
                [
                    ("clinic", "text", [c[0] for c in clinics]),
                    ("lat", "float8", [c[1] for c in clinics]),
                    ("lon", "float8", [c[2] for c in clinics]),
                    ("patients", "int8", [c[3] for c in clinics]),
                ]
            ),
            None,
        ),
        (
            widget(
                "Current inpatients",
                6,
                10,
                6,
                5,
                table=widget_pb2.TableConfig(
                    columns=[
                        widget_pb2.TableColumn(column="mrn", label="MRN"),
                        widget_pb2.TableColumn(column="name", label="Patient"),
                        widget_pb2.TableColumn(column="ward", label="Ward"),
                        widget_pb2.TableColumn(column="los_days", label="Stay (days)"),
                        widget_pb2.TableColumn(
                            column="charges",
                            label="Charges",
                            format=widget_pb2.NumberFormat(decimals=2, prefix="€", thousands_separator=True),
                        ),
                    ],
                    sort_column="los_days",
                    sort_descending=True,
                ),
            ),
            patients,
            None,
        ),
        (
            widget("Readmissions (30 days)", 0, 15, 4, 2, kpi=widget_pb2.KpiConfig(value_column="n")),
            None,
            "query timed out after 30 s (statement_timeout)",
        ),
        (
            widget("Transfers pending", 4, 15, 4, 2, kpi=widget_pb2.KpiConfig(value_column="n")),
            frame_of([("n", "int8", [])]),
            None,
        ),
        (
            widget("病床稼働率 · معدل الإشغال", 8, 15, 4, 2, kpi=widget_pb2.KpiConfig(value_column="v")),
            frame_of([("v", "float8", [0.1 + 0.2])]),
            None,
        ),
    ]


def sample_dashboard() -> tuple[dashboard_pb2.Dashboard, list[WidgetContent]]:
    items = sample_widgets()
    board = dashboard_of(
        "Hospital operations — Île-de-France",
        [w for w, _, _ in items],
        description="Weekly operational overview for the regional board.\nFigures are provisional until month end.",
    )
    return board, [WidgetContent(w, frame=f, error=e) for w, f, e in items]
