"""Opening what an export produced with tools nobody here wrote: poppler (pdfinfo, pdftotext,
pdftoppm) and Pillow."""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from PIL import Image

__all__ = ["Word", "page_images", "pdf_words", "pdfinfo", "pdftotext", "png_image"]


def _run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout


def _file(data: bytes, suffix: str) -> Path:
    with tempfile.NamedTemporaryFile(prefix="tessera-export-", suffix=suffix, delete=False) as handle:
        handle.write(data)
    return Path(handle.name)


def pdfinfo(pdf: bytes) -> dict[str, str]:
    """pdfinfo's fields ("Pages", "Page size", ...)."""
    path = _file(pdf, ".pdf")
    try:
        out = _run("pdfinfo", str(path))
    finally:
        path.unlink()
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in out.splitlines())}


def page_size_pts(info: dict[str, str]) -> tuple[float, float]:
    match = re.match(r"([\d.]+) x ([\d.]+) pts", info["Page size"])
    assert match, info["Page size"]
    return float(match.group(1)), float(match.group(2))


def pdftotext(pdf: bytes, page: int | None = None) -> str:
    path = _file(pdf, ".pdf")
    pages = ["-f", str(page), "-l", str(page)] if page else []
    try:
        return _run("pdftotext", "-layout", *pages, str(path), "-")
    finally:
        path.unlink()


@dataclass(frozen=True)
class Word:
    page: int  # 1-based
    text: str
    x_min: float  # points from the top left of the page
    y_min: float
    x_max: float
    y_max: float


def pdf_words(pdf: bytes) -> list[Word]:
    """Every word with its page and bounding box (pdftotext -bbox)."""
    path = _file(pdf, ".pdf")
    try:
        out = _run("pdftotext", "-bbox", str(path), "-")
    finally:
        path.unlink()
    # The output is XHTML; its namespace is stripped for simple paths.
    root = ElementTree.fromstring(re.sub(r'\sxmlns="[^"]+"', "", out, count=1))
    words: list[Word] = []
    for number, page in enumerate(root.iter("page"), start=1):
        for word in page.iter("word"):
            a = word.attrib
            words.append(
                Word(
                    number,
                    word.text or "",
                    float(a["xMin"]),
                    float(a["yMin"]),
                    float(a["xMax"]),
                    float(a["yMax"]),
                )
            )
    return words


def page_images(pdf: bytes, dpi: int = 72) -> list[Image.Image]:
    """Each page rendered by pdftoppm (at 72 dpi one pixel is one point)."""
    with tempfile.TemporaryDirectory(prefix="tessera-pages-") as folder:
        path = Path(folder) / "export.pdf"
        path.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(path), f"{folder}/page"], check=True, timeout=120)
        files = sorted(Path(folder).glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        return [Image.open(io.BytesIO(f.read_bytes())).convert("RGB") for f in files]


def png_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
