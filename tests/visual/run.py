"""Renders the gallery and checks it: `python -m tests.visual` (what `make gallery` runs).

    python -m tests.visual                      render, check, compare, write build/gallery/gallery.pdf
    python -m tests.visual --update-references  the same, then overwrite the reference images
    python -m tests.visual --full               every paper size and orientation, PNG scale 1-4, all boards

Checks: (a) no two text lines overlap in any PDF (`pdftotext -bbox-layout`) and no text leaves its
card; (b) every chart's plot area has ink (PNG) and takes at least MIN_PLOT_SHARE of its card
(PDF and PNG layouts); (c) every page of each A4 PDF, rasterised
at REFERENCE_DPI, differs from its committed reference in at most MAX_DIFF_RATIO of its pixels
(pixelmatch, colour threshold PIXEL_THRESHOLD, anti-aliased pixels ignored; the same machine
reproduces its references to 0.000%).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from pixelmatch.contrib.PIL import pixelmatch
from pypdf import PdfWriter

from dashboard.v1 import export_pb2
from tests.unit.export_render_samples import render
from tests.visual.gallery import BOARDS, FULL_BOARDS, Board
from tests.visual.report import chart_shares, check_pdf, plot_inks
from tests.visual.shoot import chromium, shoot

__all__ = ["REFERENCES", "GalleryResult", "run_gallery"]

REFERENCES = Path(__file__).parent / "references"
REFERENCE_DPI = 40
PIXEL_THRESHOLD = 0.1
MAX_DIFF_RATIO = 0.0025
MIN_PLOT_INK = 0.002
# Issue 18: legends and labels placed so that every chart's plot keeps 60% of its card.
MIN_PLOT_SHARE = 0.6

PDF, PNG = export_pb2.EXPORT_FORMAT_PDF, export_pb2.EXPORT_FORMAT_PNG
A4, A3, LETTER, LEGAL = (
    export_pb2.PAPER_SIZE_A4,
    export_pb2.PAPER_SIZE_A3,
    export_pb2.PAPER_SIZE_LETTER,
    export_pb2.PAPER_SIZE_LEGAL,
)
PORTRAIT, LANDSCAPE = export_pb2.ORIENTATION_PORTRAIT, export_pb2.ORIENTATION_LANDSCAPE


@dataclass
class GalleryResult:
    overlaps: list[str] = field(default_factory=list)
    escaped: list[str] = field(default_factory=list)
    empty_plots: list[str] = field(default_factory=list)
    small_plots: list[str] = field(default_factory=list)
    diffs: dict[str, float] = field(default_factory=dict)  # reference name -> differing share
    missing_references: list[str] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    pdfs: list[Path] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        out = [*self.overlaps, *self.escaped, *self.empty_plots, *self.small_plots, *self.missing_references]
        out += [f"{name}: {ratio:.2%} of pixels differ" for name, ratio in self.diffs.items() if ratio > MAX_DIFF_RATIO]
        return out


def _pdf_variants(full: bool) -> list[tuple[str, export_pb2.ExportOptions]]:
    if not full:
        return [("a4-landscape", export_pb2.ExportOptions())]
    names = {A4: "a4", A3: "a3", LETTER: "letter", LEGAL: "legal"}
    return [
        (
            f"{names[paper]}-{'portrait' if o == PORTRAIT else 'landscape'}",
            export_pb2.ExportOptions(paper_size=paper, orientation=o),
        )
        for paper in (A4, A3, LETTER, LEGAL)
        for o in (PORTRAIT, LANDSCAPE)
    ]


def _png_variants(full: bool) -> list[tuple[str, export_pb2.ExportOptions]]:
    scales = (1, 2, 3, 4) if full else (1,)
    return [(f"png-x{s}", export_pb2.ExportOptions(scale_factor=s)) for s in scales]


def _pages(pdf: Path) -> list[Image.Image]:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["pdftoppm", "-r", str(REFERENCE_DPI), "-png", str(pdf), f"{folder}/p"], check=True)
        return [Image.open(path).convert("RGBA") for path in sorted(Path(folder).glob("p-*.png"))]


def difference(image: Image.Image, reference: Image.Image) -> float:
    """The share of pixels pixelmatch finds different (1.0 when the sizes differ)."""
    if image.size != reference.size:
        return 1.0
    mismatched = pixelmatch(image, reference, threshold=PIXEL_THRESHOLD, includeAA=False)
    return mismatched / (image.size[0] * image.size[1])


def _compare(name: str, pages: list[Image.Image], update: bool, result: GalleryResult) -> None:
    if update:
        REFERENCES.mkdir(parents=True, exist_ok=True)
        for stale in REFERENCES.glob(f"{name}-p*.png"):
            stale.unlink()
    for number, image in enumerate(pages, start=1):
        reference = REFERENCES / f"{name}-p{number}.png"
        if update:
            image.save(reference, optimize=True)
        if reference.exists():
            result.diffs[f"{name}-p{number}"] = difference(image, Image.open(reference).convert("RGBA"))
        else:
            result.missing_references.append(f"{name}: no reference image {reference}")
    extra = sorted(REFERENCES.glob(f"{name}-p*.png"))[len(pages) :]
    result.missing_references += [f"{name}: page {path.name} of the reference is missing" for path in extra]


def _shares(name: str, shares: dict[str, float], result: GalleryResult) -> None:
    result.shares += list(shares.values())
    result.small_plots += [
        f"{name}: the plot of {card} takes {share:.0%} of its card (at least {MIN_PLOT_SHARE:.0%})"
        for card, share in shares.items()
        if share < MIN_PLOT_SHARE
    ]


async def run_gallery(out: Path, *, full: bool = False, update: bool = False) -> GalleryResult:
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any browser work
    result = GalleryResult()
    boards: list[Board] = FULL_BOARDS if full else BOARDS
    async with chromium() as browser:
        for board in boards:
            dashboard, contents = board.build()
            for variant, options in _pdf_variants(full):
                name = f"{board.name}-{variant}"
                html, _ = render(dashboard, contents, PDF, options)
                shot = await shoot(browser, html, options, "pdf")
                path = out / f"{name}.pdf"
                report = check_pdf(shot, path)
                result.pdfs.append(path)
                result.overlaps += [f"{name} p{a.page}: {a.text!r} overlaps {b.text!r}" for a, b in report.overlaps]
                result.escaped += [f"{name}: {title!r} text {text!r} leaves its card" for title, text in report.escaped]
                _shares(name, report.chart_shares, result)
                # References are kept for the default boards only (the sweep board is for its checks).
                if variant == "a4-landscape" and board in BOARDS:
                    _compare(name, _pages(path), update, result)
            for variant, options in _png_variants(full):
                name = f"{board.name}-{variant}"
                html, _ = render(dashboard, contents, PNG, options)
                shot = await shoot(browser, html, options, "png")
                (out / f"{name}.png").write_bytes(shot.data)
                result.escaped += [
                    f"{name}: {c.title!r} text {t!r} leaves its card" for c in shot.geometry.cards for t in c.escaped
                ]
                _shares(name, chart_shares(shot), result)
                for card, ink in plot_inks(shot).items():
                    if ink < MIN_PLOT_INK:
                        result.empty_plots.append(f"{name}: the plot of {card} has no ink ({ink:.4f})")
    writer = PdfWriter()
    for pdf in result.pdfs:
        writer.append(str(pdf))
    with (out / "gallery.pdf").open("wb") as handle:
        writer.write(handle)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.visual", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/gallery"))
    parser.add_argument("--full", action="store_true", help="every paper size, orientation and PNG scale")
    parser.add_argument("--update-references", action="store_true", help="overwrite the reference images")
    args = parser.parse_args(argv)
    result = asyncio.run(run_gallery(args.out, full=args.full, update=args.update_references))
    shares = result.shares
    print(f"gallery: {len(result.pdfs)} PDFs in {args.out} (all pages: {args.out / 'gallery.pdf'})")
    print(f"overlapping text lines: {len(result.overlaps)}; text outside its card: {len(result.escaped)}")
    if shares:
        print(f"plot share of card (charts): min {min(shares):.2f}, median {statistics.median(shares):.2f}")
    for name, ratio in sorted(result.diffs.items()):
        print(f"  {name}: {ratio:.3%} of pixels differ from the reference (max {MAX_DIFF_RATIO:.2%})")
    for failure in result.failures:
        print(f"FAIL {failure}")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
