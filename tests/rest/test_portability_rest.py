"""Dashboard documents over the HTTP face: the JSON Schema served at /schemas/..., a document
exported with `POST .../dashboards/{id}:exportDocument` valid against it, imported back with
`POST .../dashboards:import` (validate_only first), cloned with `POST .../dashboards/{id}:clone`
and several at once with `POST .../dashboards:batchClone`,
and an import with conflicts answered 400 with every field."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w

SCHEMA = Path(__file__).resolve().parents[2] / "gen" / "schema" / "dashboard-document.v1.json"
BOARDS = "/api/v1/dashboard/dashboards"


def _board(dashboards: Any, queries: Any, widgets: Any, md: Any, facility: str) -> str:
    query = queries.CreateQuery(
        q.CreateQueryRequest(query=q.Query(facility_id=facility, name="rest doc", sql="SELECT 1 AS one")), metadata=md
    )
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Over REST")), metadata=md
    )
    widgets.CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=board.id,
                title="one",
                position=w.GridPosition(x=0, y=0, width=4, height=2),
                kpi=w.KpiConfig(value_column="one"),
                query=w.QueryBinding(query_id=query.id),
            )
        ),
        metadata=md,
    )
    return str(board.id)


def test_documents_over_rest(
    rest: httpx.Client, auth: Any, facility: str, dashboards: Any, queries: Any, widgets: Any
) -> None:
    md = auth("rest-editor", "editor", facility)
    headers = dict(md)
    schema = rest.get("/schemas/dashboard-document.v1.json")
    assert schema.status_code == 200 and schema.headers["content-type"] == "application/schema+json"
    assert schema.json() == json.loads(SCHEMA.read_text())

    board_id = _board(dashboards, queries, widgets, md, facility)
    exported = rest.post(f"{BOARDS}/{board_id}:exportDocument", json={}, headers=headers)
    assert exported.status_code == 200, exported.text
    document = exported.json()
    jsonschema.validate(document, schema.json())
    assert document["widgets"][0]["queryKey"] == "q1" and document["queries"][0]["query"]["sql"] == "SELECT 1 AS one"

    # The source still has the document's title: renamed on request (the enum by its name).
    renamed = {"facilityId": facility, "document": document, "titleConflict": "TITLE_CONFLICT_POLICY_RENAME"}
    checked = rest.post(f"{BOARDS}:import", json={**renamed, "validateOnly": True}, headers=headers)
    assert checked.status_code == 200, checked.text
    assert (
        checked.json()["validateOnly"] is True
        and checked.json()["queries"][0]["action"] == "QUERY_IMPORT_ACTION_CREATED"
        and checked.json()["title"] == f"{document['dashboard']['title']} (2)"
    )

    imported = rest.post(f"{BOARDS}:import", json=renamed, headers=headers)
    assert imported.status_code == 200, imported.text
    new_id = imported.json()["dashboard"]["id"]
    again = rest.post(f"{BOARDS}/{new_id}:exportDocument", json={}, headers=headers).json()
    assert again["dashboard"].pop("title") == checked.json()["title"]
    assert again == {**document, "dashboard": {k: v for k, v in document["dashboard"].items() if k != "title"}}

    cloned = rest.post(f"{BOARDS}/{board_id}:clone", json={"title": "Cloned over REST"}, headers=headers)
    assert cloned.status_code == 200 and cloned.json()["dashboard"]["title"] == "Cloned over REST"

    broken = {**document, "schemaVersion": "tessera.dashboard/v2"}
    broken["widgets"] = [{**document["widgets"][0], "queryKey": "q5"}]
    refused = rest.post(f"{BOARDS}:import", json={"facilityId": facility, "document": broken}, headers=headers)
    assert refused.status_code == 400
    fields = [
        v["field"] for x in refused.json()["details"] if x["@type"].endswith("BadRequest") for v in x["fieldViolations"]
    ]
    assert fields == ["document.schema_version", "document.widgets[0].query_key", "document.dashboard.title"]


def test_batch_clone_over_rest(
    rest: httpx.Client, auth: Any, facility: str, dashboards: Any, queries: Any, widgets: Any
) -> None:
    md = auth("rest-batch-editor", "editor", facility)
    headers = dict(md)
    first, second = (_board(dashboards, queries, widgets, md, facility) for _ in range(2))
    body = {
        "requests": [{"id": first, "title": "First over REST"}, {"id": second, "title": "Second over REST"}],
        "requestId": str(uuid.uuid4()),
    }
    made = rest.post(f"{BOARDS}:batchClone", json=body, headers=headers)
    assert made.status_code == 200, made.text
    clones = made.json()["clones"]
    assert [c["dashboard"]["title"] for c in clones] == ["First over REST", "Second over REST"]
    assert [c["queries"][0]["action"] for c in clones] == ["QUERY_IMPORT_ACTION_MAPPED"] * 2
    again = rest.post(f"{BOARDS}:batchClone", json=body, headers=headers)
    assert [c["dashboard"]["id"] for c in again.json()["clones"]] == [c["dashboard"]["id"] for c in clones]

    twice = {"requests": [{"id": first, "title": "A"}, {"id": first, "title": "B"}]}
    refused = rest.post(f"{BOARDS}:batchClone", json=twice, headers=headers)
    assert refused.status_code == 400
    violations = [
        (v["field"], v["reason"])
        for x in refused.json()["details"]
        if x["@type"].endswith("BadRequest")
        for v in x["fieldViolations"]
    ]
    assert violations == [("requests[1].id", "DUPLICATE_CLONE")]
