"""Line, area, bar, heatmap and map widgets as inline SVG, drawn by Vega-Lite in vl-convert.

Each builder turns a widget's typed config and its DataFrame into a Vega-Lite spec with the data
inlined (reshaped to the fixed fields x, y, s, c, v, ... so that column names never reach
Vega-Lite's field syntax, where "a.b" or "a[0]" would mean nested access). vl-convert is called
with no allowed base URL, so a spec can never fetch anything. The SVG it returns is then cleaned
(`clean_svg`): ids namespaced per widget, since several charts share one HTML document; no
script, foreign object, image, link or event handler; no reference outside the document.
"""

from __future__ import annotations

import functools
import json
import logging
import xml.etree.ElementTree as ET
from typing import Any

import vl_convert

from dashboard.v1 import common_pb2, widget_pb2
from server.exports.render.axis_formats import category_order, number_axis, temporal_axis, zoned_ms
from server.exports.render.chart_layout import (
    Room,
    area_clear_of_value_labels,
    category_axis,
    clear_of_value_labels,
    legend_plan,
    position_axis,
    text_px,
    value_axis,
    value_label_px,
)
from server.exports.render.columns import WidgetConfigError, find_column, numeric_column
from server.exports.render.series_labels import end_labels
from server.exports.render.values import NUMERIC_TYPES, TEMPORAL_TYPES, cell_texts, chart_values

__all__ = [
    "FONT_STACK",
    "HEATMAP_SCHEMES",
    "PALETTE",
    "ChartError",
    "Spec",
    "area_spec",
    "bar_spec",
    "clean_svg",
    "heatmap_spec",
    "line_spec",
    "render_svg",
]

log = logging.getLogger(__name__)

# Drawn charts kept per worker process (an entry is one chart's SVG, tens of KB).
SVG_CACHE_ENTRIES = 128
FONT_STACK = '"DejaVu Sans", "Liberation Sans", "Noto Sans CJK SC", sans-serif'
PALETTE = [
    "#2563eb",
    "#f97316",
    "#10b981",
    "#e11d48",
    "#8b5cf6",
    "#ca8a04",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#64748b",
]
NULL_LABEL = "—"
# Heatmaps: the colour key's labels at most this wide; the key at the right or on top, whichever
# takes the smaller share of the chart; row labels on tiny heatmaps from HEATMAP_ROW_LABELS_MIN_PX.
NARROW_BAR_PX = 360.0
NARROW_BAR_LABEL_SHARE = 0.2
WIDE_BAR_LABEL_SHARE = 0.3
HEATMAP_LEGEND_PX = 70.0
# What the key takes, about: at the right (gradient, labels, offset) or on top (gradient, labels).
HEATMAP_RIGHT_LEGEND_PX = 42.0
HEATMAP_TOP_LEGEND_PX = 26.0
HEATMAP_ROW_LABELS_MIN_PX = 140.0

# Vega's named colour schemes (vega-scale palettes.js; Vega looks names up lower-cased, and the
# proto allows only [a-z0-9]). An unknown name would make Vega fail the whole chart.
# fmt: off
HEATMAP_SCHEMES = frozenset(
    {
        "blues", "greens", "greys", "oranges", "purples", "reds", "bluegreen", "bluepurple", "greenblue",
        "orangered", "purpleblue", "purplebluegreen", "purplered", "redpurple", "yellowgreen",
        "yelloworangebrown", "yelloworangered", "blueorange", "brownbluegreen", "purplegreen", "purpleorange",
        "redblue", "redgrey", "yellowgreenblue", "redyellowblue", "redyellowgreen", "pinkyellowgreen",
        "spectral", "viridis", "magma", "inferno", "plasma", "rainbow", "sinebow", "browns", "tealblues",
        "teals", "warmgreys", "goldgreen", "goldorange", "goldred", "lightgreyred", "lightgreyteal",
        "lightmulti", "lightorange", "lighttealblue", "darkblue", "darkgold", "darkgreen", "darkmulti",
        "darkred", "category10", "category20", "category20b", "category20c", "tableau10", "tableau20",
        "accent", "dark2", "paired", "pastel1", "pastel2", "set1", "set2", "set3",
    }
)
# fmt: on

