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

`Room` sizes the text to the chart's box, so that the plot keeps at least 60% of its card on
small cards too: smaller fonts, no axis titles and fewer ticks there, value labels drawn inside
the plot (above their grid lines, as print charts do) instead of in a band beside it, and a
legend that is dropped when even its compact form would take too much.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dashboard.v1 import widget_pb2

__all__ = [
    "AXIS_BAND_PX",
    "LegendPlan",
    "Room",
    "area_clear_of_value_labels",
    "category_axis",
    "clear_of_value_labels",
    "legend_plan",
    "position_axis",
    "text_px",
    "value_axis",
    "value_label_px",
]

# Average advance of an 11 px DejaVu Sans glyph (generous: estimates must not undershoot).
CHAR_PX = 6.8
LEGEND_SYMBOL_PX = 18.0
LEGEND_ROW_PX = 17.0
LEGEND_COLUMN_GAP_PX = 12.0
# What an axis takes across the plot: ticks, labels and its title.
AXIS_BAND_PX = 42.0
MIN_LABEL_PX = 40.0
ONE_ROW_MIN_LABEL_PX = 60.0
# Level category labels cut to their band need room for this many characters (else upright).
LEVEL_LABEL_MIN_CHARS = 8
# Cut level labels leave this much of their band free: Vega drops a label that comes closer
# than `labelSeparation` to its neighbour, and its measure may differ from our estimate.
LEVEL_LABEL_GAP_PX = 12.0
UPRIGHT_LABEL_PX = 70.0
# Added to an estimated label width so Vega, measuring for itself, does not cut what fits.
LABEL_SLACK_PX = 6.0
# Below these body sizes a chart is "tiny" (9 px text, no axis titles, sparse ticks); axis
# titles need both TITLE_MIN sizes.
TINY_WIDTH_PX = 200.0
TINY_HEIGHT_PX = 150.0
TITLE_MIN_WIDTH_PX = 360.0
TITLE_MIN_HEIGHT_PX = 240.0
# A legend may take at most this share of the chart's box, else it is dropped.
LEGEND_MAX_SHARE = 0.2
# Vega-Lite's band padding between bars, as a share of a band's step.
BAR_PADDING_INNER = 0.1
# Bars give way to the value labels at most this far, in steps; beyond it they keep their width.
MAX_BAR_OUTER_PADDING = 1.5
# Vega-Lite's padding of a point scale at each end, in steps.
POINT_PADDING = 0.5
# Category labels (at an angle or upright) take at most this share of the plot's height.
CATEGORY_DEPTH_SHARE = 0.15


@dataclass(frozen=True)
class Room:
    """A chart's box in CSS px and the text density it allows."""

    width: float
    height: float

    @property
    def tiny(self) -> bool:
        return self.width < TINY_WIDTH_PX or self.height < TINY_HEIGHT_PX

    @property
    def titles(self) -> bool:
        return self.width >= TITLE_MIN_WIDTH_PX and self.height >= TITLE_MIN_HEIGHT_PX

    @property
    def font_px(self) -> int:
        return 9 if self.tiny else 10 if not self.titles else 11

    @property
    def char_px(self) -> float:
        return CHAR_PX * self.font_px / 11

    @property
    def axis_band_px(self) -> float:
        """What a band of axis labels (and its title, where shown) takes across the plot."""
        return self.font_px + 8 + (self.font_px + 4 if self.titles else 0)

    def title(self, text: str | None) -> str | None:
        return text if self.titles else None


def value_axis(room: Room) -> dict[str, Any]:
    """A vertical value axis with its labels inside the plot, left-aligned just above their grid
    lines (the top one below its line): no band of labels beside the plot."""
    return {
        "labelAlign": "left",
        # Above its line, but the top label below its own (datum.index runs 0 to 1 up the axis).
        "labelBaseline": {"condition": {"test": "datum.index == 1", "value": "top"}, "value": "bottom"},
        "labelPadding": -2,
        "labelFontSize": room.font_px,
        "labelLimit": round(max(MIN_LABEL_PX, room.width / 3)),
        "tickSize": 0,
        "domain": False,
        "tickCount": max(2, min(6, int(room.height / 45))),
    }


