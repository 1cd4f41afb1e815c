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
from server.exports.render.columns import WidgetConfigError, find_column, numeric_column
from server.exports.render.values import NUMERIC_TYPES, TEMPORAL_TYPES, cell_texts, chart_values

__all__ = [
    "FONT_STACK",
    "HEATMAP_SCHEMES",
    "ChartError",
    "area_spec",
    "bar_spec",
    "clean_svg",
    "heatmap_spec",
    "line_spec",
    "map_spec",
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
# Points beyond this many get no text label: they would only draw an unreadable smear.
MAP_LABEL_LIMIT = 60

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
        "padding": 2,
    }


def _axis_field(column: common_pb2.Column, field: str, title: str) -> tuple[list[object], Spec]:
    """Values and the encoding of a column on a continuous-or-categorical axis."""
    if column.type in TEMPORAL_TYPES:
        return chart_values(column), {"field": field, "type": "temporal", "scale": {"type": "utc"}, "title": title}
    if column.type in NUMERIC_TYPES:
        return chart_values(column), {"field": field, "type": "quantitative", "scale": {"zero": False}, "title": title}
    texts = [NULL_LABEL if text is None else text for text in cell_texts(column)]
    # Categories in the query's order, not alphabetical.
    return list(texts), {"field": field, "type": "ordinal", "sort": None, "title": title}


def _series_records(
    frame: common_pb2.DataFrame,
    x: list[object],
    y_names: list[str],
    y_field: str,
    series_column: str,
    series_field: str,
) -> tuple[list[dict[str, object]], bool]:
    """Long-form records {x, y, s}: one per row and value column. `s` names the series (the series
    column's value, the value column's name, or both); returns whether there is more than one."""
    if not y_names:
        raise WidgetConfigError(y_field, "at least one column is needed")
    values = [
        (name, chart_values(numeric_column(frame, name, f"{y_field}[{index}]"))) for index, name in enumerate(y_names)
    ]
    series: list[str | None] | None = None
    if series_column:
        series = cell_texts(find_column(frame, series_column, series_field))
    records: list[dict[str, object]] = []
    labels: set[str] = set()
    for row in range(frame.row_count):
        for name, column in values:
            if series is None:
                label = name
            else:
                value = series[row]
                label = NULL_LABEL if value is None else value
                if len(values) > 1:
                    label = f"{label} · {name}"
            labels.add(label)
            records.append({"x": x[row], "y": column[row], "s": label})
    return records, len(labels) > 1


