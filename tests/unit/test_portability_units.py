"""Dashboard portability without a database: who may import, clone and export (the policy), and
what a document is checked for on its own (every problem at its field, all at once)."""

from __future__ import annotations

import pytest

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.access.policy import clone_facility, import_facility, require_document_export
from server.auth.principal import Principal, Role
from server.errors import InvalidArgument, PermissionDenied
from server.portability.document import SCHEMA_VERSION, UsedQuery, build_document, check_document, used_queries

A, B = "fac-a", "fac-b"


def who(role: Role, *facilities: str, link: bool = False) -> Principal:
    return Principal("me", role, frozenset(facilities), link_id="l" if link else None)


@pytest.mark.parametrize(
    ("principal", "requested", "answer"),
    [
        (who(Role.EDITOR, A), "", A),
        (who(Role.ADMIN, A, B), B, B),
        (who(Role.VIEWER, A), A, "ROLE_REQUIRED"),
        (who(Role.EDITOR, A, link=True), A, "ROLE_REQUIRED"),
        (who(Role.ADMIN, A), B, "FACILITY_NOT_ALLOWED"),  # an admin of A imports nothing into B
        (who(Role.EDITOR, A, B), "", "FACILITY_REQUIRED"),
    ],
)
def test_import_facility(principal: Principal, requested: str, answer: str) -> None:
    if answer.isupper():
        with pytest.raises((PermissionDenied, InvalidArgument)) as refused:
            import_facility(principal, requested)
        assert refused.value.reason == answer
    else:
        assert import_facility(principal, requested) == answer


@pytest.mark.parametrize(
    ("principal", "requested", "answer"),
    [
        (who(Role.EDITOR, A), "", A),
        (who(Role.EDITOR, A, B), A, A),
        (who(Role.EDITOR, A, B), B, "ROLE_REQUIRED"),  # across facilities: admins only
        (who(Role.ADMIN, A, B), B, B),
        (who(Role.ADMIN, A), B, "FACILITY_NOT_ALLOWED"),  # ... of the target too
        (who(Role.VIEWER, A), "", "ROLE_REQUIRED"),
    ],
)
def test_clone_facility(principal: Principal, requested: str, answer: str) -> None:
    if answer.isupper():
        with pytest.raises(PermissionDenied) as refused:
            clone_facility(principal, A, requested)
        assert refused.value.reason == answer
    else:
        assert clone_facility(principal, A, requested) == answer


def test_exporting_a_document_needs_an_editor() -> None:
    require_document_export(who(Role.EDITOR, A))
    with pytest.raises(PermissionDenied):
        require_document_export(who(Role.VIEWER, A))


BOARD_ID = "00000000-0000-0000-0000-00000000000b"
QUERY = "00000000-0000-0000-0000-00000000000a"


def dashboard() -> d.Dashboard:
    board = d.Dashboard(id=BOARD_ID, title="Beds", filters=[d.DashboardFilter(name="unit")], version=7)
    board.widgets.add(
        id="w-1",
        title="pinned",
        position=w.GridPosition(x=0, y=0, width=4, height=2),
        kpi=w.KpiConfig(value_column="n"),
        query=w.QueryBinding(query_id=QUERY, query_version=1, filter_bindings={"unit": "unit"}),
        drill_through=w.DrillThrough(target_dashboard_id=BOARD_ID, column_to_filter={"n": "unit"}),
    )
    board.widgets.add(
        id="w-2",
        title="latest",
        position=w.GridPosition(x=4, y=0, width=4, height=2),
        table=w.TableConfig(),
        query=w.QueryBinding(query_id=QUERY),
    )
    return board


def test_a_document_names_queries_and_its_dashboard_by_keys() -> None:
    board = dashboard()
    latest = {QUERY: 2}
    assert used_queries(board.widgets, latest) == [UsedQuery(QUERY, 1), UsedQuery(QUERY, 2)]
    versions = {
        UsedQuery(QUERY, 1): q.Query(id=QUERY, facility_id=A, name="n", sql="SELECT 1 AS n", version=1),
        UsedQuery(QUERY, 2): q.Query(id=QUERY, facility_id=A, name="n", sql="SELECT 2 AS n", version=2),
    }
    doc = build_document(board, versions, latest)
    assert doc.schema_version == SCHEMA_VERSION and doc.dashboard.title == "Beds" and not doc.dashboard.id
    assert [(x.key, x.query.sql, x.query.id, x.query.facility_id) for x in doc.queries] == [
        ("q1", "SELECT 1 AS n", "", ""),
        ("q2", "SELECT 2 AS n", "", ""),
    ]
    first, second = doc.widgets
    assert (first.key, first.query_key, first.pin_query_version) == ("w1", "q1", True)
    assert (second.key, second.query_key, second.pin_query_version) == ("w2", "q2", False)
    assert not first.widget.id and not first.widget.query.query_id and not first.widget.HasField("drill_through")
    assert first.drill_through.to_this_dashboard and first.drill_through.column_to_filter == {"n": "unit"}
    assert check_document(doc) == []


def test_every_problem_of_a_document_at_once() -> None:
    doc = build_document(dashboard(), {UsedQuery(QUERY, 1): q.Query(), UsedQuery(QUERY, 2): q.Query()}, {QUERY: 2})
    doc.schema_version = "other/v1"
    doc.dashboard.title = " "
    doc.widgets[1].key = "w1"
    doc.widgets[1].widget.position.x = 2
    doc.widgets[1].query_key = "q9"
    doc.widgets[0].widget.query.filter_bindings["unit"] = "nope"
    doc.widgets[0].drill_through.column_to_filter["n"] = "gone"
    doc.widgets[1].widget.ClearField("config")
    found = {(v.field, v.reason) for v in check_document(doc, ["q1", "q7"])}
    assert found == {
        ("document.schema_version", "UNSUPPORTED_SCHEMA_VERSION"),
        ("document.dashboard.title", "REQUIRED"),
        ("document.widgets[1].key", "DUPLICATE_KEY"),
        ("document.widgets[1].widget.position", "WIDGET_OVERLAP"),
        ("document.widgets[1].query_key", "UNKNOWN_QUERY_KEY"),
        ("document.widgets[1].widget.config", "REQUIRED"),
        ('document.widgets[0].widget.query.filter_bindings["unit"]', "UNKNOWN_FILTER"),
        ('document.widgets[0].drill_through.column_to_filter["n"]', "UNKNOWN_FILTER"),
        ('query_mappings["q7"]', "UNKNOWN_QUERY_KEY"),
    }
