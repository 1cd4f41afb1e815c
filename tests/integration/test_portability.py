"""Dashboard portability over a real channel: export a dashboard as a document, import it (into
the same or another facility), clone it; the round trip export -> import -> export gives the same
document; an import with conflicts reports all of them by field and changes nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest
from google.protobuf import field_mask_pb2, json_format

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from tests.integration.test_widgets import CONFIGS, refused
from tests.integration.test_widgets import sql as sql  # a fixture: sql(statement, *params) -> rows

Code = grpc.StatusCode
SCHEMA = Path(__file__).resolve().parents[2] / "gen" / "schema" / "dashboard-document.v1.json"


@pytest.fixture
def editor(auth, facility):
    return auth("editor-1", "editor", facility)


@pytest.fixture
def other_facility() -> str:
    return f"fac-{uuid.uuid4().hex[:10]}"


def create_query(queries, md, facility: str, sql: str, *params: q.ParameterSpec, name: str = "") -> q.Query:
    query = q.Query(facility_id=facility, name=name or f"q {uuid.uuid4().hex[:6]}", sql=sql, parameters=params)
    return queries.CreateQuery(q.CreateQueryRequest(query=query), metadata=md)


def rich_board(dashboards, widgets, queries, md, facility: str) -> d.Dashboard:
    """A dashboard with every widget type, filters, a cross-filter, a drill-through to itself and
    one to another dashboard, a parameterised query and a query pinned to its second version."""
    by_unit = create_query(
        queries,
        md,
        facility,
        "SELECT :unit::text AS unit, 3 AS beds, :floor::int AS floor",
        q.ParameterSpec(name="unit", type=q.PARAMETER_TYPE_STRING, required=True),
        q.ParameterSpec(name="floor", type=q.PARAMETER_TYPE_INT),
    )
    pinned = create_query(queries, md, facility, "SELECT 1 AS beds")
    change = q.Query(id=pinned.id, sql="SELECT 2 AS beds")
    queries.UpdateQuery(
        q.UpdateQueryRequest(query=change, update_mask=field_mask_pb2.FieldMask(paths=["sql"])), metadata=md
    )
    queries.UpdateQuery(
        q.UpdateQueryRequest(
            query=q.Query(id=pinned.id, sql="SELECT 3 AS beds"), update_mask=field_mask_pb2.FieldMask(paths=["sql"])
        ),
        metadata=md,
    )
    target = dashboards.CreateDashboard(
        d.CreateDashboardRequest(
            dashboard=d.Dashboard(facility_id=facility, title="Unit detail", filters=[d.DashboardFilter(name="unit")])
        ),
        metadata=md,
    )
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(
            dashboard=d.Dashboard(
                facility_id=facility,
                title="Bed management",
                description="Beds by unit",
                tags=["beds", "ops"],
                layout=d.GridLayout(row_height=90, gap=8, time_zone="Europe/Paris"),
                filters=[
                    d.DashboardFilter(name="unit", label="Unit", default_value=c.ParameterValue(string_value="ICU")),
                    d.DashboardFilter(name="ward", label="Ward"),
                ],
            )
        ),
        metadata=md,
    )
    for i, (kind, config) in enumerate(CONFIGS.items()):
        widget = w.Widget(
            dashboard_id=board.id,
            title=f"{kind} widget",
            position=w.GridPosition(x=(i % 3) * 4, y=(i // 3) * 2, width=4, height=2),
            **{kind: config},
        )
        if kind == "kpi":
            widget.query.CopyFrom(
                w.QueryBinding(
                    query_id=by_unit.id,
                    parameter_values={"floor": c.ParameterValue(int_value=2)},
                    filter_bindings={"unit": "unit"},
                )
            )
        elif kind == "line":
            widget.query.CopyFrom(w.QueryBinding(query_id=pinned.id, query_version=2))
        elif kind == "area":
            widget.query.CopyFrom(w.QueryBinding(query_id=pinned.id))
        elif kind == "bar":
            widget.query.CopyFrom(w.QueryBinding(query_id=by_unit.id, filter_bindings={"unit": "ward"}))
            widget.cross_filters.add(source_column="unit", filter_name="ward")
        elif kind == "table":
            widget.drill_through.CopyFrom(w.DrillThrough(target_dashboard_id=board.id, column_to_filter={"x": "ward"}))
        elif kind == "heatmap":
            widget.drill_through.CopyFrom(
                w.DrillThrough(target_dashboard_id=target.id, column_to_filter={"unit": "unit"})
            )
        widgets.CreateWidget(w.CreateWidgetRequest(widget=widget), metadata=md)
    return board


def export(dashboards, md, dashboard_id: str) -> d.DashboardDocument:
    return dashboards.ExportDashboardDocument(d.ExportDashboardDocumentRequest(id=dashboard_id), metadata=md)


def as_json(document: d.DashboardDocument) -> dict[str, Any]:
    return json.loads(json_format.MessageToJson(document))


def counts(sql, facility: str) -> dict[str, int]:
    return {
        table: sql(f"SELECT count(*) FROM {table} WHERE facility_id = %s", facility)[0][0]
        for table in ("dashboards", "widgets", "widget_queries")
    } | {
        "versions": sql(
            "SELECT count(*) FROM query_versions v JOIN widget_queries q ON q.id = v.query_id WHERE q.facility_id = %s",
            facility,
        )[0][0]
    }


def test_export_is_a_portable_document_valid_against_the_published_schema(
    dashboards, widgets, queries, editor, facility
):
    board = rich_board(dashboards, widgets, queries, editor, facility)
    document = export(dashboards, editor, board.id)
    as_dict = as_json(document)
    jsonschema.validate(as_dict, json.loads(SCHEMA.read_text()))
    text = json.dumps(as_dict)
    assert board.id not in text and facility not in text  # no database ids but the external target
    assert document.schema_version == "tessera.dashboard/v1"
    assert [e.key for e in document.widgets] == [f"w{i}" for i in range(1, 8)]
    by_kind = {e.widget.WhichOneof("config"): e for e in document.widgets}
    assert by_kind["kpi"].query_key == by_kind["bar"].query_key == "q1"
    assert by_kind["line"].query_key == "q2" and by_kind["line"].pin_query_version
    assert by_kind["line"].widget.query.query_id == ""
    assert by_kind["area"].query_key == "q3" and not by_kind["area"].pin_query_version
    assert [x.query.sql for x in document.queries][1:] == ["SELECT 2 AS beds", "SELECT 3 AS beds"]
    assert by_kind["table"].drill_through.to_this_dashboard and not by_kind["table"].widget.HasField("drill_through")
    assert by_kind["table"].drill_through.column_to_filter == {"x": "ward"}
    assert not by_kind["heatmap"].drill_through.to_this_dashboard
    # An invalid document is refused by the schema too.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(as_dict | {"unexpected": 1}, json.loads(SCHEMA.read_text()))


def test_round_trip_gives_the_same_document(dashboards, widgets, queries, editor, facility, sql):
    board = rich_board(dashboards, widgets, queries, editor, facility)
    first = export(dashboards, editor, board.id)
    # Through JSON, as a file would carry it.
    parsed = json_format.Parse(json_format.MessageToJson(first), d.DashboardDocument())
    imported = dashboards.ImportDashboard(
        d.ImportDashboardRequest(facility_id=facility, document=parsed), metadata=editor
    )
    assert imported.dashboard.id != board.id and len(imported.dashboard.widgets) == 7
    assert [(x.key, x.action) for x in imported.queries] == [
        ("q1", d.QUERY_IMPORT_ACTION_CREATED),
        ("q2", d.QUERY_IMPORT_ACTION_CREATED),
        ("q3", d.QUERY_IMPORT_ACTION_CREATED),
    ]
    assert imported.dashboard.version == 1 and imported.dashboard.owner_id == "editor-1"
    again = export(dashboards, editor, imported.dashboard.id)
    assert again == first
    # The new widgets refer to the new dashboard and queries.
    table = next(x for x in imported.dashboard.widgets if x.WhichOneof("config") == "table")
    assert table.drill_through.target_dashboard_id == imported.dashboard.id
    line = next(x for x in imported.dashboard.widgets if x.WhichOneof("config") == "line")
    assert line.query.query_id == imported.queries[1].query_id and line.query.query_version == 1
    # One version written, with the widgets.
    assert sql("SELECT count(*) FROM dashboard_versions WHERE dashboard_id = %s", uuid.UUID(imported.dashboard.id)) == [
        (1,)
    ]


def test_import_into_another_facility_round_trips_and_reuses_identical_queries(
    dashboards, widgets, queries, auth, facility, other_facility
):
    admin = auth("admin-1", "admin", facility, other_facility)
    board = rich_board(dashboards, widgets, queries, admin, facility)
    document = export(dashboards, admin, board.id)
    # The drill-through to another dashboard of the source facility cannot follow: drop it.
    for entry in document.widgets:
        if entry.drill_through.target_dashboard_id:
            entry.ClearField("drill_through")
    first = dashboards.ImportDashboard(
        d.ImportDashboardRequest(facility_id=other_facility, document=document), metadata=admin
    )
    assert first.dashboard.facility_id == other_facility
    assert export(dashboards, admin, first.dashboard.id) == document
    second = dashboards.ImportDashboard(
        d.ImportDashboardRequest(
            facility_id=other_facility, document=document, query_mode=d.QUERY_IMPORT_MODE_REUSE_IDENTICAL
        ),
        metadata=admin,
    )
    assert [(x.query_id, x.action) for x in second.queries] == [
        (x.query_id, d.QUERY_IMPORT_ACTION_REUSED) for x in first.queries
    ]
    assert export(dashboards, admin, second.dashboard.id) == document


def test_conflicts_are_all_reported_by_field_and_nothing_changes(dashboards, widgets, queries, editor, facility, sql):
    board = rich_board(dashboards, widgets, queries, editor, facility)
    document = export(dashboards, editor, board.id)
    document.schema_version = "tessera.dashboard/v9"
    document.widgets[0].query_key = "nope"  # kpi
    document.widgets[1].widget.position.x = 0  # line now overlaps kpi
    document.queries[1].query.sql = "DELETE FROM widgets"
    bar = next(i for i, e in enumerate(document.widgets) if e.widget.WhichOneof("config") == "bar")
    document.widgets[bar].widget.query.parameter_values["floor"].CopyFrom(c.ParameterValue(string_value="two"))
    document.widgets[bar].widget.cross_filters[0].filter_name = "missing"
    missing_query = str(uuid.uuid4())
    before = counts(sql, facility)
    request = d.ImportDashboardRequest(
        facility_id=facility, document=document, query_mappings={"q3": missing_query, "q9": missing_query}
    )
    failure, reasons = refused(lambda: dashboards.ImportDashboard(request, metadata=editor), Code.INVALID_ARGUMENT)
    assert counts(sql, facility) == before
    expected = {
        "document.schema_version": "UNSUPPORTED_SCHEMA_VERSION",
        "document.widgets[0].query_key": "UNKNOWN_QUERY_KEY",
        "document.widgets[1].widget.position": "WIDGET_OVERLAP",
        "document.queries[1].query.sql": "SQL_REJECTED",
        f'document.widgets[{bar}].widget.query.parameter_values["floor"]': reasons.get(
            f'document.widgets[{bar}].widget.query.parameter_values["floor"]', "?"
        ),
        f"document.widgets[{bar}].widget.cross_filters[0].filter_name": "UNKNOWN_FILTER",
        'query_mappings["q3"]': "QUERY_NOT_FOUND",
        'query_mappings["q9"]': "UNKNOWN_QUERY_KEY",
    }
    assert reasons == expected, failure.message
    assert expected[f'document.widgets[{bar}].widget.query.parameter_values["floor"]'] != "?"
    # validate_only with the same document reports the same and writes nothing either.
    request.validate_only = True
    _, again = refused(lambda: dashboards.ImportDashboard(request, metadata=editor), Code.INVALID_ARGUMENT)
    assert again == reasons and counts(sql, facility) == before


def test_validate_only_changes_nothing_and_says_what_would_happen(dashboards, widgets, queries, editor, facility, sql):
    board = rich_board(dashboards, widgets, queries, editor, facility)
    document = export(dashboards, editor, board.id)
    existing = board.id  # any visible query id will do for a mapping: take the kpi's
    kpi_query = next(
        x
        for x in dashboards.GetDashboard(d.GetDashboardRequest(id=existing), metadata=editor).widgets
        if x.WhichOneof("config") == "kpi"
    ).query.query_id
    before = counts(sql, facility)
    answer = dashboards.ImportDashboard(
        d.ImportDashboardRequest(
            facility_id=facility,
            document=document,
            validate_only=True,
            query_mappings={"q1": kpi_query},
            query_mode=d.QUERY_IMPORT_MODE_REUSE_IDENTICAL,
        ),
        metadata=editor,
    )
    assert answer.validate_only and not answer.dashboard.id
    assert [(x.key, x.action) for x in answer.queries] == [
        ("q1", d.QUERY_IMPORT_ACTION_MAPPED),
        ("q2", d.QUERY_IMPORT_ACTION_CREATED),  # version 2 is nobody's latest: created
        ("q3", d.QUERY_IMPORT_ACTION_REUSED),
    ]
    assert answer.queries[0].query_id == kpi_query and answer.queries[1].query_id == ""
    assert counts(sql, facility) == before


def test_a_retried_import_returns_the_first_result(dashboards, widgets, queries, editor, facility, sql):
    board = rich_board(dashboards, widgets, queries, editor, facility)
    request = d.ImportDashboardRequest(
        facility_id=facility, document=export(dashboards, editor, board.id), request_id=str(uuid.uuid4())
    )
    first = dashboards.ImportDashboard(request, metadata=editor)
    before = counts(sql, facility)
    again = dashboards.ImportDashboard(request, metadata=editor)
    assert again.dashboard.id == first.dashboard.id
    assert {x.key: x.query_id for x in again.queries} == {x.key: x.query_id for x in first.queries}
    assert counts(sql, facility) == before
    request.title = "Another"
    failure, _ = refused(lambda: dashboards.ImportDashboard(request, metadata=editor), Code.ALREADY_EXISTS)
    assert failure.reason == "REQUEST_ID_REUSED"


def test_clone_within_a_facility_uses_the_same_queries(dashboards, widgets, queries, editor, facility):
    board = rich_board(dashboards, widgets, queries, editor, facility)
    source = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=editor)
    clone = dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id, title="Copy"), metadata=editor).dashboard
    assert clone.title == "Copy" and clone.facility_id == facility and clone.id != board.id
    bindings = [(x.query.query_id, x.query.query_version) for x in source.widgets]
    assert [(x.query.query_id, x.query.query_version) for x in clone.widgets] == bindings
    copied = export(dashboards, editor, clone.id)
    original = export(dashboards, editor, board.id)
    original.dashboard.title = "Copy"
    assert copied == original


def test_clone_across_facilities_needs_an_admin_of_both(dashboards, widgets, queries, auth, facility, other_facility):
    admin = auth("admin-2", "admin", facility, other_facility)
    editor = auth("editor-2", "editor", facility, other_facility)
    board = rich_board(dashboards, widgets, queries, editor, facility)
    # The drill-through to a dashboard of the source facility cannot follow: reported, nothing made.
    _, reasons = refused(
        lambda: dashboards.CloneDashboard(
            d.CloneDashboardRequest(id=board.id, facility_id=other_facility), metadata=admin
        ),
        Code.INVALID_ARGUMENT,
    )
    assert list(reasons.values()) == ["DASHBOARD_NOT_FOUND"]
    full = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=admin)
    drill = next(x for x in full.widgets if x.WhichOneof("config") == "heatmap")
    widgets.UpdateWidget(
        w.UpdateWidgetRequest(
            widget=w.Widget(id=drill.id), update_mask=field_mask_pb2.FieldMask(paths=["drill_through"])
        ),
        metadata=admin,
    )
    made = dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id, facility_id=other_facility), metadata=admin)
    assert made.dashboard.facility_id == other_facility
    assert [x.action for x in made.queries] == [d.QUERY_IMPORT_ACTION_CREATED] * 3
    copied = export(dashboards, admin, made.dashboard.id)
    assert copied == export(dashboards, admin, board.id)
    # An editor of both facilities may clone within one, not across.
    dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id), metadata=editor)
    failure, _ = refused(
        lambda: dashboards.CloneDashboard(
            d.CloneDashboardRequest(id=board.id, facility_id=other_facility), metadata=editor
        ),
        Code.PERMISSION_DENIED,
    )
    assert failure.reason == "ROLE_REQUIRED"
    # An admin of the source only may not clone into a facility they do not belong to.
    local_admin = auth("admin-3", "admin", facility)
    failure, _ = refused(
        lambda: dashboards.CloneDashboard(
            d.CloneDashboardRequest(id=board.id, facility_id=other_facility), metadata=local_admin
        ),
        Code.PERMISSION_DENIED,
    )
    assert failure.reason == "FACILITY_NOT_ALLOWED"


def test_viewers_and_strangers_cannot_export_import_or_clone(
    dashboards, widgets, queries, editor, auth, facility, other_facility, sql
):
    board = rich_board(dashboards, widgets, queries, editor, facility)
    document = export(dashboards, editor, board.id)
    viewer = auth("viewer-1", "viewer", facility)
    # The viewer may read the dashboard (a share): still no export or clone, its role caps it.
    sql(
        "INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)"
        " VALUES (%s, %s, 'user', 'viewer-1', 3, 'editor-1')",
        uuid.UUID(board.id),
        facility,
    )
    assert dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=viewer).id == board.id
    before = counts(sql, facility)
    for call in (
        lambda: dashboards.ImportDashboard(
            d.ImportDashboardRequest(facility_id=facility, document=document), metadata=viewer
        ),
        lambda: dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id), metadata=viewer),
        lambda: export(dashboards, viewer, board.id),
    ):
        failure, _ = refused(call, Code.PERMISSION_DENIED)
        assert failure.reason == "ROLE_REQUIRED"
    # A facility's admin cannot import into another facility.
    other_admin = auth("admin-4", "admin", other_facility)
    failure, _ = refused(
        lambda: dashboards.ImportDashboard(
            d.ImportDashboardRequest(facility_id=facility, document=document), metadata=other_admin
        ),
        Code.PERMISSION_DENIED,
    )
    assert failure.reason == "FACILITY_NOT_ALLOWED"
    # ... nor export or clone its dashboards, which do not exist for them.
    refused(lambda: export(dashboards, other_admin, board.id), Code.NOT_FOUND)
    refused(
        lambda: dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id), metadata=other_admin), Code.NOT_FOUND
    )
    # ... nor map a query of another facility.
    document.widgets[0].ClearField("query_key")
    kpi_query = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=editor).widgets[0].query.query_id
    _, reasons = refused(
        lambda: dashboards.ImportDashboard(
            d.ImportDashboardRequest(facility_id=other_facility, document=document, query_mappings={"q1": kpi_query}),
            metadata=other_admin,
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons.get('query_mappings["q1"]') == "QUERY_NOT_FOUND"
    assert counts(sql, facility) == before


def test_imports_and_clones_are_audited_with_what_they_made(dashboards, widgets, queries, shares, auth, facility, sql):
    subject = f"auditee-{uuid.uuid4().hex[:8]}"
    editor = auth(subject, "editor", facility)
    board = rich_board(dashboards, widgets, queries, editor, facility)
    document = export(dashboards, editor, board.id)
    imported = dashboards.ImportDashboard(
        d.ImportDashboardRequest(facility_id=facility, document=document), metadata=editor
    )
    clone = dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id), metadata=editor)
    document.schema_version = "x"
    refused(
        lambda: dashboards.ImportDashboard(
            d.ImportDashboardRequest(facility_id=facility, document=document), metadata=editor
        ),
        Code.INVALID_ARGUMENT,
    )
    admin = auth("portability-auditor", "admin", facility)
    shares.ListAuditEvents(s.ListAuditEventsRequest(actor=subject), metadata=admin)  # written by now
    rows = sql(
        "SELECT method, outcome, resource_id, facility_id, details FROM audit_log WHERE actor = %s"
        " AND method LIKE %s ORDER BY id",
        subject,
        "%Dashboard%",
    )
    events = [(m.rsplit("/", 1)[-1], outcome, rid, fac, details) for m, outcome, rid, fac, details in rows]
    mine = [e for e in events if e[0] in ("ExportDashboardDocument", "ImportDashboard", "CloneDashboard")]
    assert [(e[0], e[2]) for e in mine] == [
        ("ExportDashboardDocument", board.id),
        ("ImportDashboard", imported.dashboard.id),
        ("CloneDashboard", board.id),
        ("ImportDashboard", ""),
    ]
    assert [e[1] for e in mine][:3] == [s.AUDIT_OUTCOME_SUCCESS] * 3 and mine[3][1] != s.AUDIT_OUTCOME_SUCCESS
    assert all(e[3] == facility for e in mine)
    done, cloned = mine[1][4], mine[2][4]
    assert done["target_facility_id"] == facility and set(done["queries"]) == {"q1", "q2", "q3"}
    assert cloned["created_dashboard_id"] == clone.dashboard.id
    assert {x["action"] for x in cloned["queries"].values()} == {d.QUERY_IMPORT_ACTION_MAPPED}


def test_a_title_of_the_request_replaces_the_documents(dashboards, widgets, queries, editor, facility):
    board = rich_board(dashboards, widgets, queries, editor, facility)
    document = export(dashboards, editor, board.id)
    document.dashboard.title = ""
    _, reasons = refused(
        lambda: dashboards.ImportDashboard(
            d.ImportDashboardRequest(facility_id=facility, document=document, validate_only=True), metadata=editor
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"document.dashboard.title": "REQUIRED"}
    made = dashboards.ImportDashboard(
        d.ImportDashboardRequest(facility_id=facility, document=document, title="Renamed"), metadata=editor
    )
    assert made.dashboard.title == "Renamed"
    _, reasons = refused(
        lambda: dashboards.ImportDashboard(
            d.ImportDashboardRequest(facility_id=facility, document=document, title="  "), metadata=editor
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"title": "REQUIRED"}
