"""BatchCloneDashboards over a real channel: several dashboards copied in one all-or-nothing call,
every item checked as CloneDashboard checks it before anything is written, links among the
batch's dashboards pointing at the copies, idempotent retries, one audit event per copy."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import share_pb2 as s
from tests.harness.rpc import failure_of
from tests.integration.test_portability import RENAME, counts, drill_targets, export, rich_board
from tests.integration.test_queries import dsn as dsn  # a fixture: the demo data source installed
from tests.integration.test_widgets import refused
from tests.integration.test_widgets import sql as sql  # a fixture: sql(statement, *params) -> rows

Code = grpc.StatusCode


@pytest.fixture
def other_facility() -> str:
    return f"fac-{uuid.uuid4().hex[:10]}"


def batch(*items: d.CloneDashboardRequest, request_id: str = "") -> d.BatchCloneDashboardsRequest:
    return d.BatchCloneDashboardsRequest(requests=items, request_id=request_id)


def linked_pair(dashboards, widgets, queries, md, facility: str) -> tuple[str, str]:
    """rich_board's dashboard and the "Unit detail" dashboard its heatmap drills through to."""
    board = rich_board(dashboards, widgets, queries, md, facility)
    full = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=md)
    target = next(x for x in full.widgets if x.WhichOneof("config") == "heatmap").drill_through.target_dashboard_id
    return board.id, target


def test_a_batch_copies_linked_dashboards_to_another_facility_with_links_to_the_copies(
    dashboards, widgets, queries, auth, facility, other_facility, sql
):
    admin = auth("admin-batch", "admin", facility, other_facility)
    board, target = linked_pair(dashboards, widgets, queries, admin, facility)
    made = dashboards.BatchCloneDashboards(
        batch(
            d.CloneDashboardRequest(id=board, facility_id=other_facility),
            d.CloneDashboardRequest(id=target, facility_id=other_facility),
        ),
        metadata=admin,
    ).clones
    assert [c.dashboard.title for c in made] == ["Bed management", "Unit detail"]  # request order
    assert {c.dashboard.facility_id for c in made} == {other_facility}
    assert [x.action for x in made[0].queries] == [d.QUERY_IMPORT_ACTION_CREATED] * 3
    by_kind = {x.WhichOneof("config"): x for x in made[0].dashboard.widgets}
    # The drill-through to the batch's other dashboard opens its copy; one to itself opens itself.
    assert by_kind["heatmap"].drill_through.target_dashboard_id == made[1].dashboard.id
    assert by_kind["table"].drill_through.target_dashboard_id == made[0].dashboard.id
    assert [fac for _, fac in drill_targets(sql, made[0].dashboard.id)] == [other_facility] * 2
    # Apart from ids, the copy's document is the source's.
    original = export(dashboards, admin, board)
    for entry in original.widgets:
        if entry.drill_through.target_dashboard_id == target:
            entry.drill_through.target_dashboard_id = made[1].dashboard.id
    assert export(dashboards, admin, made[0].dashboard.id) == original
    # Within the source's facility (renamed beside the sources) the link also opens the copy.
    local = dashboards.BatchCloneDashboards(
        batch(
            d.CloneDashboardRequest(id=target, title_conflict=RENAME),
            d.CloneDashboardRequest(id=board, title_conflict=RENAME),
        ),
        metadata=admin,
    ).clones
    assert [c.title for c in local] == ["Unit detail (2)", "Bed management (2)"]
    heatmap = next(x for x in local[1].dashboard.widgets if x.WhichOneof("config") == "heatmap")
    assert heatmap.drill_through.target_dashboard_id == local[0].dashboard.id
    assert {x.action for x in local[1].queries} == {d.QUERY_IMPORT_ACTION_MAPPED}


