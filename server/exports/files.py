"""Facts read from produced files (never assumed from the options that asked for them)."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.errors import PyPdfError

__all__ = ["PdfFacts", "UnreadableFile", "pdf_facts", "png_size"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
POINTS_PER_INCH = 72


class UnreadableFile(ValueError):
    """The bytes are not the kind of file they should be."""


@dataclass(frozen=True)
class PdfFacts:
    page_count: int
    # The first page's size in points (1/72 inch).
    width_pt: float
    height_pt: float


def pdf_facts(data: bytes) -> PdfFacts:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        count = len(reader.pages)
        if count == 0:
            raise UnreadableFile("the PDF has no pages")
        box = reader.pages[0].mediabox
        return PdfFacts(page_count=count, width_pt=float(box.width), height_pt=float(box.height))
    except PyPdfError as exc:
        raise UnreadableFile(f"not a readable PDF: {exc}") from exc


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from the IHDR chunk, which a PNG must start with."""
    if len(data) < 24 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise UnreadableFile("not a PNG (no signature and IHDR chunk)")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise UnreadableFile(f"the PNG is {width}x{height} pixels")
    return int(width), int(height)
