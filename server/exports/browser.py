"""Chromium, driven by Playwright, prints a self-contained HTML page to PDF or PNG.

One `Printer` per worker process keeps one warm browser, launched on first use and replaced
after `export_browser_max_uses` exports or when it died. Pages are printed in browser contexts
in which JavaScript is off and every request is aborted: the page is printed exactly as the
renderer wrote it. A launch failure, a crash or a timeout is a failed attempt: the browser is
thrown away (its contexts with it) and the print tried again, up to `export_print_attempts`,
then `PrintFailed`.

Opening a context and its page costs more than printing (Chromium starts a renderer process for
it, and ends it on close), so a context and its page stay warm for the next export with the same
viewport and scale (PDF, and each PNG geometry; at most `WARM_TABS`, the least recently used
closed in the background). Nothing of one export is left for the next: without script, network,
storage or downloads the page holds only its document, which `set_content` replaces whole, and
media, title and viewport are set by each export. A context whose page crashed, or any context
of a browser that failed, is never used again. `close()` ends it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, async_playwright
from playwright.async_api import Error as PlaywrightError

from dashboard.v1 import export_pb2
from server.config import Settings
from server.errors import InvalidArgument
from server.exports.chromium import ChromiumNotFound, find_chromium, launch_args, needs_no_sandbox
from server.exports.files import POINTS_PER_INCH, UnreadableFile, pdf_facts, png_size
from server.exports.options import PAPER_NAMES, geometry, normalized
from server.exports.print_templates import footer_template, header_template
from server.exports.slots import PrintSlots

__all__ = ["PrintFailed", "PrintedFile", "Printer"]

log = logging.getLogger(__name__)

CSS_PX_PER_INCH = 96
# A context or browser that does not close in this time is left to (or killed with) its browser.
CLOSE_TIMEOUT_SECONDS = 2.0
MAX_SCALE_FACTOR = 4
MAX_WIDTH_PX = 8000
# After a failed launch (the machine may be short of memory or processes for a moment).
LAUNCH_RETRY_PAUSE_SECONDS = 0.5
# Contexts kept warm (one per viewport and scale last used).
WARM_TABS = 2
# The PNG viewport's initial height: the screenshot covers the full page, so a short viewport
# lets a short page come out at its own height instead of padded to a screen.
PNG_VIEWPORT_HEIGHT = 100

Kind = Literal["PDF", "PNG"]


class PrintFailed(Exception):
    """Chromium could not print the page. The message says what failed and how often; it never
    contains the page."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class PrintedFile:
    """What was produced, with facts read from the bytes. For a PDF, width/height are the first
    page's size in CSS pixels (96 per inch); for a PNG, its pixels (page_count 1)."""

    data: bytes
    content_type: str
    page_count: int
    width_px: int
    height_px: int


class _AttemptFailed(Exception):
    """One attempt failed (the browser or the page died, or it took too long); `hung` when the
    browser may not answer any more."""

    def __init__(self, message: str, *, hung: bool = False) -> None:
        super().__init__(message)
        self.hung = hung


# A context's fixed parameters: viewport width (None: Playwright's default, for PDF) and scale.
TabKey = tuple[int | None, int]


@dataclass
class _Tab:
    """A context with its one page."""

    key: TabKey
    browser: Browser
    context: BrowserContext
    page: Page
    crashed: bool = False

    def on_crash(self, _: Page) -> None:
        self.crashed = True