_AXIS_STYLE = {
    "labelColor": "#4b5563",
    "titleColor": "#374151",
    "titleFontWeight": "bold",
    "gridColor": "#e5e7eb",
    "domainColor": "#9ca3af",
    "tickColor": "#9ca3af",
    "labelFontSize": 11,
    "titleFontSize": 11,
    "labelLimit": 160,
    "labelOverlap": True,
}
CONFIG: dict[str, Any] = {
    "font": FONT_STACK,
    # The widget's card paints the background (or nothing, for a transparent PNG).
    "background": None,
    "view": {"stroke": None},
    "axis": _AXIS_STYLE,
    "legend": {"labelColor": "#374151", "labelFontSize": 11, "titleFontSize": 11, "labelLimit": 180},
    "range": {"category": PALETTE},
    "mark": {"color": PALETTE[0]},
    "line": {"strokeWidth": 2},
    "point": {"filled": True, "size": 36},
}


class ChartError(Exception):
    """vl-convert could not draw the chart (the message is safe to show; details are logged)."""


Spec = dict[str, Any]


def _frame_of(width: float, height: float) -> Spec:
    return {
        "width": max(int(width), 40),
        "height": max(int(height), 30),
        "autosize": {"type": "fit", "contains": "padding"},
        "padding": 1,
    }


def _fmt(config: Any, name: str) -> widget_pb2.ValueFormat | None:
    return getattr(config, name) if config.HasField(name) else None


def _axis_field(
    column: common_pb2.Column,
    field: str,
    title: str,
    room: Room,
    fmt: widget_pb2.ValueFormat | None = None,
    time_zone: str = "",
) -> tuple[list[object], Spec]:
    """Values and the encoding of a column on a horizontal continuous-or-categorical axis,
    labelled as `fmt` says (timestamps on the wall clock of the format's or the dashboard's zone)."""
    if column.type in TEMPORAL_TYPES:
        values = zoned_ms(column, chart_values(column), fmt, time_zone)
        encoding: Spec = {"field": field, "type": "temporal", "scale": {"type": "utc"}, "title": room.title(title)}
        encoding["axis"] = {**position_axis(room), **temporal_axis(fmt)}
        return values, encoding
    if column.type in NUMERIC_TYPES:
        values = chart_values(column)
        encoding = {"field": field, "type": "quantitative", "scale": {"zero": False}, "title": room.title(title)}
        encoding["axis"] = {**position_axis(room), **number_axis(fmt, values)}
        return values, encoding
    texts = [NULL_LABEL if text is None else text for text in cell_texts(column)]
    # Categories in the query's order, not alphabetical.
    axis = category_axis([str(t) for t in texts], room.width, room.width, room)
    return list(texts), {"field": field, "type": "ordinal", "sort": None, "title": room.title(title), "axis": axis}


def _series_records(
    frame: common_pb2.DataFrame,
    x: list[object],
    y_names: list[str],
    y_field: str,
    series_column: str,
    series_field: str,
    series_order: list[str] | None = None,
) -> tuple[list[dict[str, object]], list[str]]:
    """Long-form records {x, y, s}: one per row and value column. `s` names the series (the series
    column's value, the value column's name, or both); returns the series in order of appearance."""
    if not y_names:
        raise WidgetConfigError(y_field, "at least one column is needed")
    values = [
        (name, chart_values(numeric_column(frame, name, f"{y_field}[{index}]"))) for index, name in enumerate(y_names)
    ]
    series: list[str | None] | None = None
    if series_column:
        series = cell_texts(find_column(frame, series_column, series_field))
    records: list[dict[str, object]] = []
    labels: dict[str, None] = {}
    for row in range(frame.row_count):
        for name, column in values:
            if series is None:
                label = name
            else:
                value = series[row]
                label = NULL_LABEL if value is None else value
                if len(values) > 1:
                    label = f"{label} · {name}"
            labels[label] = None
            records.append({"x": x[row], "y": column[row], "s": label})
    return records, [str(label) for label in category_order(list(labels), series_order or [])]


