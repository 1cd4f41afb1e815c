"""The SDK in a browser: the page in clients/ts/browser bundled with esbuild and driven in real
Chromium (Debian's, found the way exports find it) with Playwright.

`test_the_bundled_page_speaks_the_connect_protocol` runs today: the page is served by a
recording HTTP endpoint of the test's own (it answers every rpc 404, which the Connect protocol
maps to UNIMPLEMENTED); it proves the bundle loads and runs the SDK in Chromium, and pins down
the requests the server's HTTP face will receive. `test_the_page_reads_the_server_over_the_browser_protocol`
needs that HTTP face (issue 12) and is skipped until the server serves it."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.exports.chromium import find_chromium
from tests.clients.conftest import ROOT, Stack, need


@pytest.fixture(scope="module")
def bundle(node: str) -> Path:
    built = subprocess.run(
        ["bash", "clients/ts/build-browser.sh"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert built.returncode == 0, built.stdout + built.stderr
    out = ROOT / "build/browser"
    script = (out / "page.js").read_text()
    assert "http2" not in script, "the browser bundle must not pull in Node's HTTP/2"
    return out


class Recorder(http.server.SimpleHTTPRequestHandler):
    """Serves the bundle; records every POST (an rpc) and answers it 404 (no such route)."""

    posts: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        self.posts.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "size": len(body)}
        )
        self.send_response(404)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"no rpcs here")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def static_site(bundle: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    posts: list[dict[str, Any]] = []
    handler = type("Handler", (Recorder,), {"posts": posts})

    def make(*args: Any) -> Recorder:
        made: Recorder = handler(*args, directory=str(bundle))
        return made

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", posts
    finally:
        server.shutdown()
        server.server_close()


def open_page(url: str) -> dict[str, Any]:
    """Loads the page in Chromium until it has done everything; returns what it shows."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium(os.environ.get("TESSERA_CHROMIUM_PATH", ""), None)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            page.wait_for_selector("body[data-done=true]", timeout=30_000)
            shown: dict[str, Any] = {
                key: page.text_content(f"#{key}") or "" for key in ("dashboards-status", "widget-data", "bad-request")
            }
            shown["items"] = page.eval_on_selector_all("#dashboards li", "items => items.map(i => i.dataset.id)")
            shown["errors"] = errors
            return shown
        finally:
            browser.close()


def test_the_bundled_page_speaks_the_connect_protocol(static_site: tuple[str, list[dict[str, Any]]]) -> None:
    origin, posts = static_site
    query = urllib.parse.urlencode({"baseUrl": origin, "token": "a.b.c"})
    shown = open_page(f"{origin}/index.html?{query}")
    assert shown["errors"] == []
    status = json.loads(shown["dashboards-status"])
    bad = json.loads(shown["bad-request"])
    assert status["code"] == "UNIMPLEMENTED" and bad["code"] == "UNIMPLEMENTED", shown
    paths = [post["path"] for post in posts]
    # UNIMPLEMENTED is not retryable: each rpc once.
    assert paths == ["/dashboard.v1.DashboardService/ListDashboards", "/dashboard.v1.DashboardService/CreateDashboard"]
    for post in posts:
        headers = post["headers"]
        assert headers["content-type"] == "application/proto"
        assert headers["connect-protocol-version"] == "1"
        assert headers["authorization"] == "Bearer a.b.c"
        assert "connect-timeout-ms" in headers
        assert post["size"] > 0


def test_the_page_reads_the_server_over_the_browser_protocol(stack: Stack, static_site: tuple[str, Any]) -> None:
    http_address = getattr(stack.jobs.server, "http_address", None)
    if not http_address:
        pytest.skip(
            "waiting for the server's HTTP face (issue 12, server/http): it must answer the Connect protocol "
            "(POST /dashboard.v1.<Service>/<Method>, application/proto and application/json, "
            "Connect-Protocol-Version: 1) with CORS for the page's origin; enable by exposing its "
            "address as ServerHandle.http_address"
        )
    need(http_address, "the server's HTTP face")
    origin, _ = static_site
    query = urllib.parse.urlencode({"baseUrl": f"http://{http_address}", "token": stack.token()})
    shown = open_page(f"{origin}/index.html?{query}")
    assert shown["errors"] == []
    assert shown["items"], "the page lists the facility's dashboards"
    data = json.loads(shown["widget-data"])
    assert data["widgetId"] and data["rows"], shown
    bad = json.loads(shown["bad-request"])
    assert bad["code"] == "INVALID_ARGUMENT" and bad["reason"]
    assert {"dashboard.title", "dashboard.tags[0]"} <= {v["field"] for v in bad["fieldViolations"]}
