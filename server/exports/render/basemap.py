"""Country outlines for maps, offline, from the `world-atlas` package (Natural Earth, public
domain; the package is ISC), installed with the project's npm dependencies (node_modules/; `make
bootstrap` runs `npm ci`) or found at TESSERA_BASEMAP_DIR.

The TopoJSON is decoded here once per process (quantized, delta-encoded arcs to GeoJSON) with each
country's bounding box, so a map inlines only the countries its view touches: a map of two
hospitals in Manchester carries the British Isles, not the world. Without the package a map is
drawn as before, on a graticule (never an export failure).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pycountry

__all__ = ["Country", "basemap_dir", "countries", "countries_in", "country_index"]

log = logging.getLogger(__name__)

# Natural Earth 1:50m for views narrower than this many degrees, 1:110m for wider ones.
DETAILED_BELOW_DEGREES = 12.0


@dataclass(frozen=True)
class Country:
    id: str  # ISO 3166-1 numeric ("826"), as world-atlas carries it
    name: str  # Natural Earth's English name ("United Kingdom")
    geometry: dict[str, Any]  # GeoJSON Polygon or MultiPolygon
    bbox: tuple[float, float, float, float]  # west, south, east, north
    # The bounding box of its largest polygon: what a map fits to (France, not French Guiana).
    main_bbox: tuple[float, float, float, float]

    def feature(self, properties: dict[str, object] | None = None) -> dict[str, Any]:
        return {"type": "Feature", "id": self.id, "properties": properties or {}, "geometry": self.geometry}


def basemap_dir() -> Path | None:
    configured = os.environ.get("TESSERA_BASEMAP_DIR")
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parents[3] / "node_modules" / "world-atlas")
    for candidate in candidates:
        if (candidate / "countries-110m.json").is_file():
            return candidate
    return None


def _decode_arcs(topology: dict[str, Any]) -> list[list[tuple[float, float]]]:
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def _ring(indexes: list[int], arcs: list[list[tuple[float, float]]]) -> list[list[float]]:
    ring: list[list[float]] = []
    for index in indexes:
        points = arcs[index] if index >= 0 else arcs[~index][::-1]
        # Consecutive arcs share their joining point.
        ring.extend([list(p) for p in (points[1:] if ring else points)])
    return ring


def _area(ring: list[list[float]]) -> float:
    """A ring's planar area in square degrees (shoelace), enough to tell the largest polygon."""
    return abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, ring[1:] + ring[:1], strict=True))) / 2


@cache
def countries(detail: str) -> tuple[Country, ...]:
    """Every country at `detail` ("50m" or "110m"); () without the package."""
    folder = basemap_dir()
    if folder is None:
        log.warning("no basemap: the world-atlas package is not installed (npm ci) nor TESSERA_BASEMAP_DIR set")
        return ()
    topology = json.loads((folder / f"countries-{detail}.json").read_text(encoding="utf-8"))
    arcs = _decode_arcs(topology)
    out = []
    for geometry in topology["objects"]["countries"]["geometries"]:
        kind = geometry.get("type")
        if kind == "Polygon":
            polygons = [[_ring(ring, arcs) for ring in geometry["arcs"]]]
        elif kind == "MultiPolygon":
            polygons = [[_ring(ring, arcs) for ring in polygon] for polygon in geometry["arcs"]]
        else:
            continue
        xs = [p[0] for polygon in polygons for ring in polygon for p in ring]
        ys = [p[1] for polygon in polygons for ring in polygon for p in ring]
        if not xs:
            continue
        main = max(polygons, key=lambda polygon: _area(polygon[0]))[0]
        out.append(
            Country(
                id=str(geometry.get("id", "")),
                name=str(geometry.get("properties", {}).get("name", "")),
                geometry={"type": "MultiPolygon", "coordinates": polygons},
                bbox=(min(xs), min(ys), max(xs), max(ys)),
                main_bbox=(
                    min(p[0] for p in main),
                    min(p[1] for p in main),
                    max(p[0] for p in main),
                    max(p[1] for p in main),
                ),
            )
        )
    return tuple(out)


def _detail(span_degrees: float) -> str:
    return "50m" if span_degrees < DETAILED_BELOW_DEGREES else "110m"


def countries_in(west: float, south: float, east: float, north: float) -> list[Country]:
    """The countries whose bounding box meets the view, at a detail fit for its size."""
    chosen = countries(_detail(max(east - west, north - south)))
    return [c for c in chosen if c.bbox[0] <= east and c.bbox[2] >= west and c.bbox[1] <= north and c.bbox[3] >= south]


@cache
def country_index(detail: str) -> dict[str, Country]:
    """Countries by ISO 3166-1 code (numeric as "826" or zero-padded, alpha-2 "gb", alpha-3
    "gbr") and by lower-cased name (Natural Earth's, then ISO's short, official and common names)."""
    index: dict[str, Country] = {}
    for country in countries(detail):
        if country.id:
            index[country.id.zfill(3)] = country
            index[country.id.lstrip("0") or "0"] = country
        index[country.name.lower()] = country
    for entry in pycountry.countries:
        found = index.get(entry.numeric)
        if found is None:
            continue
        names = (getattr(entry, attribute, "") for attribute in ("name", "official_name", "common_name"))
        for key in (entry.alpha_2, entry.alpha_3, *names):
            if key:
                # Natural Earth's own names come first: ISO's never displace them.
                index.setdefault(key.lower(), found)
    return index
