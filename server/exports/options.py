"""ExportOptions with their defaults filled in, and the page geometry they imply.

The proto leaves zero values meaning "default"; the job stores (and reports) the normalized
options, so what a client reads back is exactly what was rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.v1 import export_pb2

__all__ = ["CSS_PX_PER_MM", "PAPER_MM", "Geometry", "geometry", "normalized"]

CSS_PX_PER_MM = 96 / 25.4
DEFAULT_MARGIN_MM = 10.0
DEFAULT_SCALE = 2
DEFAULT_WIDTH_PX = 1280
# Chromium draws header and footer templates inside the margins: they need this much room.
HEADER_FOOTER_MIN_MM = 12.0

# (width, height) in millimetres, portrait.
PAPER_MM: dict[int, tuple[float, float]] = {
    export_pb2.PAPER_SIZE_A4: (210.0, 297.0),
    export_pb2.PAPER_SIZE_A3: (297.0, 420.0),
    export_pb2.PAPER_SIZE_LETTER: (215.9, 279.4),
    export_pb2.PAPER_SIZE_LEGAL: (215.9, 355.6),
}
PAPER_NAMES: dict[int, str] = {
    export_pb2.PAPER_SIZE_A4: "A4",
    export_pb2.PAPER_SIZE_A3: "A3",
    export_pb2.PAPER_SIZE_LETTER: "Letter",
    export_pb2.PAPER_SIZE_LEGAL: "Legal",
}


def normalized(options: export_pb2.ExportOptions) -> export_pb2.ExportOptions:
    """A copy with every default filled in (A4, landscape, 10 mm margins, backgrounds printed,
    scale 2, 1280 px wide) and header/footer room ensured in the margins."""
    out = export_pb2.ExportOptions()
    out.CopyFrom(options)
    if out.paper_size == export_pb2.PAPER_SIZE_UNSPECIFIED:
        out.paper_size = export_pb2.PAPER_SIZE_A4
    if out.orientation == export_pb2.ORIENTATION_UNSPECIFIED:
        out.orientation = export_pb2.ORIENTATION_LANDSCAPE
    if not options.HasField("margins"):
        out.margins.CopyFrom(
            export_pb2.Margins(
                top_mm=DEFAULT_MARGIN_MM,
                right_mm=DEFAULT_MARGIN_MM,
                bottom_mm=DEFAULT_MARGIN_MM,
                left_mm=DEFAULT_MARGIN_MM,
            )
        )
    if out.header_text and out.margins.top_mm < HEADER_FOOTER_MIN_MM:
        out.margins.top_mm = HEADER_FOOTER_MIN_MM
    # The footer always carries page numbers.
    out.margins.bottom_mm = max(out.margins.bottom_mm, HEADER_FOOTER_MIN_MM)
    if not out.HasField("print_background"):
        out.print_background = True
    if out.scale_factor == 0:
        out.scale_factor = DEFAULT_SCALE
    if out.width_px == 0:
        out.width_px = DEFAULT_WIDTH_PX
    return out


@dataclass(frozen=True)
class Geometry:
    """The printable area of one PDF page in CSS pixels (96 per inch), margins removed."""

    page_width_mm: float
    page_height_mm: float
    content_width_px: float
    content_height_px: float


def geometry(options: export_pb2.ExportOptions) -> Geometry:
    """Of normalized options."""
    width, height = PAPER_MM[options.paper_size]
    if options.orientation == export_pb2.ORIENTATION_LANDSCAPE:
        width, height = height, width
    m = options.margins
    return Geometry(
        page_width_mm=width,
        page_height_mm=height,
        content_width_px=(width - m.left_mm - m.right_mm) * CSS_PX_PER_MM,
        content_height_px=(height - m.top_mm - m.bottom_mm) * CSS_PX_PER_MM,
    )
