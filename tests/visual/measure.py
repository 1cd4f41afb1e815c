"""What the visual suite measures on a rendered export page.

- `overlapping_lines(pdf)`: pairs of text lines that overlap on a PDF page, from poppler's
  `pdftotext -bbox-layout` (the same check a person would do by eye, done on the printed file).
- `Geometry` (from the page in Chromium): each card's box, its plot's box (Vega's plot area,
  the `background` path of the chart's root group, or the KPI/table body) and every text box
  that leaves its card.
- `plot_ink(png, geometry)`: the share of a plot's pixels that differ from the card's white.
"""

from __future__ import annotations

import io
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = [
    "GEOMETRY_SCRIPT",
    "Box",
    "CardGeometry",
    "Geometry",
    "TextLine",
    "geometry_of",
    "grey_image",
    "overlapping_lines",
    "pdf_text_lines",
    "plot_ink",
]

# Text boxes closer than this (points, in both directions) are not counted as overlapping:
# glyph boxes of neighbouring lines touch by design.
OVERLAP_TOLERANCE_PT = 1.0
# A text box may leave its card by this much (CSS px) before it counts: antialiasing, rounding.
CONTAINMENT_TOLERANCE_PX = 1.5


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def intersection(self, other: Box) -> Box:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1 = min(self.x + self.width, other.x + other.width)
        y1 = min(self.y + self.height, other.y + other.height)
        return Box(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


@dataclass(frozen=True)
class TextLine:
    page: int
    text: str
    box: Box


def pdf_text_lines(pdf: Path) -> list[TextLine]:
    """Every text line poppler finds, with its box in points, per page (1-based)."""
    out = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], check=True, capture_output=True).stdout
    root = ET.fromstring(out)
    lines: list[TextLine] = []
    for number, page in enumerate((e for e in root.iter() if e.tag.endswith("page")), start=1):
        for line in (e for e in page.iter() if e.tag.endswith("line")):
            words = [w.text or "" for w in line if w.tag.endswith("word")]
            x0, y0 = float(line.attrib["xMin"]), float(line.attrib["yMin"])
            x1, y1 = float(line.attrib["xMax"]), float(line.attrib["yMax"])
            lines.append(TextLine(number, " ".join(words), Box(x0, y0, x1 - x0, y1 - y0)))
    return lines


def overlapping_lines(lines: list[TextLine]) -> list[tuple[TextLine, TextLine]]:
    """Pairs of lines on one page whose boxes overlap by more than the tolerance both ways."""
    pairs = []
    by_page: dict[int, list[TextLine]] = {}
    for line in lines:
        by_page.setdefault(line.page, []).append(line)
    for page_lines in by_page.values():
        for index, first in enumerate(page_lines):
            for second in page_lines[index + 1 :]:
                overlap = first.box.intersection(second.box)
                if overlap.width > OVERLAP_TOLERANCE_PT and overlap.height > OVERLAP_TOLERANCE_PT:
                    pairs.append((first, second))
    return pairs


# Runs in the page (Playwright's evaluation works with the page's JavaScript off). Returns, per
# card: its box, its kind, its plot's box (Vega's plot area, or the KPI/table body) and the text
# boxes that leave the card.
GEOMETRY_SCRIPT = """
(tolerance) => {
  const rect = (r) => ({x: r.left, y: r.top, width: r.width, height: r.height});
  const cards = [];
  for (const card of document.querySelectorAll('section.widget')) {
    const box = card.getBoundingClientRect();
    const kind = [...card.classList].find((c) => c.startsWith('kind-')).slice(5);
    let plot = null;
    const frame = card.querySelector('.chart svg g.role-frame.root');
    if (frame) {
      // Vega's plot area: the background path of the root group's own frame.
      const view = frame.querySelector(':scope > g > path.background');
      if (view) plot = rect(view.getBoundingClientRect());
    } else {
      const body = card.querySelector('.kpi, .data-table, .widget-empty, .widget-error');
      if (body) plot = rect(body.getBoundingClientRect());
    }
    const escaped = [];
    const inside = (r) => r.width === 0 || r.height === 0 || (
      r.left >= box.left - tolerance && r.top >= box.top - tolerance &&
      r.right <= box.right + tolerance && r.bottom <= box.bottom + tolerance);
    for (const t of card.querySelectorAll('svg text')) {
      const r = t.getBoundingClientRect();
      if (t.textContent.trim() && !inside(r)) escaped.push({text: t.textContent, ...rect(r)});
    }
    const walker = document.createTreeWalker(card, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      if (!node.textContent.trim() || node.parentElement.closest('svg')) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) {
        const clipped = node.parentElement.closest('.widget-description, .data-table');
        if (!inside(r) && !clipped) escaped.push({text: node.textContent.slice(0, 80), ...rect(r)});
      }
    }
    cards.push({id: card.dataset.widgetId, title: card.querySelector('.widget-title').textContent,
                kind, card: rect(box), plot, escaped});
  }
  return {width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight, cards};
}
"""


@dataclass(frozen=True)
class CardGeometry:
    widget_id: str
    title: str
    kind: str
    card: Box
    plot: Box | None
    escaped: list[str]

    @property
    def plot_share(self) -> float:
        """The share of the card's area its plot takes (0 without a plot)."""
        if self.plot is None or self.card.area == 0:
            return 0.0
        return self.plot.intersection(self.card).area / self.card.area


@dataclass(frozen=True)
class Geometry:
    width: float
    height: float
    cards: list[CardGeometry]


def _box(raw: dict[str, Any]) -> Box:
    return Box(float(raw["x"]), float(raw["y"]), float(raw["width"]), float(raw["height"]))


def geometry_of(raw: dict[str, Any]) -> Geometry:
    cards = [
        CardGeometry(
            widget_id=str(card["id"]),
            title=str(card["title"]),
            kind=str(card["kind"]),
            card=_box(card["card"]),
            plot=_box(card["plot"]) if card["plot"] else None,
            escaped=[str(item["text"]) for item in card["escaped"]],
        )
        for card in raw["cards"]
    ]
    return Geometry(float(raw["width"]), float(raw["height"]), cards)


def grey_image(png: bytes) -> Image.Image:
    """A shot decoded once for all its plots. The full sweep's tallest board at scale 4 exceeds
    PIL's decompression-bomb guard; these are our own bytes."""
    Image.MAX_IMAGE_PIXELS = None
    return Image.open(io.BytesIO(png)).convert("L")


def plot_ink(png: bytes | Image.Image, plot: Box, scale: float) -> float:
    """The share of the plot's pixels that are not (near) white: 0 is an empty plot."""
    image = png if isinstance(png, Image.Image) else grey_image(png)
    left, top = int(plot.x * scale), int(plot.y * scale)
    right, bottom = int((plot.x + plot.width) * scale), int((plot.y + plot.height) * scale)
    region = image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))
    histogram = region.histogram()
    total = sum(histogram)
    inked = sum(histogram[:245])
    return inked / total if total else 0.0
