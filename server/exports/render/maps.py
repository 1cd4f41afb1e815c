"""Map widgets as Vega-Lite specs: points and/or a choropleth on an offline basemap.

The Mercator projection is fitted here to what the rows place (points, and the bounding boxes of
the countries a region column names), with room for the largest circle and a minimum span (see
map_layout), and handed to Vega as scale/translate with a clip extent, so Vega draws exactly the
projection the label placement computed with and cuts country outlines at the plot's edge.
Country outlines come from basemap.py (Natural Earth via world-atlas); without them the map
keeps a graticule for orientation. Point labels that would touch another label or circle are
left out rather than drawn over each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dashboard.v1 import common_pb2, widget_pb2
from server.exports.render.axis_formats import number_axis
from server.exports.render.basemap import Country, countries_in, country_index
from server.exports.render.charts import PALETTE, Spec
from server.exports.render.columns import WidgetConfigError, find_column, numeric_column
from server.exports.render.map_layout import LABEL_FONT_PX, MapPoint, Projection, fit_mercator, place_labels
from server.exports.render.values import cell_texts, chart_values

__all__ = ["map_spec"]

# Points beyond this many get no text label: they would only draw an unreadable smear.
MAP_LABEL_LIMIT = 60
MAP_LEGEND_PX = 84.0
MAP_BOTTOM_LEGEND_PX = 34.0
MAP_LEGEND_MAX_SHARE = 0.2
MAP_AREA_RANGE = (30.0, 600.0)
# Ring points closer than this on the page (CSS px) to the previous one are dropped.
SIMPLIFY_PX = 2.5
SEA = "#eef4fa"
LAND = "#fbfcfd"
BORDER = "#b6c2d1"
NO_DATA = "#eceff3"


def _nice_step(span: float) -> float:
    """A graticule step giving a handful of lines across `span` degrees."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30):
        if span / step <= 8:
            return step
    return 30.0


def _fmt(config: widget_pb2.MapConfig) -> widget_pb2.ValueFormat | None:
    return config.value_format if config.HasField("value_format") else None


def _points(
    config: widget_pb2.MapConfig, frame: common_pb2.DataFrame, values: list[object]
) -> tuple[list[MapPoint], list[dict[str, object]]]:
    """The rows with a valid position as points (radius from the value) and their records."""
    if not (config.latitude_column and config.longitude_column):
        return [], []
    lats = chart_values(numeric_column(frame, config.latitude_column, "map.latitude_column"))
    lons = chart_values(numeric_column(frame, config.longitude_column, "map.longitude_column"))
    labels = cell_texts(find_column(frame, config.label_column, "map.label_column")) if config.label_column else []
    numbers = [abs(float(v)) for v in values if isinstance(v, int | float)]
    top = max(numbers, default=0.0) or 1.0
    low, high = MAP_AREA_RANGE
    points: list[MapPoint] = []
    records: list[dict[str, object]] = []
    for row in range(frame.row_count):
        lat, lon = lats[row], lons[row]
        # Mercator cannot show the poles.
        if not isinstance(lat, int | float) or not isinstance(lon, int | float):
            continue
        if not (-85.0 <= lat <= 85.0 and -180.0 <= lon <= 180.0):
            continue
        value = values[row] if values else None
        area = low + (high - low) * abs(float(value)) / top if isinstance(value, int | float) else low
        label = (labels[row] or "") if labels else ""
        points.append(MapPoint(float(lon), float(lat), math.sqrt(area / math.pi), label, area))
        record: dict[str, object] = {"lat": lat, "lon": lon}
        if values:
            record["v"] = value
        records.append(record)
    return points, records


def _regions(
    config: widget_pb2.MapConfig, frame: common_pb2.DataFrame, values: list[object]
) -> dict[str, tuple[Country, object]]:
    """Country id -> (country, value) for the rows whose region names a known country."""
    if not config.region_column:
        return {}
    codes = cell_texts(find_column(frame, config.region_column, "map.region_column"))
    index = country_index("110m") or {}
    detailed = country_index("50m") or {}
    out: dict[str, tuple[Country, object]] = {}
    for row, code in enumerate(codes):
        key = (code or "").strip().lower()
        country = detailed.get(key) or index.get(key)
        if country is not None and country.id not in out:
            out[country.id] = (country, values[row] if values else None)
    if not out:
        raise WidgetConfigError(
            "map.region_column",
            "no row names a known country (ISO 3166-1 numeric, alpha-2 or alpha-3 code, or English name)",
        )
    return out


