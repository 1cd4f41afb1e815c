"""One formatter for every place a value is shown: the export's table and KPI, the chart axes and
the Python client's table output print the same text for the same value and format."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from dashboard.v1 import widget_pb2
from server.exports.render import charts
from server.exports.render.map_layout import MapPoint, fit_mercator, place_labels
from server.exports.render.widgets import kpi_body, table_body
from tessera_client.formats import column_display, number_text
from tessera_client.values import table
from tests.unit.export_render_dom import parse
from tests.unit.export_render_samples import frame_of, widget

V = widget_pb2.ValueFormat
MOMENT = dt.datetime(2026, 12, 4, 16, 29, 15, 314175, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "value_format", "expected"),
    [
        ("1234.5", V(style=V.STYLE_NUMBER, decimals=2, thousands_separator=True, suffix=" beds"), "1,234.50 beds"),
        ("0.1255", V(style=V.STYLE_PERCENT, decimals=1), "12.6%"),
        ("-1234.5", V(style=V.STYLE_CURRENCY, currency_code="USD"), "-$1,234.50"),
        ("12", V(style=V.STYLE_CURRENCY, currency_code="CHF", decimals=0), "CHF 12"),
        ("93784", V(style=V.STYLE_DURATION), "1d 2h"),
        ("2.5", V(style=V.STYLE_DURATION, duration_unit=V.DURATION_UNIT_HOURS), "2h 30m"),
        ("-0.001", V(style=V.STYLE_NUMBER, decimals=2), "0.00"),
    ],
)
def test_numbers(value: str, value_format: widget_pb2.ValueFormat, expected: str) -> None:
    assert number_text(Decimal(value), value_format) == expected


def test_timestamps_never_show_microseconds_unless_asked() -> None:
    column = frame_of([("at", "timestamptz", [MOMENT])]).columns[0]
    assert column_display(column, None) == ["2026-12-04 16:29:15 UTC"]
    assert column_display(column, None, "Europe/Paris") == ["2026-12-04 17:29:15 CET"]
    paris = V(style=V.STYLE_DATE_TIME, date_pattern="%d %b %Y %H:%M", time_zone="America/New_York")
    assert column_display(column, paris, "Europe/Paris") == ["04 Dec 2026 11:29"]
    assert column_display(column, V(style=V.STYLE_DATE_TIME, date_pattern="%H:%M:%S.%f")) == ["16:29:15.314175"]


def test_export_table_kpi_and_client_table_print_the_same_text() -> None:
    frame = frame_of(
        [
            ("at", "timestamptz", [MOMENT]),
            ("cost", "numeric", [Decimal("1234.5")]),
            ("was", "numeric", [Decimal("1000")]),
        ]
    )
    when = V(style=V.STYLE_DATE_TIME, time_zone="Asia/Tokyo")
    money = V(style=V.STYLE_CURRENCY, currency_code="EUR")
    config = widget_pb2.TableConfig(
        columns=[
            widget_pb2.TableColumn(column="at", value_format=when),
            widget_pb2.TableColumn(column="cost", value_format=money),
        ]
    )
    cells = [td.text for td in parse(table_body(config, frame, 600).html).find_all("td")]
    _, rows = table(frame, widget("t", 0, 0, 4, 2, table=config))
    assert cells == rows[0][:2] == ["2026-12-05 01:29 JST", "€1,234.50"]
    kpi = widget_pb2.KpiConfig(value_column="cost", comparison_column="was", value_format=money)
    shown = parse(kpi_body(kpi, frame, 300, 120).html).text
    assert "€1,234.50" in shown and "+€234.50" in shown and "vs €1,000.00" in shown
    _, kpi_rows = table(frame, widget("k", 0, 0, 4, 2, kpi=kpi))
    assert kpi_rows[0][1] == "€1,234.50"


def test_axes_carry_the_format_and_categories_keep_their_order() -> None:
    frame = frame_of([("unit", "text", ["Wed", "Mon", "Tue"]), ("n", "float8", [0.5, 0.25, 0.125])])
    config = widget_pb2.BarChartConfig(
        category_column="unit", value_columns=["n"], value_format=V(style=V.STYLE_PERCENT), category_order=["Mon"]
    )
    spec = charts.bar_spec(config, frame, 400, 200)
    assert spec["encoding"]["x"]["sort"] == ["Mon", "Wed", "Tue"]
    assert ".0%" in spec["encoding"]["y"]["axis"]["labelExpr"]
    svg = charts.render_svg(spec, "t")
    assert "50%" in svg and "Mon" in svg
    json.dumps(spec)  # the spec stays plain JSON


def test_map_labels_never_overlap_and_crowded_ones_are_dropped() -> None:
    points = [MapPoint(-2.24 + 0.0001 * i, 53.48, 5.0, f"North General {i}", float(10 - i)) for i in range(6)]
    projection = fit_mercator([(p.lon, p.lat) for p in points], 300, 200, 20)
    spots = place_labels(points, projection, 300, 200)
    assert 0 < len(spots) < len(points)  # the points nearly coincide: not every label fits
    boxes = []
    for spot in spots:
        x, y = projection.project(spot.lon, spot.lat)
        boxes.append((x, y - 6, x + 6.2 * len(points[spot.index].label), y + 6))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
