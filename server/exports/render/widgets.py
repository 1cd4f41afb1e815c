"""HTML of one widget: the card around it, KPI and table bodies, error and empty states.

Every user string goes through `esc` (html.escape with quotes). Sizes that the layout needs
(card chrome, table row heights) live here beside the CSS rules that produce them (style.css).
"""

from __future__ import annotations

import html
import math
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from dashboard.v1 import common_pb2, widget_pb2
from server.exports.render.columns import WidgetConfigError, find_column
from server.exports.render.values import (
    NUMERIC_TYPES,
    TEMPORAL_TYPES,
    cell_texts,
    exact_decimal,
    signed_text,
)
from tessera_client.formats import column_display, effective_format

__all__ = [
    "Chrome",
    "TableBody",
    "card",
    "chrome",
    "empty_body",
    "error_body",
    "esc",
    "kpi_body",
    "table_body",
]

# Card geometry, as style.css draws it (.widget, .widget-head, .widget-note).
CARD_BORDER_PX = 1
CARD_PAD_Y_PX = 6
CARD_PAD_X_PX = 10
TITLE_LINE_PX = 18
TITLE_CHAR_PX = 8.6
DESCRIPTION_LINE_PX = 16
DESCRIPTION_CHAR_PX = 7.0
HEAD_GAP_PX = 4
NOTE_LINE_PX = 20
# Small cards (.widget.compact) trade padding and title size for plot: below either size a 14 px
# title and 8/12 px padding would leave the plot under 60% of the card.
COMPACT_WIDTH_PX = 260
COMPACT_HEIGHT_PX = 220
COMPACT_PAD_Y_PX = 4
COMPACT_PAD_X_PX = 6
COMPACT_TITLE_LINE_PX = 16
COMPACT_TITLE_CHAR_PX = 7.4
COMPACT_HEAD_GAP_PX = 2
# Table rows (.data-table): 16 px lines, 4 px padding above and below, 1 px rule.
TABLE_LINE_PX = 16
TABLE_ROW_EXTRA_PX = 9
TABLE_HEAD_PX = 30
# Average advance of a 12 px DejaVu Sans glyph, generously: estimates must not undershoot.
TABLE_CHAR_PX = 7.4
TABLE_CELL_PAD_X_PX = 16
TABLE_ESTIMATE_MARGIN = 1.1
NULL_TEXT = "—"


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def text_width(text: str) -> int:
    """Width in average Latin glyphs: East Asian wide and full-width characters count twice."""
    return len(text) + sum(1 for char in text if unicodedata.east_asian_width(char) in "WF")


@dataclass(frozen=True)
class Chrome:
    """What a card takes around its body, in CSS pixels."""

    width: float
    height: float
    compact: bool = False


def is_compact(box_width: float, box_height: float) -> bool:
    return box_width < COMPACT_WIDTH_PX or box_height < COMPACT_HEIGHT_PX


def chrome(widget: widget_pb2.Widget, box_width: float, note: bool, box_height: float | None = None) -> Chrome:
    """The card's chrome for a box `box_width` wide (compact when the box is small). Titles wrap
    (a cut title would be lost text); descriptions are clamped to two lines."""
    compact = box_height is not None and is_compact(box_width, box_height)
    pad_x, pad_y = (COMPACT_PAD_X_PX, COMPACT_PAD_Y_PX) if compact else (CARD_PAD_X_PX, CARD_PAD_Y_PX)
    line_px, char_px = (COMPACT_TITLE_LINE_PX, COMPACT_TITLE_CHAR_PX) if compact else (TITLE_LINE_PX, TITLE_CHAR_PX)
    width = 2 * (CARD_BORDER_PX + pad_x)
    inner = max(box_width - width, 1.0)
    title_lines = sum(max(1, math.ceil(text_width(line) * char_px / inner)) for line in widget.title.split("\n"))
    gap = COMPACT_HEAD_GAP_PX if compact else HEAD_GAP_PX
    height = 2 * (CARD_BORDER_PX + pad_y) + title_lines * line_px + gap
    if widget.description:
        lines = math.ceil(text_width(widget.description) * DESCRIPTION_CHAR_PX / inner)
        height += min(2, lines) * DESCRIPTION_LINE_PX
    if note:
        height += NOTE_LINE_PX
    return Chrome(width=width, height=height, compact=compact)


