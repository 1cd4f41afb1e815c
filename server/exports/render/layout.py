"""The 12-column grid in pixels, and the horizontal bands that pagination never cuts.

A band is a run of widgets whose row ranges overlap (directly or through each other): it is
printed as one unbreakable block, so no widget is ever split across PDF pages. Widgets are
scaled (row height and gap together) so that the tallest band fits the printable page height.
Tables do not count towards that scale: a table that does not fit leaves its band and flows
over as many pages as it needs (see `plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from dashboard.v1 import dashboard_pb2, export_pb2, widget_pb2
from server.exports.options import geometry

__all__ = [
    "COLUMNS",
    "PNG_PADDING_PX",
    "Grid",
    "Placement",
    "band_height_rows",
    "bands",
    "grid_for",
    "placement_of",
]

COLUMNS = 12
DEFAULT_ROW_HEIGHT_PX = 80
DEFAULT_GAP_PX = 16
PNG_PADDING_PX = 24
# Room left on a page for sub-pixel rounding, so a band that "fits" really does.
PAGE_SLACK_PX = 8.0

T = TypeVar("T")


@dataclass(frozen=True)
class Placement:
    """A widget's cell range on the grid: columns x..x+width-1, rows y..y+height-1."""

    x: int
    y: int
    width: int
    height: int

    @property
    def bottom(self) -> int:
        return self.y + self.height


def placement_of(widget: widget_pb2.Widget) -> Placement:
    """The widget's grid position, checked (the API validates it; stored data is trusted no further)."""
    p = widget.position
    name = f"widget {widget.id or widget.title!r} position"
    if not 0 <= p.x < COLUMNS:
        raise ValueError(f"{name}: x must be 0-11, got {p.x}")
    if not 1 <= p.width <= COLUMNS - p.x:
        raise ValueError(f"{name}: width must be 1-{COLUMNS - p.x} at x={p.x}, got {p.width}")
    if p.y < 0:
        raise ValueError(f"{name}: y must not be negative, got {p.y}")
    if p.height < 1:
        raise ValueError(f"{name}: height must be at least 1, got {p.height}")
    return Placement(x=p.x, y=p.y, width=p.width, height=p.height)


def bands(items: Iterable[T], placement: Callable[[T], Placement]) -> list[list[T]]:
    """Groups items into bands of overlapping row ranges, top to bottom; within a band items keep
    (y, x) order."""
    ordered = sorted(items, key=lambda item: (placement(item).y, placement(item).x))
    out: list[list[T]] = []
    bottom = -1
    for item in ordered:
        p = placement(item)
        if out and p.y < bottom:
            out[-1].append(item)
            bottom = max(bottom, p.bottom)
        else:
            out.append([item])
            bottom = p.bottom
    return out


def band_height_rows(band: Sequence[Placement]) -> tuple[int, int]:
    """(first row, number of rows) of a band."""
    top = min(p.y for p in band)
    return top, max(p.bottom for p in band) - top


@dataclass(frozen=True)
class Grid:
    """Pixel sizes of the grid for one page: the content width, the (scaled) row height and gap,
    and the height a band may take (None: no pages, as for PNG)."""

    width_px: float
    row_px: float
    gap_px: float
    page_height_px: float | None

    @property
    def column_px(self) -> float:
        return (self.width_px - (COLUMNS - 1) * self.gap_px) / COLUMNS

    def span_px(self, rows: int) -> float:
        """Height of `rows` grid rows, gaps between them included."""
        return rows * self.row_px + max(rows - 1, 0) * self.gap_px

    def box(self, placement: Placement) -> tuple[float, float]:
        """(width, height) in CSS pixels of a widget's box."""
        width = placement.width * self.column_px + (placement.width - 1) * self.gap_px
        return width, self.span_px(placement.height)

    def fits_page(self, rows: int) -> bool:
        return self.page_height_px is None or self.span_px(rows) <= self.page_height_px


def _is_table(widget: widget_pb2.Widget) -> bool:
    return bool(widget.WhichOneof("config") == "table")


def grid_for(
    dashboard: dashboard_pb2.Dashboard,
    options: export_pb2.ExportOptions,
    export_format: int,
    header_px: float = 0.0,
) -> Grid:
    """The grid of an export: the dashboard's row height and gap (defaults 80 and 16), scaled for
    a PDF so the tallest band of non-table widgets fits one page's printable height, and the first
    band fits the first page below the report header (`header_px` high), which would otherwise
    push it to page 2 and leave page 1 blank but for the header."""
    row = float(dashboard.layout.row_height or DEFAULT_ROW_HEIGHT_PX)
    gap = float(dashboard.layout.gap or DEFAULT_GAP_PX)
    if export_format == export_pb2.EXPORT_FORMAT_PNG:
        return Grid(width_px=options.width_px - 2 * PNG_PADDING_PX, row_px=row, gap_px=gap, page_height_px=None)
    page = geometry(options)
    usable = page.content_height_px - PAGE_SLACK_PX
    # Whole pixels, rounded down: Chromium's page box must never be narrower than the grid.
    width = float(int(page.content_width_px) - 1)
    placements = [placement_of(widget) for widget in dashboard.widgets if not _is_table(widget)]
    heights = [band_height_rows(band)[1] for band in bands(placements, lambda p: p)]
    scale = 1.0
    for index, rows in enumerate(heights):
        natural = rows * row + max(rows - 1, 0) * gap
        room = usable - header_px if index == 0 else usable
        if natural > 0 and room > 0:
            scale = min(scale, room / natural)
    return Grid(width_px=width, row_px=row * scale, gap_px=gap * scale, page_height_px=usable)
