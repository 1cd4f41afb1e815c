"""Where a chart's legend and labels go, decided before Vega draws it, so the plot keeps its card.

Vega-Lite lays a chart out for a fixed box (`autosize: fit`): whatever the legend and axes take
is taken from the plot. These helpers estimate text widths (DejaVu Sans at the chart's font
sizes, generously) and choose:
- the legend's side: at the right when that leaves the plot more room than a legend above it,
  with labels cut (Vega ends them with an ellipsis) so it never takes more than a third of the
  width or height;
- category labels: horizontal when they fit their band, else at an angle, always cut to a limit
  so they never run into each other (`labelOverlap` drops the ones that still would);
- axis titles cut to the plot's length, so a rotated y title never rises into the card's title.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AXIS_BAND_PX",
    "LegendPlan",
    "category_axis",
    "legend_plan",
    "text_px",
]

# Average advance of an 11 px DejaVu Sans glyph (generous: estimates must not undershoot).
CHAR_PX = 6.8
LEGEND_SYMBOL_PX = 18.0
LEGEND_ROW_PX = 17.0
LEGEND_COLUMN_GAP_PX = 12.0
# What an axis takes across the plot: ticks, labels and its title.
AXIS_BAND_PX = 42.0
MIN_LABEL_PX = 40.0
ANGLED_LABEL_PX = 90.0
UPRIGHT_LABEL_PX = 70.0
# Added to an estimated label width so Vega, measuring for itself, does not cut what fits.
LABEL_SLACK_PX = 6.0


def text_px(text: str, char_px: float = CHAR_PX) -> float:
    """Estimated width of `text` in px: East Asian wide characters count twice."""
    return char_px * sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@dataclass(frozen=True)
class LegendPlan:
    """A legend's Vega-Lite properties and the room it takes from the plot."""

    spec: dict[str, Any]
    width_px: float
    height_px: float


def legend_plan(labels: Sequence[str], width: float, height: float) -> LegendPlan:
    """The legend for these series labels in a chart box of width x height: at the right or on
    top, whichever leaves the larger plot, labels cut to fit."""
    longest = max((text_px(label) for label in labels), default=0.0) + LABEL_SLACK_PX
    count = max(len(labels), 1)
    # At the right: one column, as wide as the longest label, at most a third of the width.
    right_limit = max(MIN_LABEL_PX, min(longest, width / 3 - LEGEND_SYMBOL_PX))
    right_width = LEGEND_SYMBOL_PX + right_limit + 8
    right_rows_fit = max(1, int((height - 8) // LEGEND_ROW_PX))
    right_columns = math.ceil(count / right_rows_fit)
    right_width *= right_columns
    right_area = max(width - right_width, 0.0) * height
    # On top: as many columns as fit the width, labels cut to at most 160 px.
    top_limit = max(MIN_LABEL_PX, min(longest, 160.0))
    entry = LEGEND_SYMBOL_PX + top_limit + LEGEND_COLUMN_GAP_PX
    columns = max(1, min(count, int(width // entry)))
    rows = math.ceil(count / columns)
    top_height = rows * LEGEND_ROW_PX + 6
    top_area = width * max(height - top_height, 0.0)
    if right_area >= top_area:
        spec = {
            "orient": "right",
            "title": None,
            "symbolType": "circle",
            "labelLimit": round(right_limit),
            "columns": right_columns,
            "rowPadding": 2,
            "offset": 8,
        }
        return LegendPlan(spec, right_width + 8, 0.0)
    spec = {
        "orient": "top",
        "direction": "horizontal",
        "title": None,
        "symbolType": "circle",
        "labelLimit": round(top_limit),
        "columns": columns,
        "rowPadding": 2,
        "offset": 4,
    }
    return LegendPlan(spec, 0.0, top_height)


def category_axis(labels: Sequence[str], length: float, title_room: float) -> dict[str, Any]:
    """Axis properties for categories along a `length` px axis: labels horizontal when the
    longest fits its band, else at -40 degrees; always cut to a limit; the title cut to the plot."""
    count = max(len(set(labels)), 1)
    band = length / count
    longest = max((text_px(label) for label in labels), default=0.0)
    axis: dict[str, Any] = {
        "titleLimit": max(MIN_LABEL_PX, round(title_room)),
        "labelOverlap": "greedy",
        "labelSeparation": 3,
    }
    if longest <= band - 4:
        axis.update({"labelAngle": 0, "labelLimit": round(band)})
    elif longest <= 2 * band - 4:
        # Short labels (hours, codes): level, and every other one dropped where they would touch.
        axis.update({"labelAngle": 0, "labelLimit": round(2 * band)})
    elif band >= ANGLED_LABEL_PX + 10:
        # At -40 degrees a label cut to ANGLED_LABEL_PX spans its bounding box across (as Vega tests overlap).
        axis.update({"labelAngle": -40, "labelAlign": "right", "labelLimit": round(min(longest, ANGLED_LABEL_PX))})
    else:
        # Upright labels take one line's height across: every category keeps its label.
        axis.update(
            {
                "labelAngle": -90,
                "labelAlign": "right",
                "labelBaseline": "middle",
                "labelLimit": round(min(longest, UPRIGHT_LABEL_PX)),
            }
        )
    return axis