def _with_legend(encoding: Spec, series: list[str], room: Room) -> tuple[bool, float, float]:
    """Colours by series with a legend placed to keep the plot large (one series: no legend; a
    tiny card: no legend either when it would crowd the plot), and axis titles cut to the plot's
    length so they never leave it. Returns whether a legend names the series, and the plot's
    width and height."""
    legend_w = legend_h = 0.0
    shown = len(series) < 2
    if len(series) > 1:
        plan = legend_plan(series, room.width, room.height, room)
        legend_w, legend_h = plan.width_px, plan.height_px
        encoding["color"] = {
            "field": "s",
            "type": "nominal",
            "sort": series,
            "legend": plan.spec if plan.shown else None,
        }
        shown = plan.shown
    plot_w = room.width - legend_w - room.axis_band_px
    plot_h = room.height - legend_h - room.axis_band_px
    for channel, length in (("x", plot_w), ("y", plot_h)):
        if channel in encoding:
            axis = encoding[channel].setdefault("axis", {})
            axis["titleLimit"] = max(24, round(length))
    return shown, plot_w, plot_h


def _named(
    spec: Spec,
    records: list[dict[str, object]],
    series: list[str],
    room: Room,
    named: tuple[bool, float, float],
    last_bar: tuple[object, float] | None = None,
) -> Spec:
    """The chart as it is when a legend names its series, else with each series named at its end
    (`series_labels`): the chart's own layer first, the labels over it."""
    shown, plot_w, plot_h = named
    stacked = spec["encoding"]["y"].get("stack") == "zero"
    plot = (plot_w, plot_h)
    labels = None if shown else end_labels(records, series, spec["encoding"], room, plot, stacked, last_bar)
    if labels is None:
        return spec
    frame = {key: spec[key] for key in ("width", "height", "autosize", "padding")}
    chart = {key: spec[key] for key in ("data", "mark", "encoding")}
    return {**frame, "layer": [chart, labels]}


def _value_encoding(
    records: list[dict[str, object]], fmt: widget_pb2.ValueFormat | None, title: str | None, room: Room, inside: bool
) -> Spec:
    """The quantitative value channel: labels inside the plot on a vertical axis."""
    axis = value_axis(room) if inside else position_axis(room)
    axis.update(number_axis(fmt, [record["y"] for record in records]))
    return {"field": "y", "type": "quantitative", "title": room.title(title), "axis": axis}


def line_spec(
    config: widget_pb2.LineChartConfig,
    frame: common_pb2.DataFrame,
    width: float,
    height: float,
    time_zone: str = "",
) -> Spec:
    room = Room(width, height)
    x_values, x_encoding = _axis_field(
        find_column(frame, config.x_column, "line.x_column"),
        "x",
        config.x_title or config.x_column,
        room,
        _fmt(config, "x_format"),
        time_zone,
    )
    records, series = _series_records(
        frame,
        x_values,
        list(config.y_columns),
        "line.y_columns",
        config.series_column,
        "line.series_column",
        list(config.series_order),
    )
    y_title = config.y_title or (config.y_columns[0] if len(config.y_columns) == 1 else None)
    y = _value_encoding(records, _fmt(config, "y_format"), y_title, room, inside=True)
    encoding: Spec = {"x": x_encoding, "y": y}
    named = _with_legend(encoding, series, room)
    mark: Spec = {"type": "line", "point": bool(config.show_points)}
    spec = {**_frame_of(width, height), "data": {"values": records}, "mark": mark, "encoding": encoding}
    return _named(spec, records, series, room, named)


