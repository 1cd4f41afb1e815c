"""ShareService shares over a real channel: upsert, unshare, list, pagination, and the
privilege-escalation cases (viewers, EDIT holders, other facilities, roles capping shares)."""

from __future__ import annotations

import grpc
import pytest

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import share_pb2 as s
from tests.harness.rpc import expect_failure

Code = grpc.StatusCode


@pytest.fixture
def owner(auth, facility):
    return auth("owner-1", "editor", facility)


@pytest.fixture
def board(dashboards, owner, facility) -> d.Dashboard:
    return dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Shared")), metadata=owner
    )


def share(shares, md, board_id: str, level: int, *, user: str = "", role: int = 0) -> s.Share:
    request = s.ShareDashboardRequest(dashboard_id=board_id, level=level)
    if user:
        request.user_id = user
    else:
        request.role = role
    return shares.ShareDashboard(request, metadata=md)


def get(dashboards, md, board_id: str) -> d.Dashboard:
    return dashboards.GetDashboard(d.GetDashboardRequest(id=board_id), metadata=md)


def rename(dashboards, md, board_id: str, title: str = "renamed") -> d.Dashboard:
    return dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(dashboard=d.Dashboard(id=board_id, title=title), update_mask={"paths": ["title"]}),
        metadata=md,
    )


def test_share_grants_access_and_unshare_removes_it(shares, dashboards, owner, board, auth, facility):
    bob = auth("bob", "editor", facility)
    expect_failure(lambda: get(dashboards, bob, board.id), Code.NOT_FOUND)
    created = share(shares, owner, board.id, s.SHARE_LEVEL_VIEW, user="bob")
    assert created.dashboard_id == board.id and created.user_id == "bob"
    assert created.level == s.SHARE_LEVEL_VIEW and created.granted_by == "owner-1"
    assert created.create_time.seconds > 0
    assert get(dashboards, bob, board.id).id == board.id
    expect_failure(lambda: rename(dashboards, bob, board.id), Code.PERMISSION_DENIED)

    # Upsert: the same grantee again changes the level; no second row.
    changed = share(shares, owner, board.id, s.SHARE_LEVEL_EDIT, user="bob")
    assert changed.level == s.SHARE_LEVEL_EDIT
    assert rename(dashboards, bob, board.id).title == "renamed"
    listed = shares.ListShares(s.ListSharesRequest(dashboard_id=board.id), metadata=owner)
    assert [(x.user_id, x.level) for x in listed.shares] == [("bob", s.SHARE_LEVEL_EDIT)]

    shares.UnshareDashboard(s.UnshareDashboardRequest(dashboard_id=board.id, user_id="bob"), metadata=owner)
    expect_failure(lambda: get(dashboards, bob, board.id), Code.NOT_FOUND)
    expect_failure(
        lambda: shares.UnshareDashboard(
            s.UnshareDashboardRequest(dashboard_id=board.id, user_id="bob"), metadata=owner
        ),
        Code.NOT_FOUND,
        reason="SHARE_NOT_FOUND",
    )


def test_role_share_reaches_holders_of_the_role(shares, dashboards, owner, board, auth, facility):
    viewer = auth("val", "viewer", facility)
    expect_failure(lambda: get(dashboards, viewer, board.id), Code.NOT_FOUND)
    created = share(shares, owner, board.id, s.SHARE_LEVEL_VIEW, role=s.ROLE_VIEWER)
    assert created.role == s.ROLE_VIEWER and not created.user_id
    assert get(dashboards, viewer, board.id).id == board.id
    shares.UnshareDashboard(s.UnshareDashboardRequest(dashboard_id=board.id, role=s.ROLE_VIEWER), metadata=owner)
    expect_failure(lambda: get(dashboards, viewer, board.id), Code.NOT_FOUND)


def test_viewer_cannot_share_even_with_a_manage_share(shares, owner, board, auth, facility):
    viewer = auth("val", "viewer", facility)
    # Cannot see it: NOT_FOUND.
    expect_failure(lambda: share(shares, viewer, board.id, s.SHARE_LEVEL_VIEW, user="x"), Code.NOT_FOUND)
    # Sees it (even through a MANAGE share), but the role caps it at VIEW: PERMISSION_DENIED.
    share(shares, owner, board.id, s.SHARE_LEVEL_MANAGE, user="val")
    expect_failure(
        lambda: share(shares, viewer, board.id, s.SHARE_LEVEL_MANAGE, user="val2"),
        Code.PERMISSION_DENIED,
        reason="INSUFFICIENT_ACCESS",
    )
    expect_failure(
        lambda: shares.UnshareDashboard(
            s.UnshareDashboardRequest(dashboard_id=board.id, user_id="val"), metadata=viewer
        ),
        Code.PERMISSION_DENIED,
    )


