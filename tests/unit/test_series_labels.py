"""Series named at their ends when a small card has no room for a legend (issue 18)."""

from __future__ import annotations

import itertools
from typing import Any

from dashboard.v1 import widget_pb2
from server.exports.render.chart_layout import Room, area_clear_of_value_labels, value_label_px
from server.exports.render.charts import area_spec, bar_spec, clean_svg, line_spec, render_svg
from server.exports.render.series_labels import LABEL_LINES_APART, end_labels
from tests.unit.export_render_samples import frame_of

SERIES = ["North", "South", "East"]
QUARTERS = ["Q1", "Q2", "Q3", "Q4"]
VALUES = {"North": [10, 20, 30, 40], "South": [5, 5, 5, 5], "East": [1, 2, 3, 20]}
SMALL = (180.0, 130.0)  # a 2x2 card's chart box: no room for a legend
LARGE = (560.0, 320.0)


def _frame() -> Any:
    rows = [(q, s, VALUES[s][i]) for i, q in enumerate(QUARTERS) for s in SERIES]
    return frame_of(
        [
            ("unit", "text", [r[0] for r in rows]),
            ("region", "text", [r[1] for r in rows]),
            ("n", "int8", [r[2] for r in rows]),
        ]
    )


def _area(size: tuple[float, float], stacked: bool = True) -> dict[str, Any]:
    config = widget_pb2.AreaChartConfig(x_column="unit", y_columns=["n"], series_column="region", stacked=stacked)
    return area_spec(config, _frame(), *size)


def _line(size: tuple[float, float]) -> dict[str, Any]:
    config = widget_pb2.LineChartConfig(x_column="unit", y_columns=["n"], series_column="region")
    return line_spec(config, _frame(), *size)


def test_a_small_stacked_area_names_each_series_in_the_middle_of_its_band() -> None:
    spec = _area(SMALL)
    chart, labels = spec["layer"]
    assert chart["encoding"]["color"]["legend"] is None
    values = {v["s"]: v for v in labels["data"]["values"]}
    assert set(values) == set(SERIES)
    assert {v["x"] for v in values.values()} == {"Q4"}
    # Stacked from zero in series order: North 0-40, South 40-45, East 45-65; labels never
    # below their band's middle by more than the spreading needs.
    assert values["North"]["y"] == 20
    assert values["North"]["y"] < values["South"]["y"] < values["East"]["y"]
    assert labels["encoding"]["y"]["stack"] is None
    assert labels["mark"]["color"] == "#ffffff"


def test_the_stack_follows_the_series_order_not_the_alphabet() -> None:
    for spec in (_area(LARGE), _area(SMALL)["layer"][0]):
        assert spec["encoding"]["order"] == {"field": "o", "type": "quantitative"}
        ranks = {record["s"]: record["o"] for record in spec["data"]["values"]}
        assert ranks == {"North": 0, "South": 1, "East": 2}
    config = widget_pb2.BarChartConfig(
        category_column="unit", value_columns=["n"], series_column="region", stacked=True
    )
    assert "order" in bar_spec(config, _frame(), *LARGE)["encoding"]


def test_a_chart_with_its_legend_has_no_labels() -> None:
    spec = _area(LARGE)
    assert "layer" not in spec
    assert spec["encoding"]["color"]["legend"]


def test_line_labels_are_apart_by_a_line_of_text_and_carry_a_halo() -> None:
    spec = _line(SMALL)
    labels = spec["layer"][1]
    assert labels["mark"]["stroke"] == "#ffffff"
    assert labels["encoding"]["color"]["legend"] is None
    ys = sorted(v["y"] for v in labels["data"]["values"])
    # South (5) and East (20) at Q4 on a 0-40 axis about 100 px tall must be pushed apart.
    assert len(ys) == 3
    room = Room(*SMALL)
    per_px = 40 / 100
    assert all(b - a >= room.font_px * LABEL_LINES_APART * per_px * 0.9 for a, b in itertools.pairwise(ys))


def test_labels_are_drawn_as_text_with_the_halo_under_the_glyphs() -> None:
    svg = clean_svg(render_svg(_line(SMALL), "w1"), "w1")
    for name in ("North", "South", "East"):
        assert f">{name}</text>" in svg
    assert 'paint-order="stroke"' in svg


def test_no_labels_when_the_plot_cannot_hold_them_all() -> None:
    series = [f"s{i}" for i in range(30)]
    records: list[dict[str, object]] = [{"x": 1, "y": i, "s": s} for i, s in enumerate(series)]
    encoding = {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"}}
    assert end_labels(records, series, encoding, Room(*SMALL), (150.0, 100.0), stacked=False) is None


def test_one_series_needs_no_labels() -> None:
    records: list[dict[str, object]] = [{"x": 1, "y": 3, "s": "a"}]
    encoding = {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"}}
    assert end_labels(records, ["a"], encoding, Room(*SMALL), (150.0, 100.0), stacked=False) is None


def test_a_small_stacked_bar_chart_names_its_series_on_the_last_bar() -> None:
    config = widget_pb2.BarChartConfig(
        category_column="unit", value_columns=["n"], series_column="region", stacked=True
    )
    spec = bar_spec(config, _frame(), *SMALL)
    labels = spec["layer"][1]
    assert {v["x"] for v in labels["data"]["values"]} == {"Q4"}
    assert labels["mark"]["align"] == "center"


def test_vertical_bars_start_clear_of_the_value_labels_inside_the_plot() -> None:
    config = widget_pb2.BarChartConfig(category_column="unit", value_columns=["n"], series_column="region")
    scale = bar_spec(config, _frame(), *LARGE)["encoding"]["x"]["scale"]
    # All the outer padding at the start, at least as wide as the widest label ("40").
    assert scale["align"] == 1
    room = Room(*LARGE)
    plot_width = LARGE[0] - room.axis_band_px
    step = plot_width / (4 - scale["paddingInner"] + 2 * scale["paddingOuter"])
    assert 2 * scale["paddingOuter"] * step >= value_label_px([{"x": "Q1", "y": 40}], False, None, room)
    horizontal = widget_pb2.BarChartConfig(
        category_column="unit", value_columns=["n"], orientation=widget_pb2.BAR_ORIENTATION_HORIZONTAL
    )
    assert "scale" not in bar_spec(horizontal, _frame(), *LARGE)["encoding"]["y"]


def test_an_area_starts_right_of_the_value_labels() -> None:
    # Four quarters on a point scale: Vega's own half step at the start clears the labels.
    assert "align" not in _area(LARGE)["encoding"]["x"].get("scale", {})
    records: list[dict[str, object]] = [{"x": str(i), "y": 123456} for i in range(12)]
    label_px = value_label_px(records, False, None, Room(*SMALL))
    moved = area_clear_of_value_labels({"type": "ordinal"}, label_px, 12, 150.0)
    step = 150.0 / (11 + 2 * moved["padding"])
    assert moved["align"] == 1 and 2 * moved["padding"] * step >= label_px - 1e-6
    config = widget_pb2.AreaChartConfig(x_column="day", y_columns=["n"])
    frame = frame_of([("day", "int4", [1, 2, 3]), ("n", "int8", [10, 2000, 30])])
    padded = area_spec(config, frame, *LARGE)["encoding"]["x"]["scale"]
    assert padded["padding"] >= value_label_px([{"x": 1, "y": 2000}], False, None, Room(*LARGE))