def area_spec(
    config: widget_pb2.AreaChartConfig,
    frame: common_pb2.DataFrame,
    width: float,
    height: float,
    time_zone: str = "",
) -> Spec:
    room = Room(width, height)
    x_values, x_encoding = _axis_field(
        find_column(frame, config.x_column, "area.x_column"),
        "x",
        config.x_title or config.x_column,
        room,
        _fmt(config, "x_format"),
        time_zone,
    )
    records, series = _series_records(
        frame,
        x_values,
        list(config.y_columns),
        "area.y_columns",
        config.series_column,
        "area.series_column",
        list(config.series_order),
    )
    y_title = config.y_title or (config.y_columns[0] if len(config.y_columns) == 1 else None)
    y = _value_encoding(records, _fmt(config, "y_format"), y_title, room, inside=True)
    y["stack"] = "zero" if config.stacked else None
    encoding: Spec = {"x": x_encoding, "y": y}
    if config.stacked and len(series) > 1:
        _stack_in_series_order(encoding, records, series)
    named = _with_legend(encoding, series, room)
    # A filled area would hide the value labels inside the plot: it starts to their right.
    label_px = value_label_px(records, config.stacked, _fmt(config, "y_format"), room)
    points = len({str(record["x"]) for record in records})
    x_encoding["scale"] = {
        **x_encoding.get("scale", {}),
        **area_clear_of_value_labels(x_encoding, label_px, points, named[1]),
    }
    # Overlapping (unstacked) areas must stay see-through; stacked ones never overlap.
    mark: Spec = {"type": "area", "line": True, "fillOpacity": 0.75 if config.stacked else 0.25}
    spec = {**_frame_of(width, height), "data": {"values": records}, "mark": mark, "encoding": encoding}
    return _named(spec, records, series, room, named)


def _stack_in_series_order(encoding: Spec, records: list[dict[str, object]], series: list[str]) -> None:
    """The first series at the bottom of the stack, the legend's order: left alone, Vega-Lite
    stacks by the series names in descending alphabetical order."""
    rank = {name: index for index, name in enumerate(series)}
    for record in records:
        record["o"] = rank[str(record["s"])]
    encoding["order"] = {"field": "o", "type": "quantitative"}


def bar_spec(
    config: widget_pb2.BarChartConfig,
    frame: common_pb2.DataFrame,
    width: float,
    height: float,
    time_zone: str = "",
) -> Spec:
    category = find_column(frame, config.category_column, "bar.category_column")
    categories: list[object] = [NULL_LABEL if text is None else text for text in cell_texts(category)]
    records, series = _series_records(
        frame,
        categories,
        list(config.value_columns),
        "bar.value_columns",
        config.series_column,
        "bar.series_column",
        list(config.series_order),
    )
    room = Room(width, height)
    value_title = config.value_columns[0] if len(config.value_columns) == 1 else None
    ordered = category_order(categories, list(config.category_order))
    # The card's title names what the bars are: the category column's name would only repeat it.
    title = None
    category_encoding: Spec = {"field": "x", "type": "nominal", "sort": ordered, "title": title}
    horizontal = config.orientation == widget_pb2.BAR_ORIENTATION_HORIZONTAL
    value_encoding = _value_encoding(records, _fmt(config, "value_format"), value_title, room, inside=not horizontal)
    value_encoding["stack"] = "zero" if config.stacked else None
    encoding: Spec = (
        {"y": category_encoding, "x": value_encoding} if horizontal else {"x": category_encoding, "y": value_encoding}
    )
    labels = [str(category) for category in categories]
    if horizontal:
        # Category labels take at most a fifth of a narrow chart's width, a third of a wide one's.
        share = NARROW_BAR_LABEL_SHARE if width < NARROW_BAR_PX else WIDE_BAR_LABEL_SHARE
        category_encoding["axis"] = {
            "labelLimit": round(max(24.0, min(max(text_px(label, room.char_px) for label in labels), width * share))),
            "labelOverlap": "greedy",
            "labelFontSize": room.font_px,
            "tickSize": 0,
            "labelPadding": 4,
        }
    else:
        category_encoding["axis"] = category_axis(labels, width, width, room)
    if len(series) > 1 and config.stacked:
        _stack_in_series_order(encoding, records, series)
    named = _with_legend(encoding, series, room)
    if len(series) > 1 and not config.stacked:
        # Grouped bars: series side by side within each category.
        encoding["yOffset" if horizontal else "xOffset"] = {"field": "s", "sort": series}
    mark: Spec = {"type": "bar", "cornerRadiusEnd": 2}
    spec = {**_frame_of(width, height), "data": {"values": records}, "mark": mark, "encoding": encoding}
    if horizontal or not ordered:
        return spec
    label_px = value_label_px(records, config.stacked, _fmt(config, "value_format"), room)
    category_encoding["scale"] = clear_of_value_labels(label_px, len(ordered), named[1])
    if not config.stacked:
        return spec
    # Vertical stacked bars name their series on the last bar's segments.
    return _named(spec, records, series, room, named, (ordered[-1], named[1] / len(ordered)))