def _clip(ring: list[list[float]], view: tuple[float, float, float, float]) -> list[list[float]]:
    """The ring cut to the view's rectangle (Sutherland-Hodgman; a lon/lat rectangle stays one
    under Mercator). Edges it adds run along the rectangle, which lies outside the plot."""
    west, south, east, north = view
    edges: tuple[tuple[Callable[[list[float]], bool], Callable[[list[float], list[float]], list[float]]], ...] = (
        (lambda p: p[0] >= west, lambda a, b: _at_x(a, b, west)),
        (lambda p: p[0] <= east, lambda a, b: _at_x(a, b, east)),
        (lambda p: p[1] >= south, lambda a, b: _at_y(a, b, south)),
        (lambda p: p[1] <= north, lambda a, b: _at_y(a, b, north)),
    )
    points = ring
    for inside, cross in edges:
        if not points:
            break
        out: list[list[float]] = []
        previous = points[-1]
        for point in points:
            if inside(point):
                if not inside(previous):
                    out.append(cross(previous, point))
                out.append(point)
            elif inside(previous):
                out.append(cross(previous, point))
            previous = point
        points = out
    return points


def _at_x(a: list[float], b: list[float], x: float) -> list[float]:
    t = (x - a[0]) / (b[0] - a[0])
    return [x, a[1] + t * (b[1] - a[1])]


def _at_y(a: list[float], b: list[float], y: float) -> list[float]:
    t = (y - a[1]) / (b[1] - a[1])
    return [a[0] + t * (b[0] - a[0]), y]


def _simplified(
    country: Country, projection: Projection, view: tuple[float, float, float, float], properties: dict[str, object]
) -> dict[str, Any] | None:
    """The country as a GeoJSON feature with only what the view shows: polygons outside it left
    out, and ring points closer than SIMPLIFY_PX on the page to the last one kept dropped (a
    country at 1:50m has thousands of points; a card shows a few hundred)."""
    west, south, east, north = view
    polygons = []
    for polygon in country.geometry["coordinates"]:
        outer = polygon[0]
        xs, ys = [p[0] for p in outer], [p[1] for p in outer]
        if max(xs) < west or min(xs) > east or max(ys) < south or min(ys) > north:
            continue
        rings = []
        for ring in polygon:
            kept: list[list[float]] = []
            last: tuple[float, float] | None = None
            for point in _clip(ring, view):
                x, y = projection.project(point[0], point[1])
                if last is None or abs(x - last[0]) + abs(y - last[1]) >= SIMPLIFY_PX:
                    kept.append([round(point[0], 4), round(point[1], 4)])
                    last = (x, y)
            if len(kept) >= 3:
                kept.append(kept[0])
                rings.append(kept)
        if rings:
            polygons.append(rings)
    if not polygons:
        return None
    geometry = {"type": "MultiPolygon", "coordinates": polygons}
    return {"type": "Feature", "id": country.id, "properties": properties, "geometry": geometry}