def card(
    widget: widget_pb2.Widget,
    kind: str,
    body: str,
    note: str | None = None,
    accent: str | None = None,
    compact: bool = False,
) -> str:
    """The widget's card: title (and description) above its body, an optional note below.
    `kind` and `accent` are ours (a class name and a checked #rrggbb colour), never user text."""
    style = f' style="--threshold:{accent}"' if accent else ""
    extra = (" widget-accent" if accent else "") + (" compact" if compact else "")
    parts = [
        f'<section class="widget kind-{kind}{extra}"{style} data-widget-id="{esc(widget.id)}">',
        '<header class="widget-head">',
        f'<h2 class="widget-title" dir="auto">{esc(widget.title)}</h2>',
    ]
    if widget.description:
        parts.append(f'<p class="widget-description" dir="auto">{esc(widget.description)}</p>')
    parts.append("</header>")
    parts.append(f'<div class="widget-body">{body}</div>')
    if note:
        parts.append(f'<p class="widget-note">{esc(note)}</p>')
    parts.append("</section>")
    return "".join(parts)


def error_body(heading: str, message: str) -> str:
    return (
        '<div class="widget-error" role="alert">'
        f'<p class="widget-error-title">{esc(heading)}</p>'
        f'<p class="widget-error-message" dir="auto">{esc(message)}</p>'
        "</div>"
    )


def empty_body() -> str:
    return '<div class="widget-empty">No data</div>'


# ---------------------------------------------------------------------------------------------
# KPI


def _hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def readable_on_white(color: str) -> str:
    """The threshold colour, darkened until text in it reads on white (contrast at least 3:1)."""
    rgb = _hex_rgb(color)
    while (1.05 / (_luminance(rgb) + 0.05)) < 3.0:
        rgb = (int(rgb[0] * 0.85), int(rgb[1] * 0.85), int(rgb[2] * 0.85))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _checked_color(color: str, field: str) -> str:
    if len(color) != 7 or color[0] != "#" or any(c not in "0123456789abcdefABCDEF" for c in color[1:]):
        raise WidgetConfigError(field, f"{color!r} is not a #rrggbb colour")
    return color.lower()


def threshold_color(config: widget_pb2.KpiConfig, value: Decimal | None) -> str | None:
    """The colour of the highest threshold at or below the value (thresholds are lower bounds)."""
    chosen: tuple[float, str] | None = None
    for index, threshold in enumerate(config.thresholds):
        color = _checked_color(threshold.color, f"kpi.thresholds[{index}].color")
        if not math.isfinite(threshold.value):
            raise WidgetConfigError(f"kpi.thresholds[{index}].value", "must be a finite number")
        reached = value is not None and value >= Decimal(repr(threshold.value))
        if reached and (chosen is None or threshold.value >= chosen[0]):
            chosen = (threshold.value, color)
    return chosen[1] if chosen else None


@dataclass(frozen=True)
class KpiBody:
    html: str
    accent: str | None


def _kpi_format(config: widget_pb2.KpiConfig) -> widget_pb2.ValueFormat | None:
    return effective_format(
        config.value_format if config.HasField("value_format") else None,
        config.format if config.HasField("format") else None,
    )


def _comparison(
    config: widget_pb2.KpiConfig, frame: common_pb2.DataFrame, value: Decimal | None, time_zone: str
) -> str:
    column = find_column(frame, config.comparison_column, "kpi.comparison_column")
    text = cell_texts(column)[0]
    value_format = _kpi_format(config)
    if text is None:
        return '<p class="kpi-comparison kpi-flat">no comparison value</p>'
    base_text = column_display(column, value_format, time_zone)[0] or text
    base = exact_decimal(text) if column.type in NUMERIC_TYPES else None
    if value is None or base is None:
        return f'<p class="kpi-comparison kpi-flat" dir="auto">vs {esc(base_text)}</p>'
    delta = value - base
    direction, arrow = ("up", "▲") if delta > 0 else ("down", "▼") if delta < 0 else ("flat", "■")
    parts = [f'<span class="kpi-arrow">{arrow}</span> {esc(signed_text(delta, value_format))}']
    if base != 0:
        percent = (delta / abs(base) * 100).quantize(Decimal("0.1"))
        parts.append(f" ({'+' if percent > 0 else ''}{percent}%)")
    parts.append(f' <span class="kpi-base" dir="auto">vs {esc(base_text)}</span>')
    return f'<p class="kpi-comparison kpi-{direction}">{"".join(parts)}</p>'


def kpi_body(
    config: widget_pb2.KpiConfig, frame: common_pb2.DataFrame, width: float, height: float, time_zone: str = ""
) -> KpiBody:
    """The first row's value: exactly the frame's text without a format, formatted with one (a
    ValueFormat, else the older NumberFormat); coloured by thresholds; with the change against the
    comparison column when there is one. `width` and `height` are the body's room, which sizes
    the number."""
    column = find_column(frame, config.value_column, "kpi.value_column")
    text = cell_texts(column)[0]
    numeric = column.type in NUMERIC_TYPES
    value = exact_decimal(text) if numeric and text is not None else None
    shown = NULL_TEXT if text is None else (column_display(column, _kpi_format(config), time_zone)[0] or text)
    color = threshold_color(config, value)
    comparison = _comparison(config, frame, value, time_zone) if config.comparison_column else ""
    room = height - (22 if comparison else 0)
    size = max(12, min(56, int(room * 0.7), int(width / (0.72 * max(len(shown), 1)))))
    style = f"font-size:{size}px" + (f";color:{readable_on_white(color)}" if color else "")
    classes = "kpi-value kpi-null" if text is None else "kpi-value"
    value_html = f'<p class="{classes}" style="{style}" dir="auto">{esc(shown)}</p>'
    return KpiBody(html=f'<div class="kpi">{value_html}{comparison}</div>', accent=color)


