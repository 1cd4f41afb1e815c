"""Maps: an offline basemap (world-atlas country outlines) under points fitted by the projection,
and a choropleth when rows carry a country code; nothing is fetched."""

from __future__ import annotations

import pytest

from dashboard.v1 import widget_pb2
from server.exports.render import charts, maps
from server.exports.render.basemap import basemap_dir, countries_in, country_index
from server.exports.render.chart_layout import text_px
from server.exports.render.columns import WidgetConfigError
from server.exports.render.map_layout import LABEL_CHAR_PX, LABEL_HEIGHT_PX, MapPoint, fit_mercator, place_labels
from tests.unit.export_render_samples import frame_of

pytestmark = pytest.mark.skipif(basemap_dir() is None, reason="world-atlas is not installed (npm ci)")

SITES = frame_of(
    [
        ("site", "text", ["North General Main", "North General Annex", "South Clinic"]),
        ("lat", "float8", [53.4808, 53.4631, 50.9097]),
        ("lon", "float8", [-2.2426, -2.2913, -1.4044]),
        ("beds", "int8", [420, 120, 80]),
    ]
)


def test_the_view_carries_only_the_countries_it_shows() -> None:
    names = {country.name for country in countries_in(-3.0, 50.0, -1.0, 54.0)}
    assert "United Kingdom" in names
    assert "Brazil" not in names and len(names) < 10


def test_points_sit_on_country_outlines_in_a_fitted_projection() -> None:
    config = widget_pb2.MapConfig(
        latitude_column="lat", longitude_column="lon", value_column="beds", label_column="site"
    )
    spec = maps.map_spec(config, SITES, 420, 220)
    basemap, circles, labels = spec["layer"]
    assert basemap["mark"]["type"] == "geoshape" and basemap["data"]["values"]["features"]
    assert len(circles["data"]["values"]) == 3
    # The two Manchester sites nearly touch: one of their labels gives way, no label is drawn twice.
    shown = [row["l"] for row in labels["data"]["values"]]
    assert "South Clinic" in shown and len(shown) == len(set(shown)) < 3
    west, north = (spec["projection"]["translate"][0], spec["projection"]["translate"][1])
    assert spec["projection"]["clipExtent"] == [[0, 0], [spec["width"], spec["height"]]] and west and north
    svg = charts.render_svg(spec, "m")
    assert "<path" in svg and "South Clinic" in svg


def test_a_region_column_fills_countries_by_value() -> None:
    frame = frame_of([("country", "text", ["United Kingdom", "250", "Atlantis"]), ("n", "int8", [5, 7, 1])])
    spec = maps.map_spec(widget_pb2.MapConfig(region_column="country", value_column="n"), frame, 420, 260)
    filled = spec["layer"][-1]
    values = {f["id"]: f["properties"]["v"] for f in filled["data"]["values"]["features"] if f["properties"]["v"]}
    assert values == {"826": 5, "250": 7}
    assert filled["encoding"]["color"]["field"] == "properties.v"
    assert "826" in country_index("110m") and "united kingdom" in country_index("110m")
    charts.render_svg(spec, "c")


def test_countries_by_iso_alpha_codes_and_iso_names() -> None:
    frame = frame_of(
        [
            ("country", "text", ["GB", "fra", "DEU", " es ", "Korea, Republic of", "Viet Nam", "XX"]),
            ("n", "int8", [1, 2, 3, 4, 5, 6, 7]),
        ]
    )
    spec = maps.map_spec(widget_pb2.MapConfig(region_column="country", value_column="n"), frame, 420, 260)
    filled = spec["layer"][-1]
    values = {f["id"]: f["properties"]["v"] for f in filled["data"]["values"]["features"] if f["properties"]["v"]}
    assert values == {"826": 1, "250": 2, "276": 3, "724": 4, "410": 5, "704": 6}
    # Natural Earth's own names keep their countries: ISO's names only add to them.
    index = country_index("110m")
    assert index["united kingdom"].id == "826" and index["gbr"] is index["826"]


def test_a_region_column_naming_no_country_is_a_config_error() -> None:
    frame = frame_of([("country", "text", ["Atlantis"]), ("n", "int8", [1])])
    with pytest.raises(WidgetConfigError) as raised:
        maps.map_spec(widget_pb2.MapConfig(region_column="country", value_column="n"), frame, 300, 200)
    assert raised.value.field == "map.region_column"


def test_labels_of_a_dense_cluster_never_touch_and_the_rest_are_dropped() -> None:
    points = [MapPoint(-0.12 + 0.001 * i, 51.5 + 0.001 * (i % 3), 4.0, f"Site {i} General", 1.0) for i in range(12)]
    projection = fit_mercator([(p.lon, p.lat) for p in points], 300, 200, 16)
    spots = place_labels(points, projection, 300, 200)
    assert 0 < len(spots) < len(points)
    boxes = []
    for spot in spots:
        x, y = projection.project(spot.lon, spot.lat)
        width = text_px(points[spot.index].label, LABEL_CHAR_PX)
        boxes.append((x, y - LABEL_HEIGHT_PX / 2, x + width, y + LABEL_HEIGHT_PX / 2))
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[2] <= 300
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


def test_a_map_key_goes_where_it_costs_least_or_not_at_all() -> None:
    config = widget_pb2.MapConfig(latitude_column="lat", longitude_column="lon", value_column="beds")
    narrow, wide, tall = (maps.map_spec(config, SITES, w, h) for w, h in ((150, 150), (600, 160), (420, 300)))
    assert narrow["width"] == 146 and narrow["layer"][-1]["encoding"]["size"]["legend"] is None
    assert wide["width"] < 600 - 80 and wide["layer"][-1]["encoding"]["size"]["legend"]["orient"] == "right"
    # Where a key below costs less of the map than one at the side, it goes below.
    assert tall["width"] == 416 and tall["layer"][-1]["encoding"]["size"]["legend"]["orient"] == "bottom"