def _heatmap_axis(column: common_pb2.Column, field: str, order: list[str]) -> tuple[list[object], Spec]:
    """Heatmap axes are discrete: numbers sort numerically, dates as ISO text (which sorts by time),
    anything else keeps the query's order; a configured order comes first in every case."""
    if column.type in NUMERIC_TYPES:
        values = chart_values(column)
        encoding: Spec = {"field": field, "type": "ordinal", "title": column.name}
        if order:
            ascending = sorted({v for v in values if isinstance(v, int | float)})
            encoding["sort"] = category_order(ascending, order)
        return values, encoding
    texts: list[object] = [NULL_LABEL if text is None else text for text in cell_texts(column)]
    encoding = {"field": field, "type": "ordinal", "title": column.name}
    if column.type not in TEMPORAL_TYPES:
        encoding["sort"] = category_order(texts, order)
    elif order:
        encoding["sort"] = category_order(sorted(set(map(str, texts))), order)
    return texts, encoding


def heatmap_spec(
    config: widget_pb2.HeatmapConfig,
    frame: common_pb2.DataFrame,
    width: float,
    height: float,
    time_zone: str = "",
) -> Spec:
    scheme = config.color_scheme or "blues"
    if scheme not in HEATMAP_SCHEMES:
        raise WidgetConfigError("heatmap.color_scheme", f"{scheme!r} is not a Vega colour scheme")
    xs, x_encoding = _heatmap_axis(find_column(frame, config.x_column, "heatmap.x_column"), "x", list(config.x_order))
    ys, y_encoding = _heatmap_axis(find_column(frame, config.y_column, "heatmap.y_column"), "y", list(config.y_order))
    values = chart_values(numeric_column(frame, config.value_column, "heatmap.value_column"))
    records = [{"x": xs[row], "y": ys[row], "v": values[row]} for row in range(frame.row_count)]
    room = Room(width, height)
    number_format = number_axis(_fmt(config, "value_format"), values)
    legend: Spec | None = None
    legend_w = 0.0
    # A tiny heatmap is a thumbnail of the pattern: the key would take a third of it.
    if not room.tiny:
        legend = {"labelFontSize": room.font_px, "labelLimit": round(HEATMAP_LEGEND_PX), **number_format}
        if HEATMAP_RIGHT_LEGEND_PX / width <= HEATMAP_TOP_LEGEND_PX / height:
            legend_w = HEATMAP_RIGHT_LEGEND_PX
            legend.update(
                orient="right",
                gradientLength=max(30, min(int(height) - 50, 200)),
                gradientThickness=10,
                titleLimit=round(HEATMAP_LEGEND_PX),
                offset=6,
            )
        else:
            legend.update(
                orient="top",
                direction="horizontal",
                title=None,
                gradientLength=round(min(width / 2, 160)),
                gradientThickness=8,
                offset=2,
            )
    color: Spec = {
        "field": "v",
        "type": "quantitative",
        "title": config.value_column,
        "scale": {"scheme": scheme},
        "legend": legend,
    }
    x_encoding["title"] = room.title(x_encoding["title"])
    y_encoding["title"] = room.title(y_encoding["title"])
    room_x = width - legend_w - room.axis_band_px
    x_encoding["axis"] = {**category_axis([str(x) for x in xs], room_x, room_x, room), "tickSize": 0, "labelPadding": 3}
    y_encoding["axis"] = {
        "titleLimit": max(24, round(height - room.axis_band_px)),
        "labelLimit": round(width / 4),
        "labelFontSize": room.font_px,
        "tickSize": 0,
        "labelPadding": 3,
    }
    if room.tiny:
        # Cells a few px wide: their labels would be noise; the rows keep theirs where there is width.
        x_encoding["axis"]["labels"] = False
        x_encoding["axis"]["ticks"] = False
        if width < HEATMAP_ROW_LABELS_MIN_PX:
            y_encoding["axis"].update({"labels": False, "ticks": False})
    encoding: Spec = {"x": x_encoding, "y": y_encoding, "color": color}
    return {**_frame_of(width, height), "data": {"values": records}, "mark": "rect", "encoding": encoding}