def _legend(width: float) -> Spec:
    return {"orient": "top", "title": None, "columns": max(1, int(width // 150)), "symbolType": "circle"}


def line_spec(config: widget_pb2.LineChartConfig, frame: common_pb2.DataFrame, width: float, height: float) -> Spec:
    x_values, x_encoding = _axis_field(
        find_column(frame, config.x_column, "line.x_column"), "x", config.x_title or config.x_column
    )
    records, multi = _series_records(
        frame, x_values, list(config.y_columns), "line.y_columns", config.series_column, "line.series_column"
    )
    y_title = config.y_title or (config.y_columns[0] if len(config.y_columns) == 1 else None)
    encoding: Spec = {"x": x_encoding, "y": {"field": "y", "type": "quantitative", "title": y_title}}
    if multi:
        encoding["color"] = {"field": "s", "type": "nominal", "sort": None, "legend": _legend(width)}
    mark: Spec = {"type": "line", "point": bool(config.show_points)}
    return {**_frame_of(width, height), "data": {"values": records}, "mark": mark, "encoding": encoding}


def area_spec(config: widget_pb2.AreaChartConfig, frame: common_pb2.DataFrame, width: float, height: float) -> Spec:
    x_values, x_encoding = _axis_field(
        find_column(frame, config.x_column, "area.x_column"), "x", config.x_title or config.x_column
    )
    records, multi = _series_records(
        frame, x_values, list(config.y_columns), "area.y_columns", config.series_column, "area.series_column"
    )
    y_title = config.y_title or (config.y_columns[0] if len(config.y_columns) == 1 else None)
    y: Spec = {"field": "y", "type": "quantitative", "title": y_title, "stack": "zero" if config.stacked else None}
    encoding: Spec = {"x": x_encoding, "y": y}
    if multi:
        encoding["color"] = {"field": "s", "type": "nominal", "sort": None, "legend": _legend(width)}
    # Overlapping (unstacked) areas must stay see-through; stacked ones never overlap.
    mark: Spec = {"type": "area", "line": True, "fillOpacity": 0.75 if config.stacked else 0.25}
    return {**_frame_of(width, height), "data": {"values": records}, "mark": mark, "encoding": encoding}


def bar_spec(config: widget_pb2.BarChartConfig, frame: common_pb2.DataFrame, width: float, height: float) -> Spec:
    category = find_column(frame, config.category_column, "bar.category_column")
    categories: list[object] = [NULL_LABEL if text is None else text for text in cell_texts(category)]
    records, multi = _series_records(
        frame, categories, list(config.value_columns), "bar.value_columns", config.series_column, "bar.series_column"
    )
    value_title = config.value_columns[0] if len(config.value_columns) == 1 else None
    category_encoding: Spec = {"field": "x", "type": "nominal", "sort": None, "title": config.category_column}
    value_encoding: Spec = {
        "field": "y",
        "type": "quantitative",
        "title": value_title,
        "stack": "zero" if config.stacked else None,
    }
    horizontal = config.orientation == widget_pb2.BAR_ORIENTATION_HORIZONTAL
    encoding: Spec = (
        {"y": category_encoding, "x": value_encoding}
        if horizontal
        else {
            "x": category_encoding,
            "y": value_encoding,
        }
    )
    if multi:
        encoding["color"] = {"field": "s", "type": "nominal", "sort": None, "legend": _legend(width)}
        if not config.stacked:
            # Grouped bars: series side by side within each category.
            encoding["yOffset" if horizontal else "xOffset"] = {"field": "s", "sort": None}
    mark: Spec = {"type": "bar", "cornerRadiusEnd": 2}
    return {**_frame_of(width, height), "data": {"values": records}, "mark": mark, "encoding": encoding}


def _heatmap_axis(column: common_pb2.Column, field: str) -> tuple[list[object], Spec]:
    """Heatmap axes are discrete: numbers sort numerically, dates as ISO text (which sorts by time),
    anything else keeps the query's order."""
    if column.type in NUMERIC_TYPES:
        return chart_values(column), {"field": field, "type": "ordinal", "title": column.name}
    texts: list[object] = [NULL_LABEL if text is None else text for text in cell_texts(column)]
    encoding: Spec = {"field": field, "type": "ordinal", "title": column.name}
    if column.type not in TEMPORAL_TYPES:
        encoding["sort"] = None
    return texts, encoding


def heatmap_spec(config: widget_pb2.HeatmapConfig, frame: common_pb2.DataFrame, width: float, height: float) -> Spec:
    scheme = config.color_scheme or "blues"
    if scheme not in HEATMAP_SCHEMES:
        raise WidgetConfigError("heatmap.color_scheme", f"{scheme!r} is not a Vega colour scheme")
    xs, x_encoding = _heatmap_axis(find_column(frame, config.x_column, "heatmap.x_column"), "x")
    ys, y_encoding = _heatmap_axis(find_column(frame, config.y_column, "heatmap.y_column"), "y")
    values = chart_values(numeric_column(frame, config.value_column, "heatmap.value_column"))
    records = [{"x": xs[row], "y": ys[row], "v": values[row]} for row in range(frame.row_count)]
    color: Spec = {
        "field": "v",
        "type": "quantitative",
        "title": config.value_column,
        "scale": {"scheme": scheme},
        "legend": {"orient": "right", "gradientLength": max(40, min(int(height) - 40, 200))},
    }
    encoding: Spec = {"x": x_encoding, "y": y_encoding, "color": color}
    return {**_frame_of(width, height), "data": {"values": records}, "mark": "rect", "encoding": encoding}


def _nice_step(span: float) -> float:
    """A graticule step giving a handful of lines across `span` degrees."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30):
        if span / step <= 8:
            return step
    return 30.0


def map_spec(config: widget_pb2.MapConfig, frame: common_pb2.DataFrame, width: float, height: float) -> Spec:
    """Points on a Mercator projection fitted to them, over a graticule for orientation; no basemap
    (that would be a fetch). Points with no or impossible coordinates are left out."""
    lats = chart_values(numeric_column(frame, config.latitude_column, "map.latitude_column"))
    lons = chart_values(numeric_column(frame, config.longitude_column, "map.longitude_column"))
    values = chart_values(numeric_column(frame, config.value_column, "map.value_column")) if config.value_column else []
    labels = cell_texts(find_column(frame, config.label_column, "map.label_column")) if config.label_column else []
    points: list[dict[str, object]] = []
    lat_values: list[float] = []
    lon_values: list[float] = []
    for row in range(frame.row_count):
        lat, lon = lats[row], lons[row]
        if not isinstance(lat, int | float) or not isinstance(lon, int | float):
            continue
        # Mercator cannot show the poles.
        if not (-85.0 <= lat <= 85.0 and -180.0 <= lon <= 180.0):
            continue
        point: dict[str, object] = {"lat": lat, "lon": lon}
        if values:
            point["v"] = values[row]
        if labels:
            point["l"] = labels[row] or ""
        points.append(point)
        lat_values.append(float(lat))
        lon_values.append(float(lon))
    if not points:
        raise WidgetConfigError("map.latitude_column", "no row has a valid latitude and longitude")
    pad = max(1.0, 0.15 * max(max(lat_values) - min(lat_values), max(lon_values) - min(lon_values)))
    west, east = max(-180.0, min(lon_values) - pad), min(180.0, max(lon_values) + pad)
    south, north = max(-85.0, min(lat_values) - pad), min(85.0, max(lat_values) + pad)
    step = _nice_step(max(east - west, north - south))
    graticule: Spec = {
        "data": {"graticule": {"extent": [[west, south], [east, north]], "step": [step, step]}},
        "mark": {"type": "geoshape", "filled": False, "stroke": "#d1d5db", "strokeWidth": 0.7},
    }
    position: Spec = {
        "latitude": {"field": "lat", "type": "quantitative"},
        "longitude": {"field": "lon", "type": "quantitative"},
    }
    circles: Spec = {
        "mark": {"type": "circle", "color": PALETTE[0], "opacity": 0.75, "stroke": "#ffffff", "strokeWidth": 1},
        "encoding": dict(position),
    }
    if values:
        circles["encoding"]["size"] = {
            "field": "v",
            "type": "quantitative",
            "title": config.value_column,
            "scale": {"range": [30, 600]},
            "legend": {"orient": "right"},
        }
    layers = [graticule, circles]
    if labels and len(points) <= MAP_LABEL_LIMIT:
        layers.append(
            {
                "mark": {"type": "text", "align": "left", "dx": 8, "fontSize": 10, "color": "#374151"},
                "encoding": {**position, "text": {"field": "l"}},
            }
        )
    return {
        **_frame_of(width, height),
        "data": {"values": points},
        "projection": {"type": "mercator"},
        "view": {"fill": "#f8fafc", "stroke": None},
        "layer": layers,
    }


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
        element.attrib.clear()
        element.attrib.update(cleaned)
    return ET.tostring(root, encoding="unicode")