def test_one_refused_item_refuses_the_batch_with_every_problem_by_item_and_nothing_written(
    dashboards, widgets, queries, auth, facility, other_facility, sql
):
    admin = auth("admin-batch-2", "admin", facility, other_facility)
    board, target = linked_pair(dashboards, widgets, queries, admin, facility)
    before = (counts(sql, facility), counts(sql, other_facility))
    # Item 0's drill-through target is not copied with it; item 1's title is taken where it goes.
    _, reasons = refused(
        lambda: dashboards.BatchCloneDashboards(
            batch(
                d.CloneDashboardRequest(id=board, facility_id=other_facility),
                d.CloneDashboardRequest(id=target),
            ),
            metadata=admin,
        ),
        Code.INVALID_ARGUMENT,
    )
    drill = next(f for f in reasons if f.startswith("requests[0].document.widgets["))
    assert reasons == {drill: "DASHBOARD_NOT_FOUND", "requests[1].title": "TITLE_CONFLICT"}
    assert drill.endswith(".drill_through.target_dashboard_id")
    # Two copies of the batch would take one title: the later one is refused (or renamed).
    _, reasons = refused(
        lambda: dashboards.BatchCloneDashboards(
            batch(
                d.CloneDashboardRequest(id=target, facility_id=other_facility),
                d.CloneDashboardRequest(id=board, facility_id=other_facility, title="Unit detail"),
            ),
            metadata=admin,
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"requests[1].title": "TITLE_CONFLICT"}
    # Field rules of the protos, per item.
    _, reasons = refused(
        lambda: dashboards.BatchCloneDashboards(
            batch(d.CloneDashboardRequest(id=board), d.CloneDashboardRequest(id=target, facility_id="x" * 129)),
            metadata=admin,
        ),
        Code.INVALID_ARGUMENT,
    )
    assert list(reasons) == ["requests[1].facility_id"]
    _, reasons = refused(lambda: dashboards.BatchCloneDashboards(batch(), metadata=admin), Code.INVALID_ARGUMENT)
    assert list(reasons) == ["requests"]
    too_many = [d.CloneDashboardRequest(id=board, title=f"t{i}") for i in range(51)]
    refused(lambda: dashboards.BatchCloneDashboards(batch(*too_many), metadata=admin), Code.INVALID_ARGUMENT)
    assert (counts(sql, facility), counts(sql, other_facility)) == before


def test_the_same_source_twice_into_one_facility_is_refused(
    dashboards, widgets, queries, auth, facility, other_facility, sql
):
    admin = auth("admin-batch-3", "admin", facility, other_facility)
    board, target = linked_pair(dashboards, widgets, queries, admin, facility)
    before = counts(sql, other_facility)
    _, reasons = refused(
        lambda: dashboards.BatchCloneDashboards(
            batch(
                d.CloneDashboardRequest(id=target, facility_id=other_facility),
                d.CloneDashboardRequest(id=board, facility_id=other_facility),
                d.CloneDashboardRequest(id=target.upper(), facility_id=other_facility, title="Another"),
            ),
            metadata=admin,
        ),
        Code.INVALID_ARGUMENT,
    )
    assert reasons == {"requests[2].id": "DUPLICATE_CLONE"}
    assert counts(sql, other_facility) == before
    # Into two facilities it is two copies.
    made = dashboards.BatchCloneDashboards(
        batch(
            d.CloneDashboardRequest(id=target, facility_id=other_facility),
            d.CloneDashboardRequest(id=target, title="Unit detail, here"),
        ),
        metadata=admin,
    ).clones
    assert [c.dashboard.facility_id for c in made] == [other_facility, facility]


def test_viewers_strangers_and_admins_of_one_facility_are_refused_nothing_written(
    dashboards, widgets, queries, auth, facility, other_facility, sql
):
    editor = auth("editor-batch", "editor", facility)
    board, target = linked_pair(dashboards, widgets, queries, editor, facility)
    sql(
        "INSERT INTO dashboard_shares (dashboard_id, facility_id, grantee_type, grantee, level, granted_by)"
        " VALUES (%s, %s, 'user', 'viewer-batch', 3, 'editor-batch')",
        uuid.UUID(board),
        facility,
    )
    viewer = auth("viewer-batch", "viewer", facility)
    before = (counts(sql, facility), counts(sql, other_facility))

    def attempt(md: Any, *items: d.CloneDashboardRequest) -> Any:
        return refused(lambda: dashboards.BatchCloneDashboards(batch(*items), metadata=md), Code.PERMISSION_DENIED)

    failure, _ = attempt(viewer, d.CloneDashboardRequest(id=board, title="Mine"))
    assert failure.reason == "ROLE_REQUIRED" and failure.metadata["item"] == "requests[0]"
    # An admin of the source's facility only: the first item is fine, the second goes elsewhere.
    local_admin = auth("admin-batch-local", "admin", facility)
    failure, _ = attempt(
        local_admin,
        d.CloneDashboardRequest(id=target, title="Fine"),
        d.CloneDashboardRequest(id=board, facility_id=other_facility),
    )
    assert failure.reason == "FACILITY_NOT_ALLOWED" and failure.metadata["item"] == "requests[1]"
    # An editor of both may copy within one facility, not across.
    both = auth("editor-batch-both", "editor", facility, other_facility)
    own = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Own")), metadata=both
    )
    before = (counts(sql, facility), counts(sql, other_facility))
    failure, _ = attempt(both, d.CloneDashboardRequest(id=own.id, facility_id=other_facility))
    assert failure.reason == "ROLE_REQUIRED"
    # Another facility's admin: the sources do not exist for them.
    stranger = auth("admin-batch-stranger", "admin", other_facility)
    failure, _ = refused(
        lambda: dashboards.BatchCloneDashboards(
            batch(d.CloneDashboardRequest(id=board, facility_id=other_facility)), metadata=stranger
        ),
        Code.NOT_FOUND,
    )
    assert failure.metadata["item"] == "requests[0]"
    assert (counts(sql, facility), counts(sql, other_facility)) == before


