"""The Chromium printer for exports, with a real Chromium: files opened with poppler and Pillow
(page sizes, orientation, page counts, header/footer, repeated table headers, unicode, PNG
dimensions and transparency), no request leaving the page and no script running, and the
failure paths for real (browser and renderer killed, a hung browser, a missing executable,
recycling after N uses)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
from PIL import Image, ImageChops
from pypdf import PdfReader

from dashboard.v1 import export_pb2 as e
from server.config import Settings
from server.errors import InvalidArgument
from server.exports.browser import PrintedFile, Printer, PrintFailed
from server.exports.options import PAPER_MM

pytestmark = pytest.mark.asyncio(loop_scope="module")

PT_PER_MM = 72 / 25.4


# --- poppler ---


def _pdf_file(pdf: PrintedFile, tmp_path: Path) -> Path:
    path = tmp_path / f"out-{time.monotonic_ns()}.pdf"
    path.write_bytes(pdf.data)
    return path


def pdfinfo(pdf: PrintedFile, tmp_path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(_pdf_file(pdf, tmp_path))], capture_output=True, text=True, check=True)
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.stdout.splitlines())}


def page_size_pts(info: dict[str, str]) -> tuple[float, float]:
    match = re.match(r"([\d.]+) x ([\d.]+) pts", info["Page size"])
    assert match, info["Page size"]
    return float(match.group(1)), float(match.group(2))


def pdftotext(pdf: PrintedFile, tmp_path: Path, page: int | None = None, *extra: str) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    args = ["pdftotext", *pages, *extra, str(_pdf_file(pdf, tmp_path)), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def pdffonts(pdf: PrintedFile, tmp_path: Path) -> str:
    args = ["pdffonts", str(_pdf_file(pdf, tmp_path))]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def pdf_page_image(pdf: PrintedFile, tmp_path: Path) -> Image.Image:
    path = _pdf_file(pdf, tmp_path)
    subprocess.run(["pdftoppm", "-r", "30", "-f", "1", "-l", "1", "-png", str(path), str(path)], check=True)
    (rendered,) = tmp_path.glob(f"{path.name}*.png")
    return Image.open(rendered).convert("RGB")


# --- Chromium processes of this test process ---


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return []
        return proc.cmdline()
    except psutil.Error:
        return []


def chromium_processes(kind: str = "browser") -> set[int]:
    """Pids of Chromium's browser processes (no --type) or of one --type under this process."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        cmd = _cmdline(proc)
        if not cmd or "chrom" not in os.path.basename(cmd[0]):
            continue
        types = [arg.removeprefix("--type=") for arg in cmd if arg.startswith("--type=")]
        if (kind == "browser" and not types) or kind in types:
            found.add(proc.pid)
    return found


def descendants(pid: int) -> set[int]:
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def wait_gone(pid: int) -> None:
    for _ in range(500):
        if not running(pid):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"process {pid} still running")


async def launched_browser(printer: Printer) -> int:
    """Warms the printer and returns the pid of the browser it launched."""
    before = chromium_processes()
    await printer.png(SMALL, e.ExportOptions(width_px=200, scale_factor=1))
    (pid,) = chromium_processes() - before
    return pid


async def when_blocked(printer: Printer, count: int) -> None:
    """Waits until the printer's route saw a request: the export is inside set_content."""
    for _ in range(10_000):
        if printer.blocked_requests >= count:
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the export never asked for its image")


# --- pages ---

SMALL = "<!doctype html><html><head><meta charset=utf-8></head><body><p>small page</p></body></html>"


def page(body: str, style: str = "") -> str:
    return f"<!doctype html><html><head><meta charset=utf-8><style>{style}</style></head><body>{body}</body></html>"


def big_table(rows: int) -> str:
    body = "".join(f"<tr><td>row-{i}</td><td>{i * 7}</td></tr>" for i in range(rows))
    return page(
        f"<table><thead><tr><th>Facility name</th><th>Admissions count</th></tr></thead><tbody>{body}</tbody></table>",
        "table{border-collapse:collapse;width:100%} td,th{border:1px solid #999;padding:4px}",
    )


