"""The generated OpenAPI document (gen/openapi) against the bindings and the running server, and
the /docs reference in real Chromium: every operation listed, a call made from the page works."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from server.exports.chromium import find_chromium
from server.http.bindings import bindings

DOC = Path(__file__).resolve().parents[2] / "gen" / "openapi" / "tessera.openapi.json"


def _doc() -> dict[str, Any]:
    return json.loads(DOC.read_text())


def test_every_binding_is_an_operation_with_its_schemas() -> None:
    doc = _doc()
    operations = {op["operationId"]: (path, verb) for path, item in doc["paths"].items() for verb, op in item.items()}
    assert len(operations) == len(bindings())
    for binding in bindings():
        name = f"{binding.method.containing_service.name}_{binding.method.name}"
        assert name in operations, name
    schemas = doc["components"]["schemas"]
    dashboard = schemas["dashboard.v1.Dashboard"]
    assert dashboard["description"] and "title" in dashboard.get("required", [])
    assert dashboard["properties"]["createTime"]["readOnly"] is True
    assert dashboard["properties"]["createTime"]["format"] == "date-time"
    assert dashboard["properties"]["version"]["type"] == "string"  # int64 as a string
    get = doc["paths"]["/api/v1/dashboard/dashboards/{id}"]["get"]
    assert get["parameters"][0]["schema"]["format"] == "uuid"
    listing = {p["name"]: p for p in doc["paths"]["/api/v1/dashboard/dashboards"]["get"]["parameters"]}
    assert listing["pageSize"]["schema"] == {"type": "integer", "format": "int32", "minimum": 0, "maximum": 1000}
    assert "update_time desc" in listing["orderBy"]["schema"]["enum"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert get["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("google.rpc.Status")


def test_the_server_serves_the_document(rest: httpx.Client) -> None:
    served = rest.get("/openapi.json")
    assert served.status_code == 200 and served.json() == _doc()
    yaml_doc = rest.get("/openapi.yaml")
    assert yaml_doc.status_code == 200 and yaml_doc.headers["content-type"].startswith("application/yaml")
    assert yaml_doc.text.startswith("openapi: 3.1.0")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=find_chromium("", None), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


def test_docs_lists_every_operation_and_calls_with_a_token(
    browser: Browser, http_base: str, auth: Any, facility: str, dashboards: Any
) -> None:
    from dashboard.v1 import dashboard_pb2 as d

    md = auth("docs-reader", "editor", facility)
    dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Seen from docs")), metadata=md
    )
    requested: list[str] = []
    page = browser.new_page()
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{http_base}/docs#/DashboardService/DashboardService_ListDashboards")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() == len(bindings())
    assert all(url.startswith(http_base) for url in requested), "no CDN: everything from this server"
    page.click("button.authorize")
    page.locator(".auth-container input").first.fill(dict(md)["authorization"].removeprefix("Bearer "))
    page.locator(".auth-container button.authorize").first.click()
    page.click("button.btn-done")
    block = page.locator("#operations-DashboardService-DashboardService_ListDashboards")
    block.locator("input[placeholder='facilityId']").fill(facility)
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=30_000)
    assert status.inner_text().strip().startswith("200")
    assert "Seen from docs" in block.locator(".live-responses-table .microlight").first.inner_text()
    page.close()
