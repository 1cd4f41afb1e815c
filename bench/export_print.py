"""Chromium alone printing a page: the baseline that export benchmarks divide by.

`bare_print(html, kind)` times set_content + pdf (or a full-page screenshot) on an already
launched browser and an already open page, with the default export options' geometry (A4
landscape, 10 mm margins, backgrounds, the page-number footer; 1280 px wide at scale 2) and
nothing else: no fresh context, no blocking routes, no fonts wait, no reading of the result. The browser is
launched on the first call (not timed) and kept for the calling event loop; `close_bare()` ends it.

`python -m bench.export_print [N]` compares a warm `Printer` (its spare context ready, as when a
worker renders the next page meanwhile) with it on a 12-widget page.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

from playwright.async_api import Browser, Page, Playwright, async_playwright

from dashboard.v1 import export_pb2
from server.config import Settings
from server.exports.browser import Printer
from server.exports.chromium import find_chromium, launch_args, needs_no_sandbox
from server.exports.options import PAPER_NAMES, normalized
from server.exports.print_templates import footer_template, header_template

__all__ = ["bare_print", "close_bare", "sample_page"]

Kind = Literal["pdf", "png"]


@dataclass
class _Bare:
    loop: asyncio.AbstractEventLoop
    playwright: Playwright
    browser: Browser
    pdf_page: Page
    png_page: Page


_bare: _Bare | None = None


async def _ready() -> _Bare:
    global _bare
    loop = asyncio.get_running_loop()
    if _bare is not None and _bare.loop is loop and _bare.browser.is_connected():
        return _bare
    # A browser of another (finished) loop cannot be used or closed from this one: leave it.
    defaults = normalized(export_pb2.ExportOptions())
    playwright = await async_playwright().start()
    browser = await playwright.chromium.launch(
        executable_path=find_chromium(Settings().chromium_path, playwright.chromium.executable_path),
        args=launch_args(),
        chromium_sandbox=not needs_no_sandbox(),
    )
    pdf_page = await browser.new_page()
    png_page = await browser.new_page(
        viewport={"width": defaults.width_px, "height": 100}, device_scale_factor=defaults.scale_factor
    )
    _bare = _Bare(loop, playwright, browser, pdf_page, png_page)
    return _bare


async def bare_print(html: str, kind: Kind) -> float:
    """Seconds Chromium alone takes to load `html` and print it to `kind`."""
    bare = await _ready()
    defaults = normalized(export_pb2.ExportOptions())
    m = defaults.margins
    started = time.perf_counter()
    if kind == "pdf":
        await bare.pdf_page.set_content(html)
        await bare.pdf_page.pdf(
            format=PAPER_NAMES[defaults.paper_size],
            landscape=defaults.orientation == export_pb2.ORIENTATION_LANDSCAPE,
            margin={
                "top": f"{m.top_mm}mm",
                "right": f"{m.right_mm}mm",
                "bottom": f"{m.bottom_mm}mm",
                "left": f"{m.left_mm}mm",
            },
            print_background=defaults.print_background,
            # Every export has a footer (page numbers): Chromium draws it, so the baseline does too.
            display_header_footer=True,
            header_template=header_template(defaults),
            footer_template=footer_template(defaults),
        )
    else:
        await bare.png_page.set_content(html)
        # animations="disabled" is also the faster capture (no waiting for frames).
        await bare.png_page.screenshot(type="png", full_page=True, animations="disabled")
    return time.perf_counter() - started


async def close_bare() -> None:
    global _bare
    bare, _bare = _bare, None
    if bare is not None:
        await bare.browser.close()
        await bare.playwright.stop()


def sample_page(widgets: int = 12, table_rows: int = 25) -> str:
    """A dashboard-like page: a header and a 12-column grid of KPI, table and SVG chart cards."""
    cards = []
    for i in range(widgets):
        if i % 3 == 0:
            body = f"<div class=kpi>{1000 + i * 37:,}</div><div class=sub>admissions</div>"
        elif i % 3 == 1:
            rows = "".join(
                f"<tr><td>Facility {r}</td><td>{r * 13 % 97}</td><td>{r * 7}</td></tr>" for r in range(table_rows)
            )
            body = (
                f"<table><thead><tr><th>Name</th><th>Beds</th><th>Stays</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        else:
            points = " ".join(f"{x * 10},{100 - (x * 37 % 90)}" for x in range(40))
            body = (
                "<svg viewBox='0 0 400 110' width='100%' height='160'>"
                f"<polyline fill='none' stroke='#2563eb' stroke-width='2' points='{points}'/>"
                "<line x1='0' y1='105' x2='400' y2='105' stroke='#999'/></svg>"
            )
        cards.append(
            f"<section class=card style='grid-column: span {4 if i % 3 else 3}'><h2>Widget {i}</h2>{body}</section>"
        )
    style = (
        "body{font-family:'DejaVu Sans',sans-serif;margin:0;padding:16px;color:#111}"
        ".grid{display:grid;grid-template-columns:repeat(12,1fr);gap:12px}"
        ".card{border:1px solid #ddd;border-radius:6px;padding:10px;break-inside:avoid;background:#fafafa}"
        ".kpi{font-size:32px;font-weight:bold}.sub{color:#666}"
        "table{border-collapse:collapse;width:100%;font-size:11px}td,th{border-bottom:1px solid #eee;padding:2px 4px}"
        "h2{font-size:14px;margin:0 0 6px}"
    )
    head = f"<meta charset=utf-8><title>Bench dashboard</title><style>{style}</style>"
    body = f"<h1>Bench dashboard</h1><div class=grid>{''.join(cards)}</div>"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


async def _compare(iterations: int) -> list[dict[str, Any]]:
    html = sample_page()
    printer = Printer(Settings())
    options = export_pb2.ExportOptions()
    out = []
    try:
        for kind in ("pdf", "png"):
            produce = printer.pdf if kind == "pdf" else printer.png
            await produce(html, options)  # warm: launched
            await printer.settle()
            await bare_print(html, kind)
            printer_s: list[float] = []
            bare_s: list[float] = []
            for _ in range(iterations):
                started = time.perf_counter()
                await produce(html, options)
                printer_s.append(time.perf_counter() - started)
                # The spare context opens while a worker renders the next page; not during the baseline.
                await printer.settle()
                bare_s.append(await bare_print(html, kind))
            p50, b50 = statistics.median(printer_s), statistics.median(bare_s)
            out.append(
                {
                    "workload": f"export_print.{kind}",
                    "printer_p50_ms": round(p50 * 1000, 1),
                    "bare_p50_ms": round(b50 * 1000, 1),
                    "ratio_p50": round(p50 / b50, 2),
                    "n": iterations,
                }
            )
    finally:
        await printer.close()
        await close_bare()
    return out


def main() -> int:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    for result in asyncio.run(_compare(iterations)):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
