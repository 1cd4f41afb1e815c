"""DashboardService over a real channel: CRUD, lists, masks, etags, idempotency, versions,
publishing, roles and facility isolation."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import field_mask_pb2

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from tests.harness.rpc import expect_failure

Code = grpc.StatusCode


@pytest.fixture
def editor(auth, facility):
    return auth("editor-1", "editor", facility)


def create(dashboards, md, facility: str, title: str = "Ops", **fields) -> d.Dashboard:
    return dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title=title, **fields)), metadata=md
    )


def add_kpi(widgets, md, dashboard_id: str, title: str) -> w.Widget:
    return widgets.CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=dashboard_id,
                title=title,
                position=w.GridPosition(x=0, y=0, width=2, height=2),
                kpi=w.KpiConfig(value_column="n"),
            )
        ),
        metadata=md,
    )


def test_create_then_get_round_trips_every_field(dashboards, editor, facility):
    board = d.Dashboard(
        facility_id=facility,
        title="Emergency department",
        description="Waiting times",
        tags=["ed", "ops"],
        visibility=d.VISIBILITY_PUBLIC,
        layout=d.GridLayout(row_height=60, gap=8),
        filters=[d.DashboardFilter(name="unit", label="Unit")],
    )
    board.metadata.update({"team": "ed", "priority": 2})
    created = dashboards.CreateDashboard(d.CreateDashboardRequest(dashboard=board), metadata=editor)
    assert uuid.UUID(created.id)
    assert created.owner_id == "editor-1"
    assert created.version == 1 and created.published_version == 0
    assert created.etag and created.create_time.seconds > 0
    got = dashboards.GetDashboard(d.GetDashboardRequest(id=created.id), metadata=editor)
    assert got == created
    assert list(got.tags) == ["ed", "ops"]
    assert got.layout.columns == 12 and got.layout.row_height == 60 and got.layout.gap == 8
    assert got.metadata["team"] == "ed" and got.metadata["priority"] == 2
    assert got.visibility == d.VISIBILITY_PUBLIC
    assert got.filters[0].name == "unit"


def test_facility_defaults_to_the_callers_only_facility(dashboards, editor, facility):
    created = dashboards.CreateDashboard(d.CreateDashboardRequest(dashboard=d.Dashboard(title="x")), metadata=editor)
    assert created.facility_id == facility


def test_create_in_a_facility_the_caller_lacks_is_denied(dashboards, editor):
    expect_failure(
        lambda: create(dashboards, editor, "someone-elses"), Code.PERMISSION_DENIED, reason="FACILITY_NOT_ALLOWED"
    )


def test_viewer_cannot_create(dashboards, auth, facility):
    expect_failure(
        lambda: create(dashboards, auth("v", "viewer", facility), facility),
        Code.PERMISSION_DENIED,
        reason="ROLE_REQUIRED",
    )


def test_other_facility_sees_not_found_everywhere(dashboards, editor, auth, facility):
    board = create(dashboards, editor, facility)
    stranger = auth("admin-b", "admin", "another-facility")
    for call in (
        lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=stranger),
        lambda: dashboards.UpdateDashboard(
            d.UpdateDashboardRequest(dashboard=d.Dashboard(id=board.id, title="pwned")), metadata=stranger
        ),
        lambda: dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=board.id), metadata=stranger),
        lambda: dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=stranger),
        lambda: dashboards.ListDashboardVersions(
            d.ListDashboardVersionsRequest(dashboard_id=board.id), metadata=stranger
        ),
        lambda: dashboards.GetDashboardVersion(
            d.GetDashboardVersionRequest(dashboard_id=board.id, version=1), metadata=stranger
        ),
        lambda: dashboards.RestoreDashboardVersion(
            d.RestoreDashboardVersionRequest(dashboard_id=board.id, version=1), metadata=stranger
        ),
    ):
        failure = expect_failure(call, Code.NOT_FOUND, reason="DASHBOARD_NOT_FOUND")
        assert "pwned" not in failure.message
    listed = dashboards.ListDashboards(d.ListDashboardsRequest(page_size=1000), metadata=stranger)
    assert board.id not in {x.id for x in listed.dashboards}
    # Nothing changed.
    assert dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=editor) == board


def test_private_dashboard_of_a_colleague_is_not_found_but_public_published_is_readable(
    dashboards, editor, auth, facility
):
    colleague = auth("editor-2", "editor", facility)
    private = create(dashboards, editor, facility, "private")
    expect_failure(
        lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=private.id), metadata=colleague), Code.NOT_FOUND
    )
    public = create(dashboards, editor, facility, "public v1", visibility=d.VISIBILITY_PUBLIC)
    # Public but never published: nothing to read yet.
    expect_failure(
        lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=public.id), metadata=colleague), Code.NOT_FOUND
    )
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=public.id), metadata=editor)
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=public.id, title="public v2 draft"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=editor,
    )
    seen = dashboards.GetDashboard(d.GetDashboardRequest(id=public.id), metadata=colleague)
    assert seen.title == "public v1" and seen.version == 1  # the published version, not the draft
    # Read-only: the colleague may see it, so a write is PERMISSION_DENIED (not NOT_FOUND).
    expect_failure(
        lambda: dashboards.UpdateDashboard(
            d.UpdateDashboardRequest(
                dashboard=d.Dashboard(id=public.id, title="x"), update_mask=field_mask_pb2.FieldMask(paths=["title"])
            ),
            metadata=colleague,
        ),
        Code.PERMISSION_DENIED,
    )


def test_update_with_mask_changes_only_masked_fields_and_writes_a_version(dashboards, editor, facility):
    board = create(dashboards, editor, facility, "before", description="keep me", tags=["a"])
    updated = dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=board.id, title="after", description="ignored", etag=board.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=editor,
    )
    assert updated.title == "after" and updated.description == "keep me" and list(updated.tags) == ["a"]
    assert updated.version == 2 and updated.etag != board.etag
    assert updated.update_time.ToDatetime() >= board.update_time.ToDatetime()


def test_update_without_changes_writes_no_version(dashboards, editor, facility):
    board = create(dashboards, editor, facility, "same")
    again = dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=board.id, title="same"), update_mask=field_mask_pb2.FieldMask(paths=["title"])
        ),
        metadata=editor,
    )
    assert again.version == 1 and again.etag == board.etag


def test_stale_etag_is_aborted_and_nothing_changes(dashboards, editor, facility):
    board = create(dashboards, editor, facility, "v1")
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=board.id, title="v2", etag=board.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=editor,
    )
    expect_failure(
        lambda: dashboards.UpdateDashboard(
            d.UpdateDashboardRequest(
                dashboard=d.Dashboard(id=board.id, title="lost update", etag=board.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=editor,
        ),
        Code.ABORTED,
        reason="ETAG_MISMATCH",
    )
    expect_failure(
        lambda: dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=board.id, etag=board.etag), metadata=editor),
        Code.ABORTED,
    )
    current = dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=editor)
    assert current.title == "v2" and current.version == 2
    versions = dashboards.ListDashboardVersions(d.ListDashboardVersionsRequest(dashboard_id=board.id), metadata=editor)
    assert [v.version for v in versions.versions] == [2, 1]


def test_update_mask_with_unknown_or_immutable_field_is_invalid(dashboards, editor, facility):
    board = create(dashboards, editor, facility)
    for path in ("owner_id", "facility_id", "no_such_field", "version"):
        expect_failure(
            lambda p=path: dashboards.UpdateDashboard(
                d.UpdateDashboardRequest(
                    dashboard=d.Dashboard(id=board.id, title="t"), update_mask=field_mask_pb2.FieldMask(paths=[p])
                ),
                metadata=editor,
            ),
            Code.INVALID_ARGUMENT,
            field="update_mask",
            reason="INVALID_ARGUMENT",
        )
    assert dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=editor).version == 1


def test_repeated_request_id_returns_the_first_result(dashboards, editor, facility):
    request = d.CreateDashboardRequest(
        dashboard=d.Dashboard(facility_id=facility, title="once"), request_id=str(uuid.uuid4())
    )
    first = dashboards.CreateDashboard(request, metadata=editor)
    second = dashboards.CreateDashboard(request, metadata=editor)
    assert first.id == second.id
    with ThreadPoolExecutor(8) as pool:
        racing = d.CreateDashboardRequest(
            dashboard=d.Dashboard(facility_id=facility, title="race"), request_id=str(uuid.uuid4())
        )
        ids = set(pool.map(lambda _: dashboards.CreateDashboard(racing, metadata=editor).id, range(8)))
    assert len(ids) == 1
    listed = dashboards.ListDashboards(d.ListDashboardsRequest(facility_id=facility, page_size=100), metadata=editor)
    titles = [x.title for x in listed.dashboards]
    assert titles.count("once") == 1 and titles.count("race") == 1
    # The same key with another request is refused.
    expect_failure(
        lambda: dashboards.CreateDashboard(
            d.CreateDashboardRequest(
                dashboard=d.Dashboard(facility_id=facility, title="different"), request_id=request.request_id
            ),
            metadata=editor,
        ),
        Code.ALREADY_EXISTS,
        reason="REQUEST_ID_REUSED",
    )


def test_list_filters_orders_and_paginates(dashboards, editor, auth, facility):
    other_owner = auth("editor-2", "editor", facility)
    made = [create(dashboards, editor, facility, f"board {i:02d}", tags=["t", f"n{i % 2}"]) for i in range(7)]
    create(dashboards, other_owner, facility, "not mine", tags=["t"])
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=made[0].id), metadata=editor)
    admin = auth("admin", "admin", facility)

    def all_pages(**kw) -> list[d.Dashboard]:
        out, token = [], ""
        while True:
            page = dashboards.ListDashboards(
                d.ListDashboardsRequest(facility_id=facility, page_size=3, page_token=token, **kw), metadata=admin
            )
            assert len(page.dashboards) <= 3
            out.extend(page.dashboards)
            token = page.next_page_token
            if not token:
                return out

    by_title = all_pages(order_by="title")
    assert [x.title for x in by_title] == sorted(x.title for x in by_title)
    assert len(by_title) == 8 and len({x.id for x in by_title}) == 8
    assert [x.title for x in all_pages(order_by="title desc")] == [x.title for x in reversed(by_title)]
    assert len(all_pages(tags=["n1"])) == 3
    assert {x.owner_id for x in all_pages(owner_id="editor-2")} == {"editor-2"}
    assert [x.id for x in all_pages(published=True)] == [made[0].id]
    assert len(all_pages(published=False)) == 7
    newest_first = all_pages()
    assert [x.update_time.ToDatetime() for x in newest_first] == sorted(
        (x.update_time.ToDatetime() for x in newest_first), reverse=True
    )
    assert not any(x.widgets for x in newest_first)
    assert [x.title for x in all_pages(title_contains="BOARD 0")] == [
        x.title for x in all_pages() if x.title.startswith("board 0")
    ]


def test_an_editors_list_is_what_the_policy_lets_it_see_page_by_page(dashboards, shares, widgets, auth, facility):
    # Owned, shared with the caller, shared with a role it reaches, public and published (seen as
    # published, without widgets); not: a role it does not reach, public unpublished, private,
    # and a share in another facility (the list's share lookup is scoped to the caller's).
    caller = auth("caller", "editor", facility)
    other_facility = f"{facility}-x"
    other = auth("owner-2", "admin", facility, other_facility)
    mine = create(dashboards, caller, facility, "mine sepsis", tags=["a"])
    user_shared = create(dashboards, other, facility, "user shared", tags=["a", "b"])
    role_shared = create(dashboards, other, facility, "role shared sepsis")
    admin_only = create(dashboards, other, facility, "admins only")
    public = create(dashboards, other, facility, "public v1", visibility=d.VISIBILITY_PUBLIC, tags=["b"])
    create(dashboards, other, facility, "public unpublished", visibility=d.VISIBILITY_PUBLIC)
    create(dashboards, other, facility, "private")
    elsewhere = create(dashboards, other, other_facility, "elsewhere")
    for board, grant in (
        (user_shared, {"user_id": "caller"}),
        (role_shared, {"role": s.ROLE_VIEWER}),
        (admin_only, {"role": s.ROLE_ADMIN}),
        (elsewhere, {"user_id": "caller"}),
    ):
        shares.ShareDashboard(
            s.ShareDashboardRequest(dashboard_id=board.id, level=s.SHARE_LEVEL_VIEW, **grant), metadata=other
        )
    add_kpi(widgets, other, public.id, "kpi")
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=public.id), metadata=other)
    mask = field_mask_pb2.FieldMask(paths=["title"])
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(dashboard=d.Dashboard(id=public.id, title="public v2"), update_mask=mask),
        metadata=other,
    )

    def pages(**kw) -> list[d.Dashboard]:
        out, token = [], ""
        while True:
            page = dashboards.ListDashboards(
                d.ListDashboardsRequest(page_size=2, page_token=token, **kw), metadata=caller
            )
            assert len(page.dashboards) <= 2
            out.extend(page.dashboards)
            token = page.next_page_token
            if not token:
                return out

    seen = pages()
    assert [x.id for x in seen] == [x.id for x in (public, role_shared, user_shared, mine)]  # newest change first
    shown = {x.id: x for x in seen}
    assert shown[public.id].title == "public v1" and shown[public.id].version == shown[public.id].published_version
    assert not any(x.widgets for x in seen)
    assert shown[mine.id].title == "mine sepsis" and shown[mine.id].etag == mine.etag
    assert [x.id for x in pages(title_contains="SEPSIS")] == [role_shared.id, mine.id]
    assert [x.id for x in pages(tags=["b"])] == [public.id, user_shared.id]
    assert [x.id for x in pages(published=True)] == [public.id]
    assert [x.id for x in pages(order_by="title")] == [mine.id, public.id, role_shared.id, user_shared.id]


def test_page_token_from_other_filters_is_refused(dashboards, editor, facility):
    for i in range(3):
        create(dashboards, editor, facility, f"p{i}")
    page = dashboards.ListDashboards(d.ListDashboardsRequest(facility_id=facility, page_size=1), metadata=editor)
    assert page.next_page_token
    expect_failure(
        lambda: dashboards.ListDashboards(
            d.ListDashboardsRequest(
                facility_id=facility, page_size=1, page_token=page.next_page_token, order_by="title"
            ),
            metadata=editor,
        ),
        Code.INVALID_ARGUMENT,
        field="page_token",
    )
    expect_failure(
        lambda: dashboards.ListDashboards(d.ListDashboardsRequest(page_token="garbage!"), metadata=editor),
        Code.INVALID_ARGUMENT,
        field="page_token",
    )


def test_publish_versions_and_restore(dashboards, editor, facility):
    board = create(dashboards, editor, facility, "first")
    mask = field_mask_pb2.FieldMask(paths=["title"])
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(dashboard=d.Dashboard(id=board.id, title="second"), update_mask=mask), metadata=editor
    )
    published = dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=editor)
    assert published.published_version == 2 and published.publish_time.seconds > 0
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(dashboard=d.Dashboard(id=board.id, title="third"), update_mask=mask), metadata=editor
    )
    versions = dashboards.ListDashboardVersions(
        d.ListDashboardVersionsRequest(dashboard_id=board.id), metadata=editor
    ).versions
    assert [(v.version, v.reason, v.published) for v in versions] == [
        (3, d.VERSION_REASON_UPDATE, False),
        (2, d.VERSION_REASON_UPDATE, True),
        (1, d.VERSION_REASON_CREATE, False),
    ]
    v1 = dashboards.GetDashboardVersion(d.GetDashboardVersionRequest(dashboard_id=board.id, version=1), metadata=editor)
    assert v1.snapshot.title == "first" and v1.author_id == "editor-1"
    restored = dashboards.RestoreDashboardVersion(
        d.RestoreDashboardVersionRequest(dashboard_id=board.id, version=1), metadata=editor
    )
    assert restored.title == "first" and restored.version == 4 and restored.published_version == 2
    v4 = dashboards.GetDashboardVersion(d.GetDashboardVersionRequest(dashboard_id=board.id, version=4), metadata=editor)
    assert v4.reason == d.VERSION_REASON_RESTORE and v4.restored_from == 1
    # Old versions are untouched by the restore.
    assert (
        dashboards.GetDashboardVersion(
            d.GetDashboardVersionRequest(dashboard_id=board.id, version=3), metadata=editor
        ).snapshot.title
        == "third"
    )
    expect_failure(
        lambda: dashboards.GetDashboardVersion(
            d.GetDashboardVersionRequest(dashboard_id=board.id, version=99), metadata=editor
        ),
        Code.NOT_FOUND,
    )
    expect_failure(
        lambda: dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id, version=99), metadata=editor),
        Code.NOT_FOUND,
    )


def test_versions_paginate(dashboards, editor, facility):
    board = create(dashboards, editor, facility, "t0")
    for i in range(1, 5):
        dashboards.UpdateDashboard(
            d.UpdateDashboardRequest(
                dashboard=d.Dashboard(id=board.id, title=f"t{i}"), update_mask=field_mask_pb2.FieldMask(paths=["title"])
            ),
            metadata=editor,
        )
    seen, token = [], ""
    while True:
        page = dashboards.ListDashboardVersions(
            d.ListDashboardVersionsRequest(dashboard_id=board.id, page_size=2, page_token=token), metadata=editor
        )
        seen += [v.version for v in page.versions]
        token = page.next_page_token
        if not token:
            break
    assert seen == [5, 4, 3, 2, 1]


def test_delete_removes_dashboard_and_needs_manage(dashboards, editor, auth, facility):
    board = create(dashboards, editor, facility)
    viewer = auth("viewer", "viewer", facility)
    expect_failure(
        lambda: dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=board.id), metadata=viewer), Code.NOT_FOUND
    )
    dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=board.id, etag=board.etag), metadata=editor)
    expect_failure(lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=editor), Code.NOT_FOUND)


def test_admin_of_the_facility_manages_any_dashboard(dashboards, editor, auth, facility):
    board = create(dashboards, editor, facility)
    admin = auth("boss", "admin", facility)
    assert dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=admin).published_version == 1


def test_duplicate_filter_names_are_rejected(dashboards, editor, facility):
    expect_failure(
        lambda: create(
            dashboards, editor, facility, filters=[d.DashboardFilter(name="unit"), d.DashboardFilter(name="unit")]
        ),
        Code.INVALID_ARGUMENT,
        field="dashboard.filters[1].name",
    )


def test_lists_and_reads_show_every_change_at_once(dashboards, widgets, auth, facility):
    # Rows become messages through memos keyed by the rows' content: a change is a new key.
    caller = auth("kept-1", "editor", facility)
    board = create(dashboards, caller, facility, "before", tags=["x"])
    widget = add_kpi(widgets, caller, board.id, "w before")

    def listed() -> d.Dashboard:
        (only,) = dashboards.ListDashboards(d.ListDashboardsRequest(), metadata=caller).dashboards
        return only

    def got() -> d.Dashboard:
        return dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=caller)

    assert listed().title == "before" and [x.title for x in got().widgets] == ["w before"]
    change = d.Dashboard(id=board.id, title="after", tags=["y", "z"], description="now described")
    change.metadata.update({"k": 1})
    updated = dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=change, update_mask=field_mask_pb2.FieldMask(paths=["title", "tags", "description", "metadata"])
        ),
        metadata=caller,
    )
    now = listed()
    assert (now.title, list(now.tags), now.description, now.metadata["k"]) == ("after", ["y", "z"], "now described", 1)
    assert now.etag == updated.etag != board.etag and now.version == updated.version
    widgets.UpdateWidget(
        w.UpdateWidgetRequest(
            widget=w.Widget(id=widget.id, title="w after"), update_mask=field_mask_pb2.FieldMask(paths=["title"])
        ),
        metadata=caller,
    )
    assert [x.title for x in got().widgets] == ["w after"]


def test_a_caller_of_several_facilities_lists_each_of_them(dashboards, auth, facility):
    # One facility and several are two shapes of the visibility statement (= and = ANY).
    second = f"{facility}-2"
    both = auth("both-1", "editor", facility, second)
    here = create(dashboards, both, facility, "here")
    there = create(dashboards, both, second, "there")
    create(dashboards, auth("other-1", "editor", second), second, "private of another")
    listed = dashboards.ListDashboards(d.ListDashboardsRequest(), metadata=both).dashboards
    assert [x.id for x in listed] == [there.id, here.id]
    only_second = dashboards.ListDashboards(d.ListDashboardsRequest(facility_id=second), metadata=both).dashboards
    assert [x.id for x in only_second] == [there.id]
    one = auth("both-1", "editor", facility)
    assert [x.id for x in dashboards.ListDashboards(d.ListDashboardsRequest(), metadata=one).dashboards] == [here.id]


def test_a_share_given_and_removed_shows_in_the_next_list_at_once(dashboards, shares, auth, facility):
    """A list keeps each row's policy facts by the row's content (server/dashboards/listing.py):
    a changed share is another key, so the very next list is decided on the new shares."""
    caller = auth("lister", "editor", facility)
    owner = auth("sharer", "editor", facility)
    board = create(dashboards, owner, facility, "shared for a while")

    def listed() -> bool:
        page = dashboards.ListDashboards(d.ListDashboardsRequest(page_size=100), metadata=caller)
        return board.id in {x.id for x in page.dashboards}

    assert not listed()
    shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, level=s.SHARE_LEVEL_VIEW, user_id="lister"), metadata=owner
    )
    assert listed() and listed()
    shares.UnshareDashboard(s.UnshareDashboardRequest(dashboard_id=board.id, user_id="lister"), metadata=owner)
    assert not listed()
    shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, level=s.SHARE_LEVEL_VIEW, role=s.ROLE_EDITOR), metadata=owner
    )
    assert listed()
    shares.UnshareDashboard(s.UnshareDashboardRequest(dashboard_id=board.id, role=s.ROLE_EDITOR), metadata=owner)
    assert not listed()