class Printer:
    """Prints pages with one warm Chromium. One per worker process, created and used on that
    process's event loop (after any fork), closed with `close()` on the same loop; calls are
    serialized, and each print holds one of the machine's print slots (server/exports/slots.py),
    so the worker processes of a deployment never print more pages at once than it allows."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._slots = PrintSlots.for_settings(settings)
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._browser_pid: int | None = None
        self._browser_uses = 0
        self._warm: OrderedDict[TabKey, _Tab] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.executable: str | None = None
        # Counters (monotonic over the Printer's life).
        self.launches = 0
        self.uses = 0
        self.blocked_requests = 0
        self.failed_attempts = 0
        self.contexts_opened = 0

    async def pdf(self, html: str, options: export_pb2.ExportOptions, *, title: str = "") -> PrintedFile:
        """`title` becomes the PDF's document title (its metadata), replacing the page's <title>."""
        opts = _checked(options)

        async def produce(page: Page) -> PrintedFile:
            await page.emulate_media(media="print")
            await _load(page, html, self._settings.export_print_timeout_seconds)
            if title:
                # Chromium takes the PDF's Title from document.title when it prints.
                await page.evaluate("t => { document.title = t }", title)
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
            facts = pdf_facts(data)
            to_px = CSS_PX_PER_INCH / POINTS_PER_INCH
            return PrintedFile(
                data=data,
                content_type="application/pdf",
                page_count=facts.page_count,
                width_px=round(facts.width_pt * to_px),
                height_px=round(facts.height_pt * to_px),
            )

        return await self._print("PDF", produce, (None, 1))

    async def png(self, html: str, options: export_pb2.ExportOptions) -> PrintedFile:
        opts = _checked(options)

        async def produce(page: Page) -> PrintedFile:
            await page.emulate_media(media="screen")
            await _load(page, html, self._settings.export_print_timeout_seconds)
            data = await page.screenshot(
                type="png",
                full_page=True,
                omit_background=opts.transparent_background,
                animations="disabled",
                caret="hide",
                scale="device",
                timeout=self._settings.export_print_timeout_seconds * 1000,
            )
            width, height = png_size(data)
            return PrintedFile(data=data, content_type="image/png", page_count=1, width_px=width, height_px=height)

        return await self._print("PNG", produce, (opts.width_px, opts.scale_factor))

    @property
    def open_contexts(self) -> int:
        """Browser contexts open right now (the warm ones and any export in progress or closing)."""
        return len(self._browser.contexts) if self._browser is not None and self._browser.is_connected() else 0

    async def settle(self) -> None:
        """Waits for the background work (closing contexts no longer kept) to finish."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def close(self) -> None:
        """Ends the background work, the browser and the Playwright driver."""
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        async with self._lock:
            await self._discard_browser()
            await self._stop_driver()

    # --- attempts ---

    async def _print(
        self,
        kind: Kind,
        produce: Callable[[Page], Awaitable[PrintedFile]],
        key: TabKey,
    ) -> PrintedFile:
        attempts = max(1, self._settings.export_print_attempts)
        failures: list[str] = []

        def failed(why: str) -> None:
            failures.append(why)
            self.failed_attempts += 1
            log.warning("%s print attempt %d of %d failed: %s", kind, len(failures), attempts, why)

        async with self._lock, self._slots.hold():
            for attempt in range(1, attempts + 1):
                try:
                    browser = await self._ready_browser()
                except ChromiumNotFound as exc:
                    raise PrintFailed(f"{kind} print failed: {exc}", attempts=attempt) from exc
                except (PlaywrightError, TimeoutError) as exc:
                    failed(f"launching Chromium ({self.executable}) failed: {_brief(exc)}")
                    await self._discard_browser()
                    # A dead driver fails every launch: start a new one next time.
                    await self._stop_driver()
                    if attempt < attempts:
                        await asyncio.sleep(LAUNCH_RETRY_PAUSE_SECONDS)
                    continue
                try:
                    result = await self._in_context(browser, kind, produce, key)
                except _AttemptFailed as exc:
                    failed(str(exc))
                    await self._discard_browser(hung=exc.hung)
                    continue
                self._browser_uses += 1
                self.uses += 1
                return result
            message = f"{kind} print failed after {attempts} attempt{'s' if attempts > 1 else ''}: " + "; ".join(
                f"attempt {i}: {why}" for i, why in enumerate(failures, start=1)
            )
            raise PrintFailed(message, attempts=attempts)

    async def _in_context(
        self,
        browser: Browser,
        kind: Kind,
        produce: Callable[[Page], Awaitable[PrintedFile]],
        key: TabKey,
    ) -> PrintedFile:
        timeout = self._settings.export_print_timeout_seconds
        tab: _Tab | None = None
        # After a failure the browser is discarded, which takes its contexts with it; a context of a
        # hung browser would not close anyway.
        keep_tab = False
        try:
            async with asyncio.timeout(timeout):
                tab = self._take_warm(browser, key) or await self._open_tab(browser, key)
                result = await produce(tab.page)
            keep_tab = True
            return result
        except TimeoutError as exc:
            tab = None
            raise _AttemptFailed(f"printing took longer than {timeout:g} s", hung=True) from exc
        except PlaywrightError as exc:
            dead, tab = tab, None
            if not browser.is_connected():
                raise _AttemptFailed(f"Chromium exited (browser disconnected): {_brief(exc)}") from exc
            if dead is not None and dead.crashed:
                raise _AttemptFailed(f"the page crashed: {_brief(exc)}") from exc
            raise _AttemptFailed(f"Chromium failed: {_brief(exc)}") from exc
        except UnreadableFile as exc:
            raise _AttemptFailed(f"Chromium produced an unusable {kind}: {exc}") from exc
        finally:
            if tab is not None:
                if keep_tab:
                    self._keep_warm(tab)
                else:  # a failed or interrupted export: its context is not used again
                    self._in_background(_close_context(tab.context))

    async def _open_tab(self, browser: Browser, key: TabKey) -> _Tab:
        width, scale = key
        context = await browser.new_context(
            java_script_enabled=False,
            service_workers="block",
            accept_downloads=False,
            color_scheme="light",
            reduced_motion="reduce",
            viewport={"width": width, "height": PNG_VIEWPORT_HEIGHT} if width else None,
            device_scale_factor=scale,
        )
        try:
            await context.route("**/*", self._block)
            page = await context.new_page()
        except BaseException:
            self._in_background(_close_context(context))
            raise
        self.contexts_opened += 1
        tab = _Tab(key, browser, context, page)
        page.on("crash", tab.on_crash)
        return tab

    def _take_warm(self, browser: Browser, key: TabKey) -> _Tab | None:
        tab = self._warm.pop(key, None)
        if tab is None:
            return None
        if tab.browser is browser and not tab.crashed:
            return tab
        self._in_background(_close_context(tab.context))
        return None

    def _keep_warm(self, tab: _Tab) -> None:
        if tab.crashed or tab.browser is not self._browser or not tab.browser.is_connected():
            self._in_background(_close_context(tab.context))
            return
        self._warm[tab.key] = tab
        while len(self._warm) > WARM_TABS:
            _, oldest = self._warm.popitem(last=False)
            self._in_background(_close_context(oldest.context))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _block(self, route: Route) -> None:
        self.blocked_requests += 1
        # "aborted" (net::ERR_ABORTED) leaves no error page behind: a blocked navigation (a meta
        # refresh, an iframe) keeps the document that was given.
        await route.abort("aborted")

    # --- the browser ---

    async def _ready_browser(self) -> Browser:
        if self._browser is not None and (
            not self._browser.is_connected() or self._browser_uses >= self._settings.export_browser_max_uses
        ):
            await self._discard_browser()
        if self._browser is None:
            self._browser = await self._launch()
            self._browser_pid = await _browser_pid(self._browser)
            self._browser_uses = 0
            self.launches += 1
        return self._browser

    async def _launch(self) -> Browser:
        timeout = self._settings.export_launch_timeout_seconds
        async with asyncio.timeout(timeout + 1):
            if self._playwright is None:
                self._playwright = await async_playwright().start()
            if self.executable is None:
                bundled = self._playwright.chromium.executable_path
                self.executable = find_chromium(self._settings.chromium_path, bundled)
            return await self._playwright.chromium.launch(
                executable_path=self.executable,
                args=launch_args(),
                chromium_sandbox=not needs_no_sandbox(),
                timeout=timeout * 1000,
            )

    async def _discard_browser(self, *, hung: bool = False) -> None:
        """Closes the browser. One that is hung (or does not close in time) is killed: Playwright
        would wait for it to close forever."""
        browser, self._browser = self._browser, None
        pid, self._browser_pid = self._browser_pid, None
        self._warm.clear()  # their contexts go with the browser
        if browser is None:
            return
        if not hung:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await browser.close()
                return
            except (PlaywrightError, TimeoutError) as exc:
                log.warning("Chromium did not close (%s); killing it", _brief(exc))
        if pid is not None and _kill_process_group(pid):
            # Playwright sees the pipe close and lets go of the browser.
            with contextlib.suppress(PlaywrightError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await browser.close()
            return
        # Without its pid, the driver is the one that can kill what it launched.
        await self._stop_driver()

    async def _stop_driver(self) -> None:
        driver, self._playwright = self._playwright, None
        if driver is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await driver.stop()


def _checked(options: export_pb2.ExportOptions) -> export_pb2.ExportOptions:
    """Normalized options, refused (before any browser work) when Chromium could not honour them.
    The rpc validated them already; this guards other callers."""
    opts = normalized(options)
    if opts.paper_size not in PAPER_NAMES:
        raise InvalidArgument.field("options.paper_size", f"unknown paper size {opts.paper_size}")
    if opts.orientation not in (export_pb2.ORIENTATION_PORTRAIT, export_pb2.ORIENTATION_LANDSCAPE):
        raise InvalidArgument.field("options.orientation", f"unknown orientation {opts.orientation}")
    if not 1 <= opts.scale_factor <= MAX_SCALE_FACTOR:
        raise InvalidArgument.field("options.scale_factor", f"must be 1-{MAX_SCALE_FACTOR}, not {opts.scale_factor}")
    if not 1 <= opts.width_px <= MAX_WIDTH_PX:
        raise InvalidArgument.field("options.width_px", f"must be 1-{MAX_WIDTH_PX}, not {opts.width_px}")
    m = opts.margins
    if min(m.top_mm, m.right_mm, m.bottom_mm, m.left_mm) < 0:
        raise InvalidArgument.field("options.margins", "margins cannot be negative")
    area = geometry(opts)
    if area.content_width_px <= 0 or area.content_height_px <= 0:
        raise InvalidArgument.field("options.margins", "the margins leave no room on the page for the content")
    return opts


async def _close_context(context: BrowserContext) -> None:
    with contextlib.suppress(PlaywrightError, TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await context.close()


async def _load(page: Page, html: str, timeout_seconds: float) -> None:
    """The page, loaded, with its fonts ready. JavaScript is off for the page, but Playwright's own
    evaluation still runs, so the FontFaceSet can be awaited: no text is printed in a fallback font."""
    await page.set_content(html, wait_until="load", timeout=timeout_seconds * 1000)
    await page.evaluate("document.fonts.ready.then(() => document.fonts.status)")


async def _browser_pid(browser: Browser) -> int | None:
    """The browser process's id, to kill it should it hang (Playwright does not tell it)."""
    try:
        session = await browser.new_browser_cdp_session()
        info = await session.send("SystemInfo.getProcessInfo")
        await session.detach()
    except PlaywrightError as exc:
        log.warning("Chromium's process id is unknown (%s)", _brief(exc))
        return None
    for process in info.get("processInfo", []):
        if process.get("type") == "browser":
            return int(process["id"])
    return None


def _kill_process_group(pid: int) -> bool:
    """SIGKILL to the browser and, when it leads its process group (Playwright starts it so), to
    its renderers and helpers. False when it could not be signalled."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True  # already gone
    except PermissionError:
        return False
    return True


def _brief(exc: BaseException) -> str:
    """The first line of an error (Playwright appends call logs), without anything of the page."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first[:300]