def render_svg(spec: Spec, id_prefix: str) -> str:
    """The spec drawn as an SVG element for inlining; raises ChartError when Vega fails."""
    return clean_svg(_drawn(json.dumps(spec, sort_keys=True, separators=(",", ":"))), id_prefix)


@functools.lru_cache(maxsize=SVG_CACHE_ENTRIES)
def _drawn(spec_json: str) -> str:
    """Vega's SVG of a spec, by the spec's canonical JSON: the same widget with the same data
    (a batch of formats or paper sizes, a dashboard exported again before its data changed) is
    drawn once per worker process. Drawing is most of an export's CPU time."""
    try:
        return str(vl_convert.vegalite_to_svg(json.loads(spec_json), config=CONFIG, allowed_base_urls=[]))
    except ValueError as error:
        log.warning("vl-convert failed to draw a chart: %s", str(error).splitlines()[0])
        raise ChartError("The chart could not be drawn.") from error


_DROPPED_ELEMENTS = frozenset({"script", "foreignObject", "image", "a", "iframe", "style", "use", "feImage"})


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _rewrite_references(value: str, ids: dict[str, str]) -> str | None:
    """`value` with url(#id) references renamed; None when it refers to anything but a fragment."""
    out: list[str] = []
    rest = value
    while "url(" in rest:
        head, _, tail = rest.partition("url(")
        target, closing, rest = tail.partition(")")
        target = target.strip().strip("'\"")
        if not closing or not target.startswith("#"):
            return None
        out.append(f"{head}url(#{ids.get(target[1:], target[1:])})")
    out.append(rest)
    return "".join(out)


def clean_svg(svg: str, id_prefix: str) -> str:
    """Vega's SVG made safe to inline next to other charts: namespaces dropped (HTML puts <svg>
    content in the SVG namespace by itself), ids prefixed and references renamed with them, and
    anything that could run code or load a resource removed."""
    root = ET.fromstring(svg)
    ids: dict[str, str] = {}
    for element in root.iter():
        element.tag = _local(element.tag)
        if "id" in element.attrib:
            ids[element.attrib["id"]] = f"{id_prefix}-{element.attrib['id']}"
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in _DROPPED_ELEMENTS:
                parent.remove(child)
    for element in root.iter():
        cleaned: dict[str, str] = {}
        for raw_name, value in element.attrib.items():
            name = _local(raw_name)
            if name.lower().startswith("on"):
                continue
            if name == "id":
                cleaned[name] = ids[value]
            elif name == "href":
                if value.startswith("#"):
                    cleaned[name] = "#" + ids.get(value[1:], value[1:])
            elif "url(" in value:
                rewritten = _rewrite_references(value, ids)
                if rewritten is not None:
                    cleaned[name] = rewritten
            else:
                cleaned[name] = value
        if element.tag == "text" and "stroke" in cleaned:
            # A stroked label (`series_labels`' halo) paints its outline under its glyphs.
            cleaned["paint-order"] = "stroke"
        element.attrib.clear()
        element.attrib.update(cleaned)
    return ET.tostring(root, encoding="unicode")
