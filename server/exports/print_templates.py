"""Chromium's PDF header and footer templates.

Chromium draws them inside the top and bottom margins, in a page of their own: they see none of
the document's styles, default to a near-invisible font size, and fill in elements of the
classes pageNumber and totalPages. User text is plain text, escaped here.
"""

from __future__ import annotations

from html import escape

from dashboard.v1 import export_pb2

__all__ = ["footer_template", "header_template"]

_FONT = "font-family:'DejaVu Sans','Liberation Sans','Noto Sans CJK JP',sans-serif;font-size:10px;color:#444"


def _row(margins: export_pb2.Margins, cells: str) -> str:
    # Aligned with the content's edges: the template itself spans the whole paper width.
    return (
        f'<div style="{_FONT};box-sizing:border-box;width:100%;'
        f"padding:0 {margins.right_mm:g}mm 0 {margins.left_mm:g}mm;"
        f'display:flex;justify-content:space-between;align-items:center;gap:8mm">{cells}</div>'
    )


def header_template(options: export_pb2.ExportOptions) -> str:
    """Of normalized options; an empty header is an empty element (Chromium's default would print
    the date and the title)."""
    if not options.header_text:
        return "<span></span>"
    return _row(options.margins, f'<span dir="auto">{escape(options.header_text)}</span>')


def footer_template(options: export_pb2.ExportOptions) -> str:
    """The footer text, then "Page N of M"."""
    numbers = (
        '<span style="white-space:nowrap">'
        'Page <span class="pageNumber"></span> of <span class="totalPages"></span></span>'
    )
    return _row(options.margins, f'<span dir="auto">{escape(options.footer_text)}</span>{numbers}')
