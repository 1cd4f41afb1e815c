"""The export page: one self-contained HTML document for Chromium to print (PDF) or capture (PNG).

The worker renders widgets one at a time (`PageRenderer.widget`, CPU-bound: call it in a thread;
it reports "rendering widget i of n" between calls), then assembles the page
(`PageRenderer.document`). The document carries all data already drawn: no script, no external
URL, and a Content-Security-Policy that would refuse any fetch if one slipped in.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from dashboard.v1 import common_pb2, dashboard_pb2, export_pb2, widget_pb2
from server.exports.options import PAPER_MM, geometry, normalized
from server.exports.render import charts, maps
from server.exports.render.charts import ChartError
from server.exports.render.columns import WidgetConfigError
from server.exports.render.layout import (
    DEFAULT_GAP_PX,
    Grid,
    Placement,
    band_height_rows,
    bands,
    grid_for,
    placement_of,
)
from server.exports.render.values import parameter_text, utc_text
from server.exports.render.widgets import (
    card,
    chrome,
    empty_body,
    error_body,
    esc,
    is_compact,
    kpi_body,
    table_body,
    text_width,
)

__all__ = ["CSP", "PageRenderer", "PageSpec", "RenderedWidget", "WidgetContent"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:"


@cache
def _stylesheet() -> str:
    return resources.files("server.exports.render").joinpath("style.css").read_text(encoding="utf-8")


@dataclass(frozen=True)
class WidgetContent:
    """One widget and what its data came to: a frame, or the error message its data failed with."""

    widget: widget_pb2.Widget
    frame: common_pb2.DataFrame | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.frame is None) == (self.error is None):
            raise ValueError("WidgetContent needs exactly one of frame and error")


@dataclass(frozen=True)
class RenderedWidget:
    """A widget's HTML (its card) and its grid placement; the page decides the band it goes in."""

    widget_id: str
    placement: Placement
    html: str
    # For a table with rows: the card's estimated natural height. A table taller than its box, or
    # in a band taller than a page, leaves the grid and flows over pages, breaking between rows.
    table_height_px: float | None = None


@dataclass(frozen=True)
class PageSpec:
    dashboard: dashboard_pb2.Dashboard
    version: int
    filters: Mapping[str, common_pb2.ParameterValue]
    generated_at: dt.datetime
    format: int  # export_pb2.ExportFormat
    options: export_pb2.ExportOptions = field(default_factory=export_pb2.ExportOptions)