MONO_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")


def font_data_url(path: Path) -> str:
    return "data:font/ttf;base64," + base64.b64encode(path.read_bytes()).decode()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def printer() -> AsyncIterator[Printer]:
    shared = Printer(Settings())
    yield shared
    await shared.close()


# --- a local server that counts every connection and request ---


@dataclass
class Sentinel:
    url: str
    connections: list[tuple[str, int]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def sentinel() -> Iterator[Sentinel]:
    holder: dict[str, Sentinel] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            holder["s"].requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"SERVED")

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            holder["s"].connections.append(client_address)
            return True

    server = Server(("127.0.0.1", 0), Handler)
    holder["s"] = Sentinel(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["s"]
    server.shutdown()
    server.server_close()


# --- nothing leaves the page, nothing runs ---


async def test_no_request_leaves_the_page_and_no_script_runs(
    printer: Printer, sentinel: Sentinel, tmp_path: Path
) -> None:
    u = sentinel.url
    html = f"""<!doctype html><html><head><meta charset=utf-8>
<link rel=stylesheet href="{u}/style.css">
<link rel=preconnect href="{u}"><link rel=dns-prefetch href="{u}"><link rel=prefetch href="{u}/prefetch">
<link rel=preload as=image href="{u}/preload.png"><link rel=icon href="{u}/favicon.ico">
<meta http-equiv=refresh content="0;url={u}/refresh">
<style>
  body {{ background: url({u}/background.png) }}
  @font-face {{ font-family: Remote; src: url({u}/font.woff2) }}
  h1 {{ font-family: Remote, sans-serif }}
</style></head>
<body><h1 id=t>ORIGINAL TEXT</h1>
<img src="{u}/image.png" srcset="{u}/image2x.png 2x"><iframe src="{u}/frame.html"></iframe>
<svg width=10 height=10><image href="{u}/svg-image.png" width=10 height=10 /></svg>
<object data="{u}/object"></object><video poster="{u}/poster.png"></video>
<script>document.getElementById('t').textContent = 'SCRIPT RAN'</script>
<script src="{u}/app.js"></script>
</body></html>"""
    before = printer.blocked_requests
    pdf = await printer.pdf(html, e.ExportOptions())
    await printer.png(html, e.ExportOptions(width_px=400, scale_factor=1))
    await asyncio.sleep(0.5)  # anything late (a prefetch, a refresh) would have arrived by now

    assert sentinel.requests == []
    assert sentinel.connections == []
    assert printer.blocked_requests - before >= 10
    text = pdftotext(pdf, tmp_path)
    # The document given, not an error page from the blocked refresh, and untouched by its script.
    assert "ORIGINAL TEXT" in text
    assert "SCRIPT RAN" not in text
    assert "SERVED" not in text


# --- PDF ---


async def test_every_paper_size_and_orientation(printer: Printer, tmp_path: Path) -> None:
    for paper, (width_mm, height_mm) in PAPER_MM.items():
        for orientation in (e.ORIENTATION_PORTRAIT, e.ORIENTATION_LANDSCAPE):
            pdf = await printer.pdf(SMALL, e.ExportOptions(paper_size=paper, orientation=orientation))
            info = pdfinfo(pdf, tmp_path)
            width, height = page_size_pts(info)
            expected = (width_mm * PT_PER_MM, height_mm * PT_PER_MM)
            if orientation == e.ORIENTATION_LANDSCAPE:
                expected = expected[::-1]
            label = f"{e.PaperSize.Name(paper)} {e.Orientation.Name(orientation)}: {width} x {height}"
            assert abs(width - expected[0]) < 1.5 and abs(height - expected[1]) < 1.5, label
            assert (width > height) == (orientation == e.ORIENTATION_LANDSCAPE), label
            assert info["Pages"] == "1" and pdf.page_count == 1
            assert pdf.content_type == "application/pdf"
            assert abs(pdf.width_px - width * 96 / 72) <= 1 and abs(pdf.height_px - height * 96 / 72) <= 1


async def test_margins_in_millimetres_place_the_content(printer: Printer, tmp_path: Path) -> None:
    options = e.ExportOptions(margins=e.Margins(top_mm=25, right_mm=10, bottom_mm=15, left_mm=30))
    pdf = await printer.pdf(page("<p style='margin:0'>MARGINPROBE</p>", "body{margin:0}"), options)
    bbox = pdftotext(pdf, tmp_path, 1, "-bbox")
    match = re.search(r'<word xMin="([\d.]+)" yMin="([\d.]+)"[^>]*>MARGINPROBE<', bbox)
    assert match, bbox
    x, y = float(match.group(1)), float(match.group(2))
    assert abs(x - 30 * PT_PER_MM) < 2, x
    assert abs(y - 25 * PT_PER_MM) < 4, y  # glyph boxes, not the line box: a few points either way


async def test_long_page_header_footer_and_page_numbers(printer: Printer, tmp_path: Path) -> None:
    header = 'Q3 <b>report</b> & "friends"'
    footer = "Confidential — North General"
    html = page("".join(f"<p>paragraph {i}</p>" for i in range(150)))
    pdf = await printer.pdf(html, e.ExportOptions(paper_size=e.PAPER_SIZE_A4, header_text=header, footer_text=footer))

    info = pdfinfo(pdf, tmp_path)
    assert pdf.page_count == int(info["Pages"]) >= 3
    for number in range(1, pdf.page_count + 1):
        text = pdftotext(pdf, tmp_path, number)
        assert header in text  # escaped in the template, so printed literally
        assert footer in text
        assert f"Page {number} of {pdf.page_count}" in text
    assert "paragraph 149" in pdftotext(pdf, tmp_path)


async def test_title_becomes_the_documents_title(printer: Printer) -> None:
    html = "<!doctype html><html><head><title>from the page</title></head><body>x</body></html>"
    pdf = await printer.pdf(html, e.ExportOptions(), title="Bed occupancy — Q3 日本")
    metadata = PdfReader(io.BytesIO(pdf.data)).metadata
    assert metadata is not None and metadata.title == "Bed occupancy — Q3 日本"


async def test_long_table_repeats_its_header_on_the_next_page(printer: Printer, tmp_path: Path) -> None:
    pdf = await printer.pdf(big_table(120), e.ExportOptions(orientation=e.ORIENTATION_PORTRAIT))
    assert pdf.page_count >= 2
    first, second = pdftotext(pdf, tmp_path, 1), pdftotext(pdf, tmp_path, 2)
    for text in (first, second):
        assert "Facility name" in text and "Admissions count" in text
    # Page 2 continues the rows rather than repeating them.
    last_on_first = max(int(n) for n in re.findall(r"row-(\d+)", first))
    assert f"row-{last_on_first + 1}" in second


async def test_unicode_text_comes_out_of_the_pdf(printer: Printer, tmp_path: Path) -> None:
    words = ["Café", "déjà", "naïve", "Zürich", "日本語", "中文", "مرحبا", "שלום"]
    html = page(
        "<p>Café déjà vu, naïve façade, Zürich</p><p>日本語のテキスト, 中文</p>"
        "<p dir=rtl>مرحبا بالعالم</p><p dir=rtl>שלום עולם</p>"
    )
    pdf = await printer.pdf(html, e.ExportOptions(header_text="Rapport — 日本語 — שלום"))
    text = pdftotext(pdf, tmp_path)
    for word in words:
        assert word in text, word
    assert text.count("日本語") >= 2  # the body and the header


async def test_no_script_renders_as_missing_glyph_boxes(printer: Printer) -> None:
    """Text extraction cannot tell a glyph from a box (a missing glyph still maps to its
    character), pixels can: each word must look different from as many characters no font has,
    while two such strings look the same (so the comparison would catch boxes)."""
    missing = "\U0010fffd"
    words = ["日本語", "中文字", "مرحبا", "שלום", "déjà", missing * 3]
    boxes = [missing * len(word) for word in words]

    def rows(texts: list[str]) -> str:
        cell = "height:60px;line-height:60px;font-size:40px;white-space:nowrap"
        return page("".join(f"<div style='{cell}'>{t}</div>" for t in texts), "body{margin:0}")

    options = e.ExportOptions(width_px=400, scale_factor=1)
    drawn = Image.open(io.BytesIO((await printer.png(rows(words), options)).data)).convert("RGB")
    fallback = Image.open(io.BytesIO((await printer.png(rows(boxes), options)).data)).convert("RGB")
    for i, word in enumerate(words):
        box = (0, i * 60, 400, (i + 1) * 60)
        differs = ImageChops.difference(drawn.crop(box), fallback.crop(box)).getbbox() is not None
        assert differs == (word != boxes[i]), word


async def test_fonts_the_page_embeds_are_loaded_before_printing(printer: Printer, tmp_path: Path) -> None:
    style = f"@font-face{{font-family:Embedded;src:url({font_data_url(MONO_FONT)})}} p{{font-family:Embedded}}"
    pdf = await printer.pdf(page("<p>embedded font text</p>", style), e.ExportOptions())
    assert "DejaVuSansMono" in pdffonts(pdf, tmp_path)
    assert "embedded font text" in pdftotext(pdf, tmp_path)


async def test_print_media_for_pdf_screen_media_for_png_and_backgrounds(printer: Printer, tmp_path: Path) -> None:
    html = page(
        "<p>media</p>",
        "@media screen { html, body { background: rgb(0, 128, 0) } }"
        "@media print { html, body { background: rgb(200, 0, 0) } }"
        "html, body { height: 100%; margin: 0 }",
    )
    with_background = await printer.pdf(html, e.ExportOptions(print_background=True))
    without = await printer.pdf(html, e.ExportOptions(print_background=False))
    png = await printer.png(html, e.ExportOptions(width_px=300, scale_factor=1))

    image = pdf_page_image(with_background, tmp_path)
    centre = (image.width // 2, image.height // 2)
    assert image.getpixel(centre) == pytest.approx((200, 0, 0), abs=8)
    assert pdf_page_image(without, tmp_path).getpixel(centre) == (255, 255, 255)
    assert Image.open(io.BytesIO(png.data)).convert("RGB").getpixel((5, 5)) == (0, 128, 0)


# --- PNG ---


@pytest.mark.parametrize("scale", [1, 3])
async def test_png_full_page_at_width_times_scale(printer: Printer, scale: int) -> None:
    html = page("<div style='height:1500px;background:#eee'>tall</div>", "body{margin:0}")
    png = await printer.png(html, e.ExportOptions(width_px=480, scale_factor=scale))
    image = Image.open(io.BytesIO(png.data))
    assert png.content_type == "image/png" and png.page_count == 1
    assert image.size == (png.width_px, png.height_px) == (480 * scale, 1500 * scale)


async def test_png_transparent_only_when_asked(printer: Printer) -> None:
    html = page("<p style='font-size:40px'>text on nothing</p>")
    transparent = await printer.png(html, e.ExportOptions(width_px=400, scale_factor=2, transparent_background=True))
    opaque = await printer.png(html, e.ExportOptions(width_px=400, scale_factor=2))

    alpha = Image.open(io.BytesIO(transparent.data)).convert("RGBA").getchannel("A")
    assert alpha.getextrema() == (0, 255)  # transparent background, opaque text
    assert alpha.getpixel((0, 0)) == 0
    assert Image.open(io.BytesIO(opaque.data)).convert("RGBA").getchannel("A").getextrema() == (255, 255)


async def test_warm_contexts_are_reused_per_geometry_and_closed_with_the_printer() -> None:
    printer = Printer(Settings())
    try:
        for width in (300, 300, 400):
            await printer.png(SMALL, e.ExportOptions(width_px=width, scale_factor=1))
        await printer.pdf(SMALL, e.ExportOptions())
        await printer.pdf(SMALL, e.ExportOptions())
        await printer.settle()
        # 300 px twice in one context; 400 px and the PDF in their own; the least recently used
        # (300 px) closed once a third geometry came.
        assert printer.contexts_opened == 3
        assert printer.open_contexts == 2
        assert printer.uses == 5 and printer.launches == 1
    finally:
        await printer.close()
    assert printer.open_contexts == 0


async def test_nothing_of_one_export_is_left_in_the_next_on_a_warm_page(printer: Printer, tmp_path: Path) -> None:
    first = await printer.pdf(
        page("<h1>FIRST-EXPORT-SECRET</h1>" + "<p>filler</p>" * 200), e.ExportOptions(), title="A"
    )
    second = await printer.pdf(page("<p>second</p>"), e.ExportOptions())
    assert "FIRST-EXPORT-SECRET" in pdftotext(first, tmp_path)
    text = pdftotext(second, tmp_path)
    assert "second" in text and "FIRST-EXPORT-SECRET" not in text and "filler" not in text
    assert second.page_count == 1 and PdfReader(io.BytesIO(second.data)).metadata.title != "A"
    # A short page after a tall one on the same warm page comes out as it did before it.
    options = e.ExportOptions(width_px=500, scale_factor=1)
    short = await printer.png(page("<p>short</p>"), options)
    tall = await printer.png(page("<div style='height:3000px;background:#c00'>tall</div>"), options)
    again = await printer.png(page("<p>short</p>"), options)
    assert tall.height_px >= 3000 > again.height_px == short.height_px
    assert (
        ImageChops.difference(Image.open(io.BytesIO(short.data)), Image.open(io.BytesIO(again.data))).getbbox() is None
    )


@pytest.mark.parametrize(
    ("options", "path"),
    [
        (e.ExportOptions(scale_factor=5), "options.scale_factor"),
        (e.ExportOptions(width_px=-1), "options.width_px"),
        (e.ExportOptions(paper_size=99), "options.paper_size"),
        (e.ExportOptions(margins=e.Margins(left_mm=-1)), "options.margins"),
        (e.ExportOptions(margins=e.Margins(left_mm=150, right_mm=150)), "options.margins"),
    ],
)
async def test_options_chromium_cannot_honour_are_refused_up_front(
    printer: Printer, options: e.ExportOptions, path: str
) -> None:
    launches, failures = printer.launches, printer.failed_attempts
    with pytest.raises(InvalidArgument) as refused:
        await printer.pdf(SMALL, options)
    assert [v.field for v in refused.value.violations] == [path]
    assert (printer.launches, printer.failed_attempts) == (launches, failures)


# --- failures, for real ---


async def test_browser_killed_between_exports_is_replaced(tmp_path: Path) -> None:
    printer = Printer(Settings())
    try:
        pid = await launched_browser(printer)
        os.kill(pid, signal.SIGKILL)
        await wait_gone(pid)
        pdf = await printer.pdf(SMALL, e.ExportOptions())
        assert "small page" in pdftotext(pdf, tmp_path)
        assert printer.launches == 2
    finally:
        await printer.close()


async def test_browser_killed_during_an_export_is_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    printer = Printer(Settings())
    try:
        pid = await launched_browser(printer)
        # The image request tells the test the export is inside set_content; the table keeps it busy.
        html = big_table(1500).replace("<table>", '<img src="http://127.0.0.1:9/marker.png"><table>')
        task = asyncio.create_task(printer.pdf(html, e.ExportOptions()))
        await when_blocked(printer, printer.blocked_requests + 1)
        os.kill(pid, signal.SIGKILL)
        pdf = await task

        assert printer.launches == 2 and printer.failed_attempts == 1
        assert "PDF print attempt 1 of 3 failed: Chromium exited (browser disconnected)" in caplog.text
        assert pdf.page_count > 10
        assert "row-1499" in pdftotext(pdf, tmp_path, pdf.page_count)
    finally:
        await printer.close()


async def test_renderer_crash_during_an_export_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    printer = Printer(Settings(export_print_timeout_seconds=30))
    try:
        pid = await launched_browser(printer)
        html = big_table(1500).replace("<table>", '<img src="http://127.0.0.1:9/marker.png"><table>')
        task = asyncio.create_task(printer.png(html, e.ExportOptions(width_px=600, scale_factor=1)))
        await when_blocked(printer, printer.blocked_requests + 1)
        renderers = chromium_processes("renderer") & descendants(pid)
        assert renderers
        for renderer in renderers:
            os.kill(renderer, signal.SIGKILL)
        png = await task

        assert printer.launches == 2 and printer.failed_attempts == 1
        assert "PNG print attempt 1 of 3 failed: the page crashed" in caplog.text
        assert png.width_px == 600 and png.height_px > 10000
    finally:
        await printer.close()


async def test_a_hung_browser_times_out_and_is_killed(caplog: pytest.LogCaptureFixture) -> None:
    printer = Printer(Settings(export_print_timeout_seconds=3, export_print_attempts=2))
    pid = await launched_browser(printer)
    try:
        os.kill(pid, signal.SIGSTOP)
        png = await printer.png(SMALL, e.ExportOptions(width_px=200, scale_factor=1))
        assert png.width_px == 200
        assert printer.launches == 2 and printer.failed_attempts == 1
        assert "PNG print attempt 1 of 2 failed: printing took longer than 3 s" in caplog.text
        await wait_gone(pid)  # killed, not left stopped
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        await printer.close()


async def test_timeouts_on_every_attempt_fail_clearly() -> None:
    before = chromium_processes()
    printer = Printer(Settings(export_print_timeout_seconds=0.001, export_print_attempts=2))
    try:
        with pytest.raises(PrintFailed) as failed:
            await printer.pdf(page("<p>SECRET-PAGE-CONTENT</p>"), e.ExportOptions())
        message = str(failed.value)
        assert message.startswith("PDF print failed after 2 attempts")
        assert message.count("took longer than 0.001 s") == 2
        assert "SECRET-PAGE-CONTENT" not in message
        assert failed.value.attempts == 2 and printer.launches == 2 and printer.uses == 0
    finally:
        await printer.close()
    assert chromium_processes() - before == set()  # every timed-out browser was killed


async def test_missing_executable_fails_after_the_configured_attempts() -> None:
    printer = Printer(Settings(chromium_path="/nonexistent/chromium", export_print_attempts=2))
    try:
        with pytest.raises(PrintFailed) as failed:
            await printer.png(page("<p>SECRET-PAGE-CONTENT</p>"), e.ExportOptions())
        message = str(failed.value)
        assert message.startswith("PNG print failed after 2 attempts")
        assert message.count("launching Chromium (/nonexistent/chromium) failed") == 2
        assert "SECRET-PAGE-CONTENT" not in message
        assert failed.value.attempts == 2
        assert printer.launches == 0 and printer.failed_attempts == 2
    finally:
        await printer.close()


async def test_browser_recycled_after_max_uses() -> None:
    before = chromium_processes()
    printer = Printer(Settings(export_browser_max_uses=2))
    try:
        for _ in range(5):
            await printer.png(SMALL, e.ExportOptions(width_px=200, scale_factor=1))
        assert printer.uses == 5
        assert printer.launches == 3  # uses 1-2, 3-4, 5
        assert len(chromium_processes() - before) == 1  # the replaced browsers were closed
    finally:
        await printer.close()
    assert chromium_processes() - before == set()
