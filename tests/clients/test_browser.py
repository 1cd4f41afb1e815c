"""The SDK in a browser: the page in clients/ts/browser bundled with esbuild and driven in real
Chromium (Debian's, found the way exports find it) with Playwright, served by the package's page
site (tests/clients/conftest.py) from an origin the server's CORS allows.

`test_the_page_reads_the_server_over_the_browser_protocol` runs the page against the server's HTTP
face over the Connect protocol (binary and JSON) and gRPC-Web: it lists dashboards, reads a widget's data
and shows a field violation from a bad request, every call cross-origin (CORS preflight
included). `test_the_bundled_page_speaks_the_connect_protocol` points the page at the page site
itself, which records the requests and answers 404 (UNIMPLEMENTED in the Connect protocol): it
pins down the request shape. `test_server_streams_through_connect_es` runs connect-es's browser
protocol transports from Node (tests/clients/node/browser_protocols.ts) for what a page would
stream: a watch followed to its end, a verified download, a failed watch's details."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from server.exports.chromium import find_chromium
from tests.clients.conftest import ROOT, PageSite, Stack, need, run_node


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


@pytest.fixture
def static_site(bundle: Path, page_site: PageSite) -> tuple[str, list[dict[str, Any]]]:
    page_site.posts.clear()
    return page_site.origin, page_site.posts


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


def _widget(stack: Stack, token: str) -> str:
    """A published dashboard with a KPI widget of the facility, made over gRPC; its widget id."""
    import grpc

    from dashboard.v1 import dashboard_pb2 as d
    from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
    from dashboard.v1 import query_pb2 as q
    from dashboard.v1 import widget_pb2 as w
    from tests.clients.conftest import FACILITY

    md = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(stack.address) as channel:
        query = query_pb2_grpc.QueryServiceStub(channel).CreateQuery(
            q.CreateQueryRequest(query=q.Query(facility_id=FACILITY, name="browser", sql="SELECT 7 AS n")), metadata=md
        )
        boards = dashboard_pb2_grpc.DashboardServiceStub(channel)
        board = boards.CreateDashboard(
            d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=FACILITY, title="In a browser")), metadata=md
        )
        widget = widget_pb2_grpc.WidgetServiceStub(channel).CreateWidget(
            w.CreateWidgetRequest(
                widget=w.Widget(
                    dashboard_id=board.id,
                    title="Seven",
                    position=w.GridPosition(x=0, y=0, width=3, height=2),
                    query=w.QueryBinding(query_id=query.id),
                    kpi=w.KpiConfig(value_column="n"),
                )
            ),
            metadata=md,
        )
        boards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=md)
    widget_id: str = widget.id
    return widget_id


@pytest.mark.parametrize(
    ("protocol", "binary"), [("connect", "true"), ("connect", "false"), ("grpc-web", "true")],
    ids=["connect-proto", "connect-json", "grpc-web"],
)  # fmt: skip
def test_the_page_reads_the_server_over_the_browser_protocol(
    stack: Stack, static_site: tuple[str, list[dict[str, Any]]], protocol: str, binary: str
) -> None:
    http_address = need(stack.jobs.server.http_address, "the server's HTTP face")
    origin, posts = static_site
    token = stack.token()
    widget_id = _widget(stack, token)
    query = urllib.parse.urlencode(
        {
            "baseUrl": f"http://{http_address}",
            "token": token,
            "widget": widget_id,
            "protocol": protocol,
            "binary": binary,
        }
    )
    shown = open_page(f"{origin}/index.html?{query}")
    assert shown["errors"] == [] and posts == [], shown
    assert shown["items"], "the page lists the facility's dashboards"
    assert shown["widget-data"], shown
    data = json.loads(shown["widget-data"])
    assert data["widgetId"] == widget_id and data["rows"] == [{"n": "7"}]  # int64 as a string, shown
    bad = json.loads(shown["bad-request"])
    assert bad["code"] == "INVALID_ARGUMENT" and bad["reason"], bad
    assert {"dashboard.title", "dashboard.tags[0]"} <= {v["field"] for v in bad["fieldViolations"]}


@pytest.mark.parametrize("protocol", ["connect", "connect-json", "grpc-web"])
def test_server_streams_through_connect_es(node: str, ts_build: Path, stack: Stack, protocol: str) -> None:
    """connect-es's own Connect and gRPC-Web transports (from Node) follow an export's watch to the
    end, download it verified, follow a materialization, and read a failed watch's details."""
    http_address = need(stack.jobs.server.http_address, "the server's HTTP face")
    done = run_node(node, ts_build / "tests/clients/node/browser_protocols.js", http_address, protocol,
                    env={"TESSERA_TOKEN": stack.token()}, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["export"]["state"] == "SUCCEEDED" and seen["export"]["magic"] == "%PDF-", seen
    # Every snapshot the watch carried, in order, the last one the job's end. Often several, but
    # an export on a warm browser can end before the watch opens: its end is then the only one.
    revisions = [int(r) for r in seen["export"]["revisions"]]
    assert revisions and revisions == sorted(set(revisions)), revisions
    assert revisions[-1] == int(seen["export"]["final"]), seen
    assert str(seen["export"]["size"]) == seen["declared"]
    assert seen["materialization"] == "SUCCEEDED"
    assert seen["missing"]["code"] == "NOT_FOUND" and seen["missing"]["reason"], seen