# ---------------------------------------------------------------------------------------------
# Table


@dataclass(frozen=True)
class TableBody:
    html: str
    # The table's whole height as estimated (header and every row): decides whether it fits its box.
    height_px: float


def _sort_key(column: common_pb2.Column, text: str) -> tuple[int, Any]:
    """Typed order: numbers by value (NaN after every number, as PostgreSQL sorts it), dates and
    timestamps by time (their ISO text), everything else by text."""
    if column.type in NUMERIC_TYPES:
        try:
            number = Decimal(text.replace("Infinity", "Inf"))
        except InvalidOperation:
            return (2, text)
        return (1, 0) if number.is_nan() else (0, number)
    return (0, text)


def _row_order(config: widget_pb2.TableConfig, frame: common_pb2.DataFrame) -> list[int]:
    rows = list(range(frame.row_count))
    if not config.sort_column:
        return rows
    column = find_column(frame, config.sort_column, "table.sort_column")
    texts = cell_texts(column)
    if column.type in TEMPORAL_TYPES:
        raw = column.date_values.values if column.HasField("date_values") else column.timestamp_values.values
        keyed: list[tuple[tuple[int, Any], int]] = [((0, raw[row]), row) for row in rows if texts[row] is not None]
    else:
        keyed = [(_sort_key(column, text), row) for row in rows if (text := texts[row]) is not None]
    keyed.sort(key=lambda item: item[0], reverse=config.sort_descending)
    # NULLs last whichever the direction: they are the least informative rows.
    return [row for _, row in keyed] + [row for row in rows if texts[row] is None]


def _table_columns(
    config: widget_pb2.TableConfig, frame: common_pb2.DataFrame
) -> list[tuple[common_pb2.Column, str, widget_pb2.ValueFormat | None]]:
    if not config.columns:
        return [(column, column.name, None) for column in frame.columns]
    out = []
    for index, spec in enumerate(config.columns):
        column = find_column(frame, spec.column, f"table.columns[{index}].column")
        value_format = effective_format(
            spec.value_format if spec.HasField("value_format") else None,
            spec.format if spec.HasField("format") else None,
        )
        out.append((column, spec.label or spec.column, value_format))
    return out


def _lines(text: str, width_px: float) -> int:
    per_line = max(1, int((width_px - TABLE_CELL_PAD_X_PX) / TABLE_CHAR_PX))
    return sum(max(1, math.ceil(text_width(part) / per_line)) for part in text.split("\n"))


def table_body(
    config: widget_pb2.TableConfig, frame: common_pb2.DataFrame, width: float, time_zone: str = ""
) -> TableBody:
    """Every row (the export is not paged like the screen), sorted as configured, numbers right
    aligned, values formatted by their column's format (timestamps to the second in the zone),
    masked values as given."""
    columns = _table_columns(config, frame)
    order = _row_order(config, frame)
    cell_width = width / max(len(columns), 1)
    head = []
    for column, label, _ in columns:
        classes = " ".join(c for c in ("num" if column.type in NUMERIC_TYPES else "", "masked" * column.masked) if c)
        head.append(f'<th scope="col" class="{classes}" dir="auto">{esc(label)}</th>')
    header_lines = max((_lines(label, cell_width) for _, label, _ in columns), default=1)
    height = TABLE_HEAD_PX + (header_lines - 1) * TABLE_LINE_PX
    texts = [column_display(column, value_format, time_zone) for column, _, value_format in columns]
    body: list[str] = []
    for row in order:
        cells = []
        lines = 1
        for (column, _, _), column_texts in zip(columns, texts, strict=True):
            text = column_texts[row]
            numeric = column.type in NUMERIC_TYPES
            if text is None:
                cells.append(f'<td class="null{" num" if numeric else ""}">{NULL_TEXT}</td>')
                continue
            shown = text
            lines = max(lines, _lines(shown, cell_width))
            if numeric:
                cells.append(f'<td class="num">{esc(shown)}</td>')
            else:
                masked = ' class="masked"' if column.masked else ""
                cells.append(f'<td dir="auto"{masked}>{esc(shown)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
        height += lines * TABLE_LINE_PX + TABLE_ROW_EXTRA_PX
    table = f'<table class="data-table"><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    # Column widths are the browser's to choose: pad the estimate so a table that "fits" does.
    return TableBody(html=table, height_px=height * TABLE_ESTIMATE_MARGIN)
