"""Checks of one printed page, summarised: overlapping text lines (from the PDF), text outside its
card, each card's plot share and plot ink (from the layout and a PNG of it)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from dashboard.v1 import export_pb2
from tests.visual.measure import CardGeometry, TextLine, grey_image, overlapping_lines, pdf_text_lines, plot_ink
from tests.visual.shoot import Shot, chromium, shoot

__all__ = ["PageReport", "chart_shares", "check_pdf", "plot_inks", "print_report"]

# Cards whose body is text (or a state), not a plot: their "plot" is the body and counts too.
CHART_KINDS = frozenset({"line", "area", "bar", "heatmap", "map"})


@dataclass(frozen=True)
class PageReport:
    overlaps: list[tuple[TextLine, TextLine]]
    overlaps_page1: int
    escaped: list[tuple[str, str]]  # (card title, text)
    chart_shares: dict[str, float]  # card title -> plot share, charts only


def check_pdf(shot: Shot, path: Path) -> PageReport:
    path.write_bytes(shot.data)
    lines = pdf_text_lines(path)
    overlaps = overlapping_lines(lines)
    return PageReport(
        overlaps=overlaps,
        overlaps_page1=sum(1 for a, _ in overlaps if a.page == 1),
        escaped=[(card.title, text) for card in shot.geometry.cards for text in card.escaped],
        chart_shares=chart_shares(shot),
    )


def chart_shares(shot: Shot) -> dict[str, float]:
    """Each chart card's plot share (card title and widget id -> share)."""
    return {_name(card): card.plot_share for card in shot.geometry.cards if card.kind in CHART_KINDS}


def plot_inks(shot: Shot) -> dict[str, float]:
    """Ink share of each chart's plot area in a PNG shot."""
    out: dict[str, float] = {}
    image = grey_image(shot.data)
    for card in shot.geometry.cards:
        if card.kind in CHART_KINDS and card.plot is not None:
            out[_name(card)] = plot_ink(image, card.plot, shot.scale)
    return out


def _name(card: CardGeometry) -> str:
    return f"{card.title} [{card.widget_id}]"


async def print_report(html: str, options: export_pb2.ExportOptions, out: Path) -> PageReport:
    async with chromium() as browser:
        shot = await shoot(browser, html, options, "pdf")
    report = check_pdf(shot, out)
    print(f"{out}: {len(report.overlaps)} overlapping text line pairs ({report.overlaps_page1} on page 1)")
    for first, second in report.overlaps:
        print(f"  p{first.page}: {first.text!r} x {second.text!r}")
    print(f"text outside its card: {len(report.escaped)}")
    for title, text in report.escaped:
        print(f"  {title}: {text!r}")
    shares = report.chart_shares
    if shares:
        low, middle = min(shares.values()), statistics.median(shares.values())
        print(f"plot share of card (charts): min {low:.2f}, median {middle:.2f}")
        for name, share in shares.items():
            print(f"  {share:.2f}  {name}")
    return report