class PageRenderer:
    """Renders the widgets and then the page of one export."""

    def __init__(self, spec: PageSpec) -> None:
        if spec.format not in (export_pb2.EXPORT_FORMAT_PDF, export_pb2.EXPORT_FORMAT_PNG):
            raise ValueError(f"format: must be EXPORT_FORMAT_PDF or EXPORT_FORMAT_PNG, got {spec.format}")
        self._generated = utc_text(spec.generated_at)
        self.spec = spec
        self.options = normalized(spec.options)
        self.grid: Grid = grid_for(spec.dashboard, self.options, spec.format, self._header_allowance())
        self._chart_ids = itertools.count(1)
        # The dashboard's time zone for timestamps (a widget's format may name its own).
        self.time_zone = spec.dashboard.layout.time_zone

    # -- widgets ---------------------------------------------------------------------------------

    def widget(self, content: WidgetContent) -> RenderedWidget:
        """One widget's card, sized for its box on this page's grid."""
        widget = content.widget
        placement = placement_of(widget)
        width, height = self.grid.box(placement)
        kind = widget.WhichOneof("config") or "unknown"
        compact = is_compact(width, height)
        if content.error is not None:
            html = card(
                widget, "error", error_body("This widget's data could not be loaded", content.error), compact=compact
            )
            return RenderedWidget(widget.id, placement, html)
        frame = content.frame
        assert frame is not None
        if kind == "unknown":
            html = card(
                widget, "error", error_body("This widget cannot be drawn", "it has no configuration"), compact=compact
            )
            return RenderedWidget(widget.id, placement, html)
        if frame.row_count == 0:
            return RenderedWidget(widget.id, placement, card(widget, kind, empty_body(), compact=compact))
        note = (
            f"Showing the first {frame.row_count:,} rows: the result was cut at the row limit."
            if frame.truncated
            else None
        )
        around = chrome(widget, width, bool(note), height)
        inner_width, inner_height = width - around.width, height - around.height
        try:
            if kind == "kpi":
                kpi = kpi_body(widget.kpi, frame, inner_width, inner_height, self.time_zone)
                return RenderedWidget(
                    widget.id, placement, card(widget, kind, kpi.html, note, accent=kpi.accent, compact=compact)
                )
            if kind == "table":
                table = table_body(widget.table, frame, inner_width, self.time_zone)
                html = card(widget, kind, table.html, note, compact=compact)
                return RenderedWidget(widget.id, placement, html, table_height_px=table.height_px + around.height)
            svg = charts.render_svg(self._chart_spec(widget, frame, inner_width, inner_height), self._chart_id())
            body = f'<div class="chart">{svg}</div>'
            return RenderedWidget(widget.id, placement, card(widget, kind, body, note, compact=compact))
        except (WidgetConfigError, ChartError) as error:
            html = card(widget, "error", error_body("This widget cannot be drawn", str(error)), compact=compact)
            return RenderedWidget(widget.id, placement, html)

    def _chart_id(self) -> str:
        return f"chart{next(self._chart_ids)}"

    def _chart_spec(
        self, widget: widget_pb2.Widget, frame: common_pb2.DataFrame, width: float, height: float
    ) -> charts.Spec:
        kind = widget.WhichOneof("config")
        zone = self.time_zone
        if kind == "line":
            return charts.line_spec(widget.line, frame, width, height, zone)
        if kind == "area":
            return charts.area_spec(widget.area, frame, width, height, zone)
        if kind == "bar":
            return charts.bar_spec(widget.bar, frame, width, height, zone)
        if kind == "heatmap":
            return charts.heatmap_spec(widget.heatmap, frame, width, height, zone)
        if kind == "map":
            return maps.map_spec(widget.map, frame, width, height, zone)
        raise AssertionError(f"not a chart widget: {kind}")

    # -- the page --------------------------------------------------------------------------------

    def _flowing(self, widgets: Sequence[RenderedWidget]) -> set[int]:
        """Indexes of the tables that leave the grid: those taller than their box, then those in a
        band that would not fit one page (repeated, since taking a table out splits its band)."""
        flowing = {
            index
            for index, rendered in enumerate(widgets)
            if rendered.table_height_px is not None and rendered.table_height_px > self.grid.box(rendered.placement)[1]
        }
        while True:
            fixed = [index for index in range(len(widgets)) if index not in flowing]
            grown = set(flowing)
            for band in bands(fixed, lambda index: widgets[index].placement):
                _, rows = band_height_rows([widgets[index].placement for index in band])
                if not self.grid.fits_page(rows):
                    grown |= {index for index in band if widgets[index].table_height_px is not None}
            if grown == flowing:
                return flowing
            flowing = grown

    def _band(self, band: Sequence[RenderedWidget]) -> str:
        top, rows = band_height_rows([rendered.placement for rendered in band])
        cells = []
        for rendered in band:
            p = rendered.placement
            cells.append(
                f'<div class="cell" style="grid-column:{p.x + 1} / span {p.width};'
                f'grid-row:{p.y - top + 1} / span {p.height}">{rendered.html}</div>'
            )
        return f'<div class="band" style="grid-template-rows:repeat({rows}, var(--row))">{"".join(cells)}</div>'

    def _header_allowance(self) -> float:
        """A generous estimate of the header's height (CSS px) on the first page, from the
        lengths of its texts at their font sizes (wide CJK glyphs count double)."""
        width = geometry(self.options).content_width_px
        dashboard = self.spec.dashboard

        def lines(text: str, px_per_char: float) -> int:
            per_line = max(1, int(width / px_per_char))
            return sum(max(1, math.ceil(text_width(part) / per_line)) for part in text.split("\n"))

        height = 28.0 * lines(dashboard.title or " ", 13.5)
        if dashboard.description:
            height += 4 + 19.5 * lines(dashboard.description, 7.5)
        height += 8 + 18  # version and generated-at
        chips = sum(
            text_width(f"{name} = {parameter_text(value)}") * 7.0 + 24 for name, value in self.spec.filters.items()
        )
        height += 8 + 24 * max(1, math.ceil(chips / max(1.0, width - 60)))
        height += 12 + 2 + float(dashboard.layout.gap or DEFAULT_GAP_PX)  # padding, rule, space before the first band
        return height * 1.15 + 8

    def _header(self) -> str:
        dashboard = self.spec.dashboard
        labels = {f.name: f.label for f in dashboard.filters}
        order = {f.name: position for position, f in enumerate(dashboard.filters)}
        names = sorted(self.spec.filters, key=lambda name: (order.get(name, len(order)), name))
        if names:
            chips = "".join(
                f'<li class="filter"><span class="filter-name" dir="auto">{esc(labels.get(name) or name)}</span>'
                f' = <span class="filter-value" dir="auto">{esc(parameter_text(self.spec.filters[name]))}</span></li>'
                for name in names
            )
            filters = f'<ul class="filters">{chips}</ul>'
        else:
            filters = '<p class="filters-none">No filters applied</p>'
        description = ""
        if dashboard.description:
            description = f'<p class="report-description" dir="auto">{esc(dashboard.description)}</p>'
        return (
            '<header class="report-header">'
            f'<h1 class="report-title" dir="auto">{esc(dashboard.title)}</h1>'
            f"{description}"
            '<dl class="report-meta">'
            f"<div><dt>Version</dt><dd>{self.spec.version}</dd></div>"
            f"<div><dt>Generated</dt><dd>{esc(self._generated)}</dd></div>"
            "</dl>"
            f'<div class="report-filters"><span class="report-filters-label">Filters</span>{filters}</div>'
            "</header>"
        )

    def _page_css(self) -> str:
        grid = self.grid
        rules = [f":root{{--row:{grid.row_px:.3f}px;--gap:{grid.gap_px:.3f}px}}"]
        if self.spec.format == export_pb2.EXPORT_FORMAT_PDF:
            width, height = PAPER_MM[self.options.paper_size]
            if self.options.orientation == export_pb2.ORIENTATION_LANDSCAPE:
                width, height = height, width
            m = self.options.margins
            rules.append(
                f"@page{{size:{width}mm {height}mm;margin:{m.top_mm}mm {m.right_mm}mm {m.bottom_mm}mm {m.left_mm}mm}}"
            )
        else:
            rules.append(f".page{{width:{self.options.width_px}px}}")
        return "".join(rules)

    def document(self, widgets: Sequence[RenderedWidget]) -> str:
        """The whole page: header, then the bands of widgets top to bottom."""
        ordered = sorted(widgets, key=lambda rendered: (rendered.placement.y, rendered.placement.x))
        flowing = self._flowing(ordered)
        blocks: list[tuple[int, int, str]] = []
        fixed = [index for index in range(len(ordered)) if index not in flowing]
        for band in bands(fixed, lambda index: ordered[index].placement):
            members = [ordered[index] for index in band]
            blocks.append((band_height_rows([m.placement for m in members])[0], 0, self._band(members)))
        for index in flowing:
            html = f'<div class="band band-flow"><div class="flow">{ordered[index].html}</div></div>'
            blocks.append((ordered[index].placement.y, 1, html))
        blocks.sort(key=lambda block: block[:2])
        png = self.spec.format == export_pb2.EXPORT_FORMAT_PNG
        classes = ["png" if png else "pdf"]
        if png and self.options.transparent_background:
            classes.append("transparent")
        return (
            "<!DOCTYPE html>"
            f'<html lang="en" class="{" ".join(classes)}">'
            "<head>"
            '<meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{esc(self.spec.dashboard.title)}</title>"
            f"<style>{_stylesheet()}{self._page_css()}</style>"
            "</head>"
            "<body>"
            f'<main class="page">{self._header()}{"".join(block[2] for block in blocks)}</main>'
            "</body>"
            "</html>"
        )
