"""Dashboard portability over a real channel: export a dashboard as a document, import it (into
the same or another facility), clone it; the round trip export -> import -> export gives the same
document; an import with conflicts reports all of them by field and changes nothing."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
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
from tests.integration.test_queries import NORTH, SOUTH, managed_views, rows, run
from tests.integration.test_queries import dsn as dsn  # a fixture: the demo data source installed
from tests.integration.test_widgets import CONFIGS, refused
from tests.integration.test_widgets import sql as sql  # a fixture: sql(statement, *params) -> rows

Code = grpc.StatusCode
KEEP = d.TITLE_CONFLICT_POLICY_KEEP
RENAME = d.TITLE_CONFLICT_POLICY_RENAME
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
        d.ImportDashboardRequest(facility_id=facility, document=parsed, title_conflict=KEEP), metadata=editor
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
            facility_id=other_facility,
            document=document,
            query_mode=d.QUERY_IMPORT_MODE_REUSE_IDENTICAL,
            title_conflict=KEEP,
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
        "document.dashboard.title": "TITLE_CONFLICT",  # the source is still there, same title
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
            title_conflict=d.TITLE_CONFLICT_POLICY_RENAME,
        ),
        metadata=editor,
    )
    assert answer.validate_only and not answer.dashboard.id and answer.title == "Bed management (2)"
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
        facility_id=facility,
        document=export(dashboards, editor, board.id),
        request_id=str(uuid.uuid4()),
        title_conflict=KEEP,
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
    dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id, title_conflict=RENAME), metadata=editor)
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
        d.ImportDashboardRequest(facility_id=facility, document=document, title_conflict=KEEP), metadata=editor
    )
    clone = dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id, title_conflict=RENAME), metadata=editor)
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


# --- title collisions -------------------------------------------------------------------------


def titles(sql, facility: str) -> list[str]:
    return [t for (t,) in sql("SELECT title FROM dashboards WHERE facility_id = %s ORDER BY created_at", facility)]


def test_a_taken_title_is_refused_renamed_or_kept_and_only_titles_the_caller_sees_count(
    dashboards, widgets, queries, editor, auth, facility, sql
):
    board = rich_board(dashboards, widgets, queries, editor, facility)
    document = export(dashboards, editor, board.id)
    dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title=" bed MANAGEMENT (2)")),
        metadata=editor,
    )
    before = counts(sql, facility)

    def importing(**fields: Any) -> d.ImportDashboardRequest:
        return d.ImportDashboardRequest(facility_id=facility, document=document, **fields)

    # By default a taken title (case and surrounding spaces aside) is a conflict on the field that set it.
    failure, reasons = refused(lambda: dashboards.ImportDashboard(importing(), metadata=editor), Code.INVALID_ARGUMENT)
    assert reasons == {"document.dashboard.title": "TITLE_CONFLICT"} and board.id in failure.message
    _, reasons = refused(
        lambda: dashboards.ImportDashboard(importing(title="  Bed Management "), metadata=editor),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"title": "TITLE_CONFLICT"}
    _, reasons = refused(
        lambda: dashboards.ImportDashboard(importing(validate_only=True), metadata=editor), Code.INVALID_ARGUMENT
    )
    assert reasons == {"document.dashboard.title": "TITLE_CONFLICT"}
    assert counts(sql, facility) == before
    # RENAME takes the first free "<title> (n)"; a title that is already numbered is renumbered.
    renamed = dashboards.ImportDashboard(importing(title_conflict=RENAME), metadata=editor)
    assert renamed.dashboard.title == renamed.title == "Bed management (3)"
    again = dashboards.ImportDashboard(importing(title="Bed management (3)", title_conflict=RENAME), metadata=editor)
    assert again.title == "Bed management (4)"
    kept = dashboards.ImportDashboard(importing(title_conflict=KEEP), metadata=editor)
    assert kept.title == "Bed management"
    assert titles(sql, facility).count("Bed management") == 2
    # A clone into its own facility keeps the source's title, so it needs a title or a policy.
    _, reasons = refused(
        lambda: dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id), metadata=editor), Code.INVALID_ARGUMENT
    )
    assert reasons == {"title": "TITLE_CONFLICT"}
    # Concurrent renames never pick the same title.
    with ThreadPoolExecutor(max_workers=3) as pool:
        made = list(
            pool.map(
                lambda _: (
                    dashboards.CloneDashboard(
                        d.CloneDashboardRequest(id=board.id, title_conflict=RENAME), metadata=editor
                    ).title
                ),
                range(3),
            )
        )
    assert sorted(made) == ["Bed management (5)", "Bed management (6)", "Bed management (7)"]
    # A dashboard the caller cannot see (another editor's private one) neither conflicts nor is revealed.
    other = auth("editor-9", "editor", facility)
    hidden = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Secret plan")), metadata=other
    )
    mine = dashboards.ImportDashboard(importing(title="secret plan"), metadata=editor)
    assert mine.title == "secret plan"
    failure, reasons = refused(
        lambda: dashboards.ImportDashboard(importing(title="Secret Plan"), metadata=editor), Code.INVALID_ARGUMENT
    )
    assert reasons == {"title": "TITLE_CONFLICT"} and mine.dashboard.id in failure.message
    assert hidden.id not in failure.message


# --- materialized-view queries ----------------------------------------------------------------

SITES_VIEW = "SELECT facility_id, count(*) AS sites, sum(beds) AS beds FROM demo.sites GROUP BY facility_id"


def view_board(dashboards, widgets, queries, md, facility: str, title: str) -> tuple[d.Dashboard, q.Query]:
    view = queries.CreateQuery(
        q.CreateQueryRequest(
            query=q.Query(
                facility_id=facility,
                name=f"sites {uuid.uuid4().hex[:6]}",
                sql=SITES_VIEW,
                kind=q.QUERY_KIND_MATERIALIZED_VIEW,
                view_key_columns=["facility_id"],
            )
        ),
        metadata=md,
    )
    plain = create_query(queries, md, facility, "SELECT 1 AS one")
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title=title)), metadata=md
    )
    for i, (query, config) in enumerate(((view, {"table": CONFIGS["table"]}), (plain, {"kpi": CONFIGS["kpi"]}))):
        widgets.CreateWidget(
            w.CreateWidgetRequest(
                widget=w.Widget(
                    dashboard_id=board.id,
                    title=f"widget {i}",
                    position=w.GridPosition(x=i * 4, y=0, width=4, height=2),
                    query=w.QueryBinding(query_id=query.id),
                    **config,
                )
            ),
            metadata=md,
        )
    return board, view


def test_materialized_view_queries_are_created_with_their_own_view_reused_mapped_or_reported(
    dashboards, widgets, queries, auth, sql, dsn
):
    admin = auth(f"admin-{uuid.uuid4().hex[:6]}", "admin", NORTH, SOUTH)
    title = f"Sites {uuid.uuid4().hex[:8]}"
    board, view = view_board(dashboards, widgets, queries, admin, NORTH, title)
    document = export(dashboards, admin, board.id)
    assert document.queries[0].query.kind == q.QUERY_KIND_MATERIALIZED_VIEW
    assert not document.queries[0].query.view_name and not document.queries[0].query.HasField("refresh_time")
    views_before = set(managed_views(dsn))

    # Into another facility: a new query with a view of its own, built from that facility's rows.
    made = dashboards.ImportDashboard(d.ImportDashboardRequest(facility_id=SOUTH, document=document), metadata=admin)
    assert [x.action for x in made.queries] == [d.QUERY_IMPORT_ACTION_CREATED] * 2
    copy = queries.GetQuery(q.GetQueryRequest(id=made.queries[0].query_id), metadata=admin)
    assert copy.kind == q.QUERY_KIND_MATERIALIZED_VIEW and copy.facility_id == SOUTH
    assert copy.view_name and copy.view_name != view.view_name and copy.HasField("refresh_time")
    assert set(managed_views(dsn)) == views_before | {copy.view_name}
    assert rows(run(queries, admin, copy.id)) == [{"facility_id": SOUTH, "sites": 1, "beds": 80}]
    assert rows(run(queries, admin, view.id)) == [{"facility_id": NORTH, "sites": 2, "beds": 540}]
    assert export(dashboards, admin, made.dashboard.id) == document  # round trip, ids aside

    # Again with REUSE_IDENTICAL: the same view query, no new view; and mapped explicitly.
    reused = dashboards.ImportDashboard(
        d.ImportDashboardRequest(
            facility_id=SOUTH, document=document, query_mode=d.QUERY_IMPORT_MODE_REUSE_IDENTICAL, title_conflict=KEEP
        ),
        metadata=admin,
    )
    assert (reused.queries[0].query_id, reused.queries[0].action) == (copy.id, d.QUERY_IMPORT_ACTION_REUSED)
    mapped = dashboards.ImportDashboard(
        d.ImportDashboardRequest(
            facility_id=SOUTH, document=document, query_mappings={"q1": copy.id}, title_conflict=KEEP
        ),
        metadata=admin,
    )
    assert (mapped.queries[0].query_id, mapped.queries[0].action) == (copy.id, d.QUERY_IMPORT_ACTION_MAPPED)
    assert set(managed_views(dsn)) == views_before | {copy.view_name}

    # A view that cannot be built in the target facility is reported at its query's fields, with
    # every other view problem, and nothing is left behind: no rows, and no view (not even the
    # valid one, built before the broken ones failed).
    broken = d.DashboardDocument()
    broken.CopyFrom(document)
    broken.dashboard.title = f"Broken {uuid.uuid4().hex[:8]}"
    broken.queries.add(
        key="q_nofacility", query=q.Query(name="v2", sql="SELECT 1 AS one", kind=q.QUERY_KIND_MATERIALIZED_VIEW)
    ).query.view_key_columns.append("one")
    broken.queries.add(
        key="q_dupkey",
        query=q.Query(
            name="v3",
            sql="SELECT facility_id, 1 AS k FROM demo.sites",
            kind=q.QUERY_KIND_MATERIALIZED_VIEW,
            view_key_columns=["k"],
        ),
    )
    before = counts(sql, NORTH)
    views_now = set(managed_views(dsn))
    for validate_only in (True, False):
        _, reasons = refused(
            lambda validate_only=validate_only: dashboards.ImportDashboard(
                d.ImportDashboardRequest(facility_id=NORTH, document=broken, validate_only=validate_only),
                metadata=admin,
            ),
            Code.INVALID_ARGUMENT,
        )
        assert reasons == {
            "document.queries[2].query.sql": "VIEW_NEEDS_FACILITY",
            "document.queries[3].query.view_key_columns": "VIEW_KEY_NOT_UNIQUE",
        }
        assert counts(sql, NORTH) == before and set(managed_views(dsn)) == views_now

    # A clone across facilities makes its own view too; within the facility it reads the same query.
    across = dashboards.CloneDashboard(
        d.CloneDashboardRequest(id=board.id, facility_id=SOUTH, title_conflict=RENAME), metadata=admin
    )
    cloned_view = queries.GetQuery(q.GetQueryRequest(id=across.queries[0].query_id), metadata=admin)
    assert cloned_view.facility_id == SOUTH and cloned_view.view_name not in (view.view_name, copy.view_name)
    within = dashboards.CloneDashboard(d.CloneDashboardRequest(id=board.id, title=f"{title} copy"), metadata=admin)
    assert within.queries[0].query_id == view.id
    for made_id in (
        made.dashboard.id,
        reused.dashboard.id,
        mapped.dashboard.id,
        across.dashboard.id,
        within.dashboard.id,
    ):
        dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=made_id), metadata=admin)
    dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=board.id), metadata=admin)
    for query_id in (view.id, copy.id, cloned_view.id):
        queries.DeleteQuery(q.DeleteQueryRequest(id=query_id), metadata=admin)


# --- links across facilities -------------------------------------------------------------------


def drill_targets(sql, dashboard_id: str) -> list[tuple[str, str]]:
    """(widget title, the facility of its drill-through target) for each drill-through widget."""
    return sql(
        "SELECT w.title, t.facility_id FROM widgets w JOIN dashboards t"
        " ON t.id = (w.spec->'drill_through'->>'target_dashboard_id')::uuid WHERE w.dashboard_id = %s ORDER BY w.title",
        uuid.UUID(dashboard_id),
    )


def test_a_clone_across_facilities_remaps_every_link_or_reports_it(
    dashboards, widgets, queries, auth, facility, other_facility, sql
):
    admin = auth("admin-links", "admin", facility, other_facility)
    board = rich_board(dashboards, widgets, queries, admin, facility)
    source = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=admin)
    target_id = next(x for x in source.widgets if x.WhichOneof("config") == "heatmap").drill_through.target_dashboard_id
    twin = dashboards.CreateDashboard(
        d.CreateDashboardRequest(
            dashboard=d.Dashboard(
                facility_id=other_facility, title="Unit detail", filters=[d.DashboardFilter(name="unit")]
            )
        ),
        metadata=admin,
    )
    no_filter = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=other_facility, title="Elsewhere")), metadata=admin
    )
    before = counts(sql, other_facility)

    def clone(**fields: Any) -> d.ImportDashboardResponse:
        request = d.CloneDashboardRequest(id=board.id, facility_id=other_facility, **fields)
        return dashboards.CloneDashboard(request, metadata=admin)

    # Unmapped, mapped to a dashboard of the source's facility, to one without the filter, or a
    # mapping no link uses: each reported where it is, nothing made.
    failure, reasons = refused(clone, Code.INVALID_ARGUMENT)
    assert list(reasons.values()) == ["DASHBOARD_NOT_FOUND"] and "dashboard_mappings" in failure.message
    stray = str(uuid.uuid4())
    _, reasons = refused(
        lambda: clone(dashboard_mappings={target_id: target_id, stray: twin.id}), Code.INVALID_ARGUMENT
    )
    assert reasons == {
        f'dashboard_mappings["{target_id}"]': "DASHBOARD_NOT_FOUND",
        f'dashboard_mappings["{stray}"]': "UNKNOWN_DRILL_TARGET",
    }
    _, reasons = refused(lambda: clone(dashboard_mappings={target_id: no_filter.id}), Code.INVALID_ARGUMENT)
    assert list(reasons.values()) == ["UNKNOWN_FILTER"]
    assert counts(sql, other_facility) == before

    made = clone(dashboard_mappings={target_id: twin.id})
    by_kind = {x.WhichOneof("config"): x for x in made.dashboard.widgets}
    assert by_kind["heatmap"].drill_through.target_dashboard_id == twin.id
    assert by_kind["table"].drill_through.target_dashboard_id == made.dashboard.id  # the copy, not the source
    assert [(x.source_column, x.filter_name) for x in by_kind["bar"].cross_filters] == [("unit", "ward")]
    assert [f.name for f in made.dashboard.filters] == ["unit", "ward"]
    assert [fac for _, fac in drill_targets(sql, made.dashboard.id)] == [other_facility, other_facility]
    # Equal to the source's document apart from ids (the external target's included).
    original = export(dashboards, admin, board.id)
    copied = export(dashboards, admin, made.dashboard.id)
    for entry in original.widgets:
        if entry.drill_through.target_dashboard_id == target_id:
            entry.drill_through.target_dashboard_id = twin.id
    assert copied == original
    # The same mapping works for an import of the document, and a round trip of it holds.
    imported = dashboards.ImportDashboard(
        d.ImportDashboardRequest(
            facility_id=other_facility,
            document=export(dashboards, admin, board.id),
            dashboard_mappings={target_id: twin.id},
            query_mode=d.QUERY_IMPORT_MODE_REUSE_IDENTICAL,
            title_conflict=RENAME,
        ),
        metadata=admin,
    )
    assert imported.title == "Bed management (2)"
    again = export(dashboards, admin, imported.dashboard.id)
    again.dashboard.title = original.dashboard.title
    assert again == original
