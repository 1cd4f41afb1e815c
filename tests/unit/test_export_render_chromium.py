"""The export page printed by real Chromium (through Playwright) and read back with poppler: the
titles and KPI values are real text, pages are the asked size, no widget is cut across pages, a
long table carries its header onto every page, and a transparent PNG is transparent. The
production browser module lives elsewhere; this only proves the page prints as designed."""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, sync_playwright

from dashboard.v1 import export_pb2, widget_pb2
from server.exports.render import WidgetContent
from tests.unit.export_render_samples import FILTERS, dashboard_of, frame_of, render, sample_dashboard, widget
from tests.unit.test_export_render import long_table

CHROMIUM = "/usr/lib/chromium/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def print_pdf(browser: Browser, document: str, path: Path) -> list[str]:
    """Prints the page as the export module does (CSS page size) and returns each page's text."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_content(document)
    path.write_bytes(page.pdf(prefer_css_page_size=True, print_background=True))
    context.close()
    text = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout
    return [" ".join(page_text.split()) for page_text in text.split("\f") if page_text.strip()]


def pdfinfo(path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in out.splitlines())}


def test_sample_dashboard_prints_titles_and_kpi_values_as_text(browser: Browser, tmp_path: Path) -> None:
    board, contents = sample_dashboard()
    document, _ = render(board, contents, filters=FILTERS)
    pages = print_pdf(browser, document, tmp_path / "sample.pdf")
    info = pdfinfo(tmp_path / "sample.pdf")
    assert int(info["Pages"]) == len(pages) >= 2
    width, height = (float(v) for v in re.findall(r"[\d.]+", info["Page size"])[:2])
    assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (297, 210)  # A4 landscape, mm
    everything = " ".join(pages)
    for board_widget in board.widgets:
        if board_widget.title.isascii():
            assert board_widget.title in everything
    # CJK and Arabic come out too (poppler splits the Arabic lam-alef ligature, so a word without one is checked).
    assert "病床稼働率" in everything and "معدل" in everything
    for value in ["128", "91.3%", "4.3500", "$1,284,730", "0.30000000000000004", "Île-de-France", "[REDACTED]"]:
        assert value in everything, value
    assert "query timed out after 30 s" in everything and "No data" in everything


def test_thirty_widgets_with_a_500_row_table_paginate_without_cutting_a_widget(
    browser: Browser, tmp_path: Path
) -> None:
    # ASCII cells: poppler's reading order is not reliable around CJK, and rows are parsed here.
    table, table_frame = long_table(ward="Ward {} bay {}")
    table.position.CopyFrom(widget_pb2.GridPosition(x=0, y=0, width=12, height=6))
    contents = [WidgetContent(table, frame=table_frame)]
    kpi_format = widget_pb2.NumberFormat(thousands_separator=True, suffix=" pts")
    for n in range(28):
        kpi = widget(
            f"Metric {n + 1:02d}",
            (n % 4) * 3,
            6 + (n // 4) * 2,
            3,
            2,
            widget_id=f"k{n}",
            kpi=widget_pb2.KpiConfig(value_column="v", format=kpi_format),
        )
        contents.append(WidgetContent(kpi, frame=frame_of([("v", "int8", [1000 + 37 * n])])))
    bars = widget("Cost by ward", 0, 20, 12, 6, bar=widget_pb2.BarChartConfig(category_column="w", value_columns=["c"]))
    contents.append(WidgetContent(bars, frame=frame_of([("w", "text", ["A", "B", "C"]), ("c", "int8", [3, 1, 2])])))
    board = dashboard_of("Thirty widgets", [c.widget for c in contents])
    document, _ = render(board, contents)
    pages = print_pdf(browser, document, tmp_path / "thirty.pdf")
    assert int(pdfinfo(tmp_path / "thirty.pdf")["Pages"]) == len(pages) > 5

    # The table's title is on the page of its first rows; every page with rows repeats the header.
    first = next(i for i, text in enumerate(pages) if "All encounters" in text)
    assert re.search(r"All encounters Encounter Ward Cost 1 Ward 0 bay 0 0\.00 2 Ward 1 bay 1", pages[first])
    with_rows = [i for i, text in enumerate(pages) if re.search(r"\d+ Ward \d bay \d [\d.]+", text)]
    assert len(with_rows) > 3
    for index in with_rows:
        assert "Encounter Ward Cost" in pages[index], f"page {index + 1} lost the header row"
    ids = [int(m) for index in with_rows for m in re.findall(r"(\d+) Ward \d bay \d", pages[index])]
    assert ids == list(range(1, 501))  # every row, once, in order: none lost at a page break

    # No KPI is cut: its title and its value are on one page, and on exactly one.
    for n in range(28):
        title, value = f"Metric {n + 1:02d}", f"{1000 + 37 * n:,} pts"
        holding = [i for i, text in enumerate(pages) if title in text]
        assert len(holding) == 1, title
        assert value in pages[holding[0]], (title, value)
    chart_pages = [i for i, text in enumerate(pages) if "Cost by ward" in text]
    assert len(chart_pages) == 1 and all(label in pages[chart_pages[0]] for label in ("A", "B", "C"))


def test_png_is_width_times_scale_and_transparent_when_asked(browser: Browser) -> None:
    board, contents = sample_dashboard()
    options = export_pb2.ExportOptions(width_px=1000, transparent_background=True)
    document, _ = render(board, contents, export_pb2.EXPORT_FORMAT_PNG, options)
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1000, "height": 700}, device_scale_factor=2
    )
    page = context.new_page()
    page.set_content(document)
    image = Image.open(io.BytesIO(page.screenshot(full_page=True, omit_background=True)))
    context.close()
    assert image.width == 2000 and image.height > 2 * 700
    assert image.mode == "RGBA"
    assert image.getpixel((4, 4))[3] == 0  # the page itself paints nothing
    card = image.getpixel((2 * 40, 2 * 200))  # inside the first KPI card: opaque white
    assert card[3] == 255
