"""An export page printed by real Chromium the way the export worker prints it (same paper, margins,
header and footer templates; JavaScript off for the page), plus the page's geometry read from the
same layout (card, plot and text boxes)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from playwright.async_api import Browser, async_playwright

from dashboard.v1 import export_pb2
from server.exports.chromium import find_chromium, launch_args
from server.exports.options import PAPER_NAMES, geometry, normalized
from server.exports.print_templates import footer_template, header_template
from tests.visual.measure import CONTAINMENT_TOLERANCE_PX, GEOMETRY_SCRIPT, Geometry, geometry_of

__all__ = ["Shot", "chromium", "shoot"]


@dataclass(frozen=True)
class Shot:
    kind: Literal["pdf", "png"]
    data: bytes
    # The page's layout in CSS px; `scale` device pixels per CSS px in `data` (PNG).
    geometry: Geometry
    scale: float


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=find_chromium("", None), args=launch_args())
        try:
            yield browser
        finally:
            await browser.close()


async def shoot(browser: Browser, html: str, options: export_pb2.ExportOptions, kind: Literal["pdf", "png"]) -> Shot:
    opts = normalized(options)
    if kind == "pdf":
        width = math.ceil(geometry(opts).content_width_px)
        scale = 1.0
    else:
        width = opts.width_px
        scale = float(opts.scale_factor or 1)
    context = await browser.new_context(
        java_script_enabled=False, viewport={"width": width, "height": 800}, device_scale_factor=scale
    )
    try:
        page = await context.new_page()
        await page.emulate_media(media="print" if kind == "pdf" else "screen")
        await page.set_content(html, wait_until="load")
        await page.evaluate("document.fonts.ready.then(() => document.fonts.status)")
        layout = geometry_of(await page.evaluate(GEOMETRY_SCRIPT, CONTAINMENT_TOLERANCE_PX))
        if kind == "pdf":
            m = opts.margins
            data = await page.pdf(
                format=PAPER_NAMES[opts.paper_size],
                landscape=opts.orientation == export_pb2.ORIENTATION_LANDSCAPE,
                margin={
                    "top": f"{m.top_mm:g}mm",
                    "right": f"{m.right_mm:g}mm",
                    "bottom": f"{m.bottom_mm:g}mm",
                    "left": f"{m.left_mm:g}mm",
                },
                print_background=opts.print_background,
                prefer_css_page_size=False,
                display_header_footer=True,
                header_template=header_template(opts),
                footer_template=footer_template(opts),
            )
        else:
            # The full sweep's tallest board at scale 4 is ~200 MP: more than the default 30 s on a busy machine.
            data = await page.screenshot(
                type="png", full_page=True, animations="disabled", scale="device", timeout=180_000
            )
        return Shot(kind=kind, data=data, geometry=layout, scale=scale)
    finally:
        await context.close()