def test_viewer_role_grantee_with_edit_share_still_cannot_write(shares, dashboards, owner, board, auth, facility):
    viewer = auth("val", "viewer", facility)
    share(shares, owner, board.id, s.SHARE_LEVEL_EDIT, user="val")
    assert get(dashboards, viewer, board.id).id == board.id
    expect_failure(lambda: rename(dashboards, viewer, board.id), Code.PERMISSION_DENIED)


def test_editor_with_edit_share_cannot_share_but_manage_holder_can(shares, owner, board, auth, facility):
    eddie = auth("eddie", "editor", facility)
    share(shares, owner, board.id, s.SHARE_LEVEL_EDIT, user="eddie")
    expect_failure(
        lambda: share(shares, eddie, board.id, s.SHARE_LEVEL_MANAGE, user="eddie"),
        Code.PERMISSION_DENIED,
        reason="INSUFFICIENT_ACCESS",
    )
    # Editing someone else's share is sharing too.
    share(shares, owner, board.id, s.SHARE_LEVEL_VIEW, user="other")
    expect_failure(
        lambda: shares.UnshareDashboard(
            s.UnshareDashboardRequest(dashboard_id=board.id, user_id="other"), metadata=eddie
        ),
        Code.PERMISSION_DENIED,
    )
    # ListShares needs VIEW only: an editor can see who else has access.
    listed = shares.ListShares(s.ListSharesRequest(dashboard_id=board.id), metadata=eddie)
    assert {x.user_id for x in listed.shares} == {"eddie", "other"}
    # A MANAGE holder may share; an admin of the facility too.
    share(shares, owner, board.id, s.SHARE_LEVEL_MANAGE, user="eddie")
    assert share(shares, eddie, board.id, s.SHARE_LEVEL_VIEW, user="third").granted_by == "eddie"
    admin = auth("root", "admin", facility)
    assert share(shares, admin, board.id, s.SHARE_LEVEL_VIEW, user="fourth").granted_by == "root"


def test_sharing_never_crosses_facilities(shares, dashboards, owner, board, auth, facility):
    stranger_admin = auth("root-b", "admin", "another-facility")
    expect_failure(lambda: share(shares, stranger_admin, board.id, s.SHARE_LEVEL_MANAGE, user="root-b"), Code.NOT_FOUND)
    expect_failure(
        lambda: shares.ListShares(s.ListSharesRequest(dashboard_id=board.id), metadata=stranger_admin), Code.NOT_FOUND
    )
    expect_failure(
        lambda: shares.UnshareDashboard(
            s.UnshareDashboardRequest(dashboard_id=board.id, user_id="x"), metadata=stranger_admin
        ),
        Code.NOT_FOUND,
    )
    # A share naming a user of another facility gives that user nothing there.
    share(shares, owner, board.id, s.SHARE_LEVEL_MANAGE, user="far-away")
    expect_failure(lambda: get(dashboards, auth("far-away", "editor", "another-facility"), board.id), Code.NOT_FOUND)
    share(shares, owner, board.id, s.SHARE_LEVEL_VIEW, role=s.ROLE_EDITOR)
    expect_failure(lambda: get(dashboards, auth("e2", "editor", "another-facility"), board.id), Code.NOT_FOUND)


def test_list_shares_pages(shares, owner, board):
    for i in range(5):
        share(shares, owner, board.id, s.SHARE_LEVEL_VIEW, user=f"u{i}")
    share(shares, owner, board.id, s.SHARE_LEVEL_VIEW, role=s.ROLE_EDITOR)
    seen: list[str] = []
    token = ""
    while True:
        page = shares.ListShares(
            s.ListSharesRequest(dashboard_id=board.id, page_size=2, page_token=token), metadata=owner
        )
        assert len(page.shares) <= 2
        seen += [x.user_id or f"role:{x.role}" for x in page.shares]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted([f"role:{s.ROLE_EDITOR}", "u0", "u1", "u2", "u3", "u4"])
    assert len(seen) == len(set(seen))
    expect_failure(
        lambda: shares.ListShares(s.ListSharesRequest(dashboard_id=board.id, page_token="garbage"), metadata=owner),
        Code.INVALID_ARGUMENT,
    )


def test_share_request_validation(shares, owner, board):
    expect_failure(
        lambda: shares.ShareDashboard(
            s.ShareDashboardRequest(dashboard_id=board.id, level=s.SHARE_LEVEL_VIEW), metadata=owner
        ),
        Code.INVALID_ARGUMENT,
    )
    expect_failure(
        lambda: shares.ShareDashboard(s.ShareDashboardRequest(dashboard_id=board.id, user_id="x"), metadata=owner),
        Code.INVALID_ARGUMENT,
    )