def value_label_px(
    records: Sequence[dict[str, object]], stacked: bool, fmt: widget_pb2.ValueFormat | None, room: Room
) -> float:
    """About how wide the value axis's widest label is (its top, as `fmt` shows it)."""
    totals: dict[object, float] = {}
    for record in records:
        y = record["y"]
        if isinstance(y, int | float):
            key = record["x"] if stacked else id(record)
            totals[key] = totals.get(key, 0.0) + abs(float(y))
    top = max(totals.values(), default=0.0)
    decimals = fmt.decimals if fmt is not None and fmt.HasField("decimals") else 0
    text = f"{top:,.{decimals}f}"
    if fmt is not None:
        text = fmt.prefix + text + fmt.suffix + ("%" if fmt.style == fmt.STYLE_PERCENT else "")
        if fmt.style == fmt.STYLE_CURRENCY:
            text += fmt.currency_code or "$"
    return text_px(text, room.char_px) + LABEL_SLACK_PX


def clear_of_value_labels(label_px: float, bands: int, plot_width: float) -> dict[str, Any]:
    """The band scale of vertical bars whose value labels sit inside the plot at its left: the
    bars moved right (all the outer padding at the start) so the first bar does not hide them."""
    if plot_width <= 2 * label_px:
        return {}
    outer = label_px * (bands - BAR_PADDING_INNER) / (2 * (plot_width - label_px))
    if outer > MAX_BAR_OUTER_PADDING:
        return {}
    return {"paddingInner": BAR_PADDING_INNER, "paddingOuter": max(outer, BAR_PADDING_INNER / 2), "align": 1}


def area_clear_of_value_labels(
    x_encoding: dict[str, Any], label_px: float, points: int, plot_width: float
) -> dict[str, Any]:
    """The x scale of an area chart starting right of the value labels inside the plot: padding
    in px on a continuous scale (at both ends, as Vega pads them), the points moved right on an
    ordinal one (all the padding at the start)."""
    if plot_width <= 2 * label_px:
        return {}
    if x_encoding.get("type") != "ordinal":
        return {"padding": round(label_px)}
    if points < 2:
        return {}
    padding = label_px * (points - 1) / (2 * (plot_width - label_px))
    if padding <= POINT_PADDING:
        return {}
    return {"padding": padding, "align": 1}


def position_axis(room: Room) -> dict[str, Any]:
    """A continuous horizontal axis (time, numbers): ticks spaced for the width, the end labels
    kept inside the plot's span."""
    return {
        "labelFontSize": room.font_px,
        "labelFlush": True,
        "labelOverlap": "greedy",
        "labelPadding": 2,
        "tickSize": 0 if room.tiny else 3,
        "tickCount": max(2, min(10, int(room.width / 80))),
    }


def text_px(text: str, char_px: float = CHAR_PX) -> float:
    """Estimated width of `text` in px: East Asian wide characters count twice."""
    return char_px * sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@dataclass(frozen=True)
class LegendPlan:
    """A legend's Vega-Lite properties and the room it takes from the plot."""

    spec: dict[str, Any]
    width_px: float
    height_px: float
    shown: bool = True


def legend_plan(labels: Sequence[str], width: float, height: float, room: Room | None = None) -> LegendPlan:
    """The legend for these series labels in a chart box of width x height: at the right or on
    top, whichever leaves the larger plot, labels cut to fit; none when that would still take more
    than LEGEND_MAX_SHARE of the box (tiny cards: the colours stay, the key goes)."""
    plan = _legend_plan(labels, width, height, room or Room(width, height))
    taken = plan.width_px * height + plan.height_px * width
    if taken > LEGEND_MAX_SHARE * width * height:
        return LegendPlan({}, 0.0, 0.0, shown=False)
    return plan