def map_spec(
    config: widget_pb2.MapConfig,
    frame: common_pb2.DataFrame,
    width: float,
    height: float,
    time_zone: str = "",
) -> Spec:
    """Points (sized by the value column, labelled where labels fit) and/or countries filled by
    the value column, on country outlines, in a projection fitted to them."""
    values = chart_values(numeric_column(frame, config.value_column, "map.value_column")) if config.value_column else []
    points, records = _points(config, frame, values)
    regions = _regions(config, frame, values)
    if not points and not regions:
        raise WidgetConfigError("map.latitude_column", "no row has a valid latitude and longitude")
    # The key at the right (MAP_LEGEND_PX wide) or below (MAP_BOTTOM_LEGEND_PX high), whichever
    # takes the smaller share; none when even that would take more than MAP_LEGEND_MAX_SHARE.
    side = MAP_LEGEND_PX / width <= MAP_BOTTOM_LEGEND_PX / height
    share = MAP_LEGEND_PX / width if side else MAP_BOTTOM_LEGEND_PX / height
    legend = bool(values) and share <= MAP_LEGEND_MAX_SHARE
    plot_w = max(width - (MAP_LEGEND_PX if legend and side else 0.0) - 4, 40.0)
    plot_h = max(height - (MAP_BOTTOM_LEGEND_PX if legend and not side else 0.0) - 4, 30.0)
    placement: Spec = (
        {"orient": "right", "titleLimit": MAP_LEGEND_PX - 10}
        if side
        else {
            "orient": "bottom",
            "direction": "horizontal",
            "titleOrient": "left",
            "titleLimit": MAP_LEGEND_PX,
            "offset": 4,
            "gradientLength": 120,
        }
    )
    extent = [(p.lon, p.lat) for p in points]
    for country, _ in regions.values():
        west, south, east, north = country.main_bbox
        extent += [(west, max(south, -80.0)), (east, min(north, 80.0))]
    largest = max((p.radius_px for p in points), default=0.0)
    projection = fit_mercator(extent, plot_w, plot_h, largest + 12)
    west, north = projection.invert(0, 0)
    east, south = projection.invert(plot_w, plot_h)
    layers: list[Spec] = []
    land = countries_in(west, south, east, north)
    number_format = number_axis(_fmt(config), values)
    if land:
        view = (west - 1.0, south - 1.0, east + 1.0, north + 1.0)
        drawn = (_simplified(c, projection, view, {"v": regions[c.id][1] if c.id in regions else None}) for c in land)
        features = [feature for feature in drawn if feature is not None]
        shape: Spec = {
            "data": {
                "values": {"type": "FeatureCollection", "features": features},
                "format": {"type": "json", "property": "features"},
            },
            "mark": {"type": "geoshape", "fill": LAND, "stroke": BORDER, "strokeWidth": 0.6},
        }
        if regions and values:
            shape["encoding"] = {
                "color": {
                    "field": "properties.v",
                    "type": "quantitative",
                    "title": config.value_column,
                    "scale": {"scheme": "blues"},
                    "legend": {**placement, **number_format} if legend else None,
                }
            }
            # Countries without a value stay neutral rather than taking the scale's lowest colour.
            layers.append({**shape, "encoding": {}, "mark": {**shape["mark"], "fill": NO_DATA}})
            shape["transform"] = [{"filter": "isValid(datum.properties.v)"}]
            shape["mark"] = {key: value for key, value in shape["mark"].items() if key != "fill"}
        layers.append(shape)
    else:
        step = _nice_step(max(east - west, north - south))
        layers.append(
            {
                "data": {"graticule": {"extent": [[west, south], [east, north]], "step": [step, step]}},
                "mark": {"type": "geoshape", "filled": False, "stroke": "#d1d5db", "strokeWidth": 0.7},
            }
        )
    position: Spec = {
        "latitude": {"field": "lat", "type": "quantitative"},
        "longitude": {"field": "lon", "type": "quantitative"},
    }
    if points:
        circles: Spec = {
            "data": {"values": records},
            "mark": {"type": "circle", "color": PALETTE[0], "opacity": 0.8, "stroke": "#ffffff", "strokeWidth": 1},
            "encoding": dict(position),
        }
        if values and not regions:
            top = max((abs(float(v)) for v in values if isinstance(v, int | float)), default=0.0) or 1.0
            circles["encoding"]["size"] = {
                "field": "v",
                "type": "quantitative",
                "title": config.value_column,
                "scale": {"domain": [0, top], "range": list(MAP_AREA_RANGE)},
                "legend": {**placement, "labelLimit": MAP_LEGEND_PX - 40, **number_format} if legend else None,
            }
        layers.append(circles)
    if points and config.label_column and len(points) <= MAP_LABEL_LIMIT:
        spots = place_labels(points, projection, plot_w, plot_h)
        if spots:
            layers.append(
                {
                    "data": {"values": [{"lat": s.lat, "lon": s.lon, "l": points[s.index].label} for s in spots]},
                    "mark": {
                        "type": "text",
                        "align": "left",
                        "baseline": "middle",
                        "fontSize": LABEL_FONT_PX,
                        "color": "#1f2937",
                    },
                    "encoding": {**position, "text": {"field": "l"}},
                }
            )
    projection_spec: dict[str, Any] = {
        "type": "mercator",
        "scale": projection.scale,
        "translate": list(projection.translate),
        "clipExtent": [[0, 0], [round(plot_w), round(plot_h)]],
    }
    return {
        "width": round(plot_w),
        "height": round(plot_h),
        "autosize": {"type": "pad"},
        "padding": 2,
        "projection": projection_spec,
        "view": {"fill": SEA, "stroke": None},
        "layer": layers,
    }
