"""A map's projection and its point labels, computed here rather than left to Vega.

`fit_mercator` fits a Mercator projection to the points (with room for the largest circle and a
minimum span, so two sites 3 km apart show in their region, with its coast, not as one dot), and gives
the `scale`/`translate` Vega-Lite takes, so both sides draw with the same projection.
`place_labels` then puts each label beside its point (right, left, above, below: the first spot
that is free), never over another label or circle and never outside the plot; a label with no
free spot is dropped. Biggest values are placed first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from server.exports.render.chart_layout import text_px

__all__ = ["LabelSpot", "MapPoint", "Projection", "fit_mercator", "place_labels"]

# The smallest span shown, in degrees of longitude (about 350 km at mid latitudes): with country
# outlines only, a closer view would show nothing around the points.
MIN_SPAN_DEGREES = 5.0
LABEL_FONT_PX = 10.0
LABEL_CHAR_PX = 6.2
LABEL_HEIGHT_PX = 13.0
LABEL_GAP_PX = 3.0


@dataclass(frozen=True)
class MapPoint:
    lon: float
    lat: float
    radius_px: float
    label: str
    weight: float  # larger first when labels compete


@dataclass(frozen=True)
class Projection:
    """d3's Mercator: x = scale * lambda + tx, y = ty - scale * ln(tan(pi/4 + phi/2))."""

    scale: float
    translate: tuple[float, float]

    def project(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = _mercator(lon, lat)
        return self.scale * x + self.translate[0], self.translate[1] - self.scale * y

    def invert(self, x: float, y: float) -> tuple[float, float]:
        lam = (x - self.translate[0]) / self.scale
        merc = (self.translate[1] - y) / self.scale
        return math.degrees(lam), math.degrees(2 * math.atan(math.exp(merc)) - math.pi / 2)


def _mercator(lon: float, lat: float) -> tuple[float, float]:
    phi = math.radians(max(-85.0, min(85.0, lat)))
    return math.radians(lon), math.log(math.tan(math.pi / 4 + phi / 2))


def fit_mercator(points: Sequence[tuple[float, float]], width: float, height: float, margin: float) -> Projection:
    """The projection that shows every (lon, lat) inside width x height with `margin` px free
    at each side, centred, spanning at least MIN_SPAN_DEGREES."""
    xs, ys = zip(*(_mercator(lon, lat) for lon, lat in points), strict=True)
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    min_span = math.radians(MIN_SPAN_DEGREES)
    span_x, span_y = max(x1 - x0, min_span), max(y1 - y0, min_span * height / max(width, 1.0))
    room_w, room_h = max(width - 2 * margin, 10.0), max(height - 2 * margin, 10.0)
    scale = min(room_w / span_x, room_h / span_y)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Projection(scale=scale, translate=(width / 2 - scale * cx, height / 2 + scale * cy))


@dataclass(frozen=True)
class LabelSpot:
    """Where a label goes: its point's index and the (lon, lat) of its left-middle anchor."""

    index: int
    lon: float
    lat: float


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(points: Sequence[MapPoint], projection: Projection, width: float, height: float) -> list[LabelSpot]:
    """Labels that fit without touching each other, any circle or the plot's edge."""
    pixels = [projection.project(p.lon, p.lat) for p in points]
    circles = [
        (x - p.radius_px, y - p.radius_px, x + p.radius_px, y + p.radius_px)
        for (x, y), p in zip(pixels, points, strict=True)
    ]
    taken: list[tuple[float, float, float, float]] = []
    spots: list[LabelSpot] = []
    for index in sorted(range(len(points)), key=lambda i: -points[i].weight):
        point = points[index]
        if not point.label:
            continue
        x, y = pixels[index]
        w, h, r = text_px(point.label, LABEL_CHAR_PX), LABEL_HEIGHT_PX, point.radius_px + LABEL_GAP_PX
        for left, top in ((x + r, y - h / 2), (x - r - w, y - h / 2), (x - w / 2, y - r - h), (x - w / 2, y + r)):
            box = (left, top, left + w, top + h)
            if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
                continue
            others = (c for i, c in enumerate(circles) if i != index)
            if any(_overlaps(box, other) for other in taken) or any(_overlaps(box, c) for c in others):
                continue
            taken.append(box)
            lon, lat = projection.invert(left, top + h / 2)
            spots.append(LabelSpot(index=index, lon=lon, lat=lat))
            break
    return sorted(spots, key=lambda spot: spot.index)