def test_a_retried_batch_returns_the_first_copies_and_another_batch_cannot_reuse_its_id(
    dashboards, widgets, queries, auth, facility, other_facility, sql
):
    admin = auth("admin-batch-4", "admin", facility, other_facility)
    board, target = linked_pair(dashboards, widgets, queries, admin, facility)
    request = batch(
        d.CloneDashboardRequest(id=board, facility_id=other_facility),
        d.CloneDashboardRequest(id=target, facility_id=other_facility),
        request_id=str(uuid.uuid4()),
    )
    first = dashboards.BatchCloneDashboards(request, metadata=admin).clones
    after = counts(sql, other_facility)
    again = dashboards.BatchCloneDashboards(request, metadata=admin).clones
    assert [c.dashboard.id for c in again] == [c.dashboard.id for c in first]
    assert [c.dashboard.widgets for c in again] == [c.dashboard.widgets for c in first]
    assert [[x.query_id for x in c.queries] for c in again] == [[x.query_id for x in c.queries] for c in first]
    assert counts(sql, other_facility) == after
    other = d.BatchCloneDashboardsRequest()
    other.CopyFrom(request)
    del other.requests[1]
    failure, _ = refused(lambda: dashboards.BatchCloneDashboards(other, metadata=admin), Code.ALREADY_EXISTS)
    assert failure.reason == "REQUEST_ID_REUSED"
    # An item's own request_id is refused: the batch's is the key.
    item = d.CloneDashboardRequest(id=target, title="Own id", request_id=str(uuid.uuid4()))
    _, reasons = refused(lambda: dashboards.BatchCloneDashboards(batch(item), metadata=admin), Code.INVALID_ARGUMENT)
    assert reasons == {"requests[0].request_id": "BATCH_ITEM_REQUEST_ID"}
    assert counts(sql, other_facility) == after


def test_each_copy_leaves_an_audit_event_like_a_clone(
    dashboards, widgets, queries, shares, auth, facility, other_facility, sql
):
    subject = f"batch-auditee-{uuid.uuid4().hex[:8]}"
    admin = auth(subject, "admin", facility, other_facility)
    board, target = linked_pair(dashboards, widgets, queries, admin, facility)
    made = dashboards.BatchCloneDashboards(
        batch(
            d.CloneDashboardRequest(id=board, facility_id=other_facility),
            d.CloneDashboardRequest(id=target, facility_id=other_facility),
        ),
        metadata=admin,
    ).clones
    with pytest.raises(grpc.RpcError) as caught:
        dashboards.BatchCloneDashboards(batch(d.CloneDashboardRequest(id=target)), metadata=admin)
    assert failure_of(caught.value).code == Code.INVALID_ARGUMENT
    shares.ListAuditEvents(s.ListAuditEventsRequest(actor=subject), metadata=admin)  # written by now
    rows = sql(
        "SELECT outcome, resource_id, facility_id, details FROM audit_log WHERE actor = %s"
        " AND method LIKE %s ORDER BY id",
        subject,
        "%BatchCloneDashboards",
    )
    assert [(o, rid, fac) for o, rid, fac, _ in rows[:2]] == [
        (s.AUDIT_OUTCOME_SUCCESS, board, facility),
        (s.AUDIT_OUTCOME_SUCCESS, target, facility),
    ]
    first, second = rows[0][3], rows[1][3]
    assert first["created_dashboard_id"] == made[0].dashboard.id and first["target_facility_id"] == other_facility
    assert second["created_dashboard_id"] == made[1].dashboard.id and second["target_facility_id"] == other_facility
    assert [first["batch_index"], second["batch_index"]] == [0, 1]
    assert set(first["queries"]) == {"q1", "q2", "q3"}
    assert len(rows) == 3 and rows[2][0] != s.AUDIT_OUTCOME_SUCCESS  # the refused batch: one event