def _legend_plan(labels: Sequence[str], width: float, height: float, room: Room) -> LegendPlan:
    char_px = room.char_px
    row_px = room.font_px + 4
    longest = max((text_px(label, char_px) for label in labels), default=0.0) + LABEL_SLACK_PX
    count = max(len(labels), 1)
    # At the right: one column, as wide as the longest label, at most a third of the width.
    right_limit = max(MIN_LABEL_PX, min(longest, width / 3 - LEGEND_SYMBOL_PX))
    right_width = LEGEND_SYMBOL_PX + right_limit + 8
    right_rows_fit = max(1, int((height - 8) // row_px))
    right_columns = math.ceil(count / right_rows_fit)
    right_width *= right_columns
    right_area = max(width - right_width, 0.0) * height
    # On top: as many columns as fit the width, labels cut to at most 160 px.
    top_limit = max(MIN_LABEL_PX, min(longest, 160.0))
    # One row of labels cut a little reads better, and costs less height, than several rows.
    one_row = width / count - LEGEND_SYMBOL_PX - LEGEND_COLUMN_GAP_PX
    if one_row >= min(longest, ONE_ROW_MIN_LABEL_PX):
        top_limit = min(longest, one_row)
    entry = LEGEND_SYMBOL_PX + top_limit + LEGEND_COLUMN_GAP_PX
    columns = max(1, min(count, int(width // entry)))
    rows = math.ceil(count / columns)
    top_height = rows * row_px + 4
    top_area = width * max(height - top_height, 0.0)
    if right_area >= top_area:
        spec = {
            "orient": "right",
            "title": None,
            "symbolType": "circle",
            "labelLimit": round(right_limit),
            "labelFontSize": room.font_px,
            "symbolSize": 40 if room.tiny else 60,
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
        "labelFontSize": room.font_px,
        "symbolSize": 40 if room.tiny else 60,
        "columns": columns,
        "rowPadding": 1,
        "offset": 2,
        "padding": 0,
    }
    return LegendPlan(spec, 0.0, top_height)


def category_axis(labels: Sequence[str], length: float, title_room: float, room: Room | None = None) -> dict[str, Any]:
    """Axis properties for categories along a `length` px axis: labels horizontal when the
    longest fits its band, else at -40 degrees or upright, cut so that they never take more than
    CATEGORY_DEPTH_SHARE of the chart's height; the title cut to the plot."""
    room = room or Room(length + AXIS_BAND_PX, 10 * UPRIGHT_LABEL_PX)
    count = max(len(set(labels)), 1)
    band = length / count
    longest = max((text_px(label, room.char_px) for label in labels), default=0.0)
    depth = max(MIN_LABEL_PX, CATEGORY_DEPTH_SHARE * room.height)
    upright = min(longest, UPRIGHT_LABEL_PX, depth)
    axis: dict[str, Any] = {
        "titleLimit": max(MIN_LABEL_PX, round(title_room)),
        "labelOverlap": "greedy",
        "labelSeparation": 3,
        "labelFontSize": room.font_px,
    }
    if longest <= band - 4:
        axis.update({"labelAngle": 0, "labelLimit": round(band)})
    elif longest <= 2 * band - 4 and not room.tiny:
        # Short labels (hours, codes): level, and every other one dropped where they would touch.
        axis.update({"labelAngle": 0, "labelLimit": round(2 * band)})
    elif room.tiny or band - LEVEL_LABEL_GAP_PX >= min(LEVEL_LABEL_MIN_CHARS * room.char_px, 0.8 * upright):
        # Room for the start of every label (about as much as an upright label could show): level
        # and cut with an ellipsis, which reads better than words on end and takes one line.
        axis.update({"labelAngle": 0, "labelLimit": round(max(band - LEVEL_LABEL_GAP_PX, 3 * room.char_px))})
    else:
        # Narrow bands: upright labels take one line's height across, so every category keeps
        # its label, cut to the depth the plot can spare.
        axis.update(
            {
                "labelAngle": -90,
                "labelAlign": "right",
                "labelBaseline": "middle",
                "labelLimit": round(upright),
            }
        )
    return axis
