"""Series named at their ends, for line and area charts whose card has no room for a legend.

A small card drops the legend to keep its plot (`chart_layout.legend_plan`), but colours alone
cannot tell a reader which line is which. Such a chart gets a text layer instead: each series'
name at its last point (lines: just above it, in the series' colour on a white halo that keeps it
legible across other lines; stacked areas: in the middle of its band, in white), right-aligned so
it stays inside the plot. Labels that would
touch are moved apart vertically; when the plot is too short for all of them, none is drawn
rather than a pile of overlapping text.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.exports.render.chart_layout import Room

__all__ = ["end_labels"]

# Between two labels' middles at least this many lines of text: Vega rounds the value scale's
# domain up ("nice"), so the plot is a little more crowded than the data's own range says.
LABEL_LINES_APART = 1.6
# Labels keep this far from the plot's top and bottom edges.
EDGE_PX = 2.0
# A label takes at most this share of the plot's width (Vega ends it with an ellipsis).
LABEL_WIDTH_SHARE = 0.5

Record = dict[str, object]


@dataclass(frozen=True)
class _Label:
    series: str
    value: float  # where it points: the value of a line, the middle of a stacked band


def end_labels(
    records: Sequence[Record],
    series: Sequence[str],
    encoding: dict[str, Any],
    room: Room,
    plot: tuple[float, float],
    stacked: bool,
    last_bar: tuple[object, float] | None = None,
) -> dict[str, Any] | None:
    """The text layer naming each series at the chart's last x, or None when there is nothing to
    name or no room to name every series legibly. `encoding` is the chart's own (x and y are
    copied so both layers share one scale); `plot` is the plot's (width, height) in px. Stacked
    bars pass their last category and its band's width: the names go centred on its segments."""
    if len(series) < 2 or not records:
        return None
    last_x = last_bar[0] if last_bar else _last_x(records, ordinal=encoding["x"].get("type") == "ordinal")
    at_end = {str(r["s"]): float(y) for r in records if r["x"] == last_x and isinstance(y := r["y"], int | float)}
    if stacked:
        labels = _band_middles(series, at_end)
        low, high = _stacked_extent(records)
    else:
        labels = [_Label(s, at_end[s]) for s in series if s in at_end]
        ys = [float(y) for r in records if isinstance(y := r["y"], int | float)]
        low, high = min([0.0, *ys]), max([0.0, *ys])
    if not labels or high <= low:
        return None
    placed = _spread(labels, low, high, plot[1], room.font_px)
    if placed is None:
        return None
    x = copy.deepcopy(encoding["x"])
    y = {**copy.deepcopy(encoding["y"]), "stack": None}
    mark: dict[str, Any] = {
        "type": "text",
        "align": "right",
        "baseline": "middle" if stacked else "bottom",
        "dx": -4,
        "dy": 0 if stacked else -3,
        "fontSize": room.font_px,
        "fontWeight": "bold",
        "limit": round(max(24.0, plot[0] * LABEL_WIDTH_SHARE)),
    }
    if last_bar:
        mark.update({"align": "center", "dx": 0, "limit": round(max(12.0, last_bar[1] - 4))})
    layer_encoding: dict[str, Any] = {"x": x, "y": y, "text": {"field": "s", "type": "nominal"}}
    if stacked:
        mark["color"] = "#ffffff"
    else:
        # The halo: `clean_svg` paints a text's stroke under its glyphs.
        mark.update({"stroke": "#ffffff", "strokeWidth": 3, "strokeOpacity": 0.9, "strokeJoin": "round"})
        layer_encoding["color"] = {"field": "s", "type": "nominal", "sort": list(series), "legend": None}
    rows = [{"x": last_x, "y": y_at, "s": label.series} for label, y_at in placed]
    return {"data": {"values": rows}, "mark": mark, "encoding": layer_encoding}


def _last_x(records: Sequence[Record], ordinal: bool) -> object:
    """The x the chart ends at: the last category in the data's order, or the largest value."""
    if ordinal:
        return records[-1]["x"]
    xs = [x for r in records if isinstance(x := r["x"], int | float)]
    return max(xs) if xs else records[-1]["x"]


def _band_middles(series: Sequence[str], at_end: dict[str, float]) -> list[_Label]:
    """Each series' band at the last x, stacked in series order from zero (positives up,
    negatives down, as Vega stacks them): the label goes to the band's middle."""
    up = down = 0.0
    labels = []
    for name in series:
        value = at_end.get(name, 0.0)
        if value == 0:
            continue
        if value > 0:
            labels.append(_Label(name, up + value / 2))
            up += value
        else:
            labels.append(_Label(name, down + value / 2))
            down += value
    return labels


def _stacked_extent(records: Sequence[Record]) -> tuple[float, float]:
    ups: dict[object, float] = {}
    downs: dict[object, float] = {}
    for r in records:
        y = r["y"]
        if isinstance(y, int | float):
            sums = ups if y > 0 else downs
            sums[r["x"]] = sums.get(r["x"], 0.0) + float(y)
    return min([0.0, *downs.values()]), max([0.0, *ups.values()])


def _spread(
    labels: Sequence[_Label], low: float, high: float, plot_height: float, font_px: int
) -> list[tuple[_Label, float]] | None:
    """Labels moved apart so that no two are closer than a line of text, inside the plot; None
    when they cannot all fit."""
    gap = font_px * LABEL_LINES_APART
    usable = plot_height - 2 * EDGE_PX - gap
    if usable <= 0 or gap * (len(labels) - 1) > usable:
        return None
    per_px = (high - low) / plot_height
    ordered = sorted(labels, key=lambda label: label.value)
    # Bottom up: each label at its own height, or a gap above the one below it.
    floor = EDGE_PX + gap / 2
    heights = []
    for label in ordered:
        px = max((label.value - low) / per_px, floor)
        heights.append(px)
        floor = px + gap
    # Top down: whatever rose past the top comes back down, pushing the ones below it.
    ceiling = plot_height - EDGE_PX - gap / 2
    for index in range(len(heights) - 1, -1, -1):
        heights[index] = min(heights[index], ceiling)
        ceiling = heights[index] - gap
    if heights and heights[0] < EDGE_PX + gap / 2 - 1e-9:
        return None
    return [(label, low + px * per_px) for label, px in zip(ordered, heights, strict=True) if math.isfinite(px)]
