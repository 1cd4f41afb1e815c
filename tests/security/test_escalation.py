"""Privilege escalation (issue 6, adversarial suite), each case of the issue's list end to end.

Where the integration tests already prove a case in depth, it is proven again here in its
shortest form, so this file is the checklist: a viewer updating, a non-owner sharing, a share to
another facility, editing someone else's share, an expired or revoked public link, a public link
used for another dashboard (or for its own dashboard's draft), and a widget moved out of its
dashboard. Every refusal is followed by proof that nothing changed.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import psycopg
import pytest

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.db.migrate import sync_url
from tests.harness.rpc import expect_failure

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def dsn(migrated: str) -> str:
    return sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)


class World:
    """A facility with an owner's dashboard (one widget on a query), and helpers."""

    def __init__(self, stubs: dict[str, Any], auth: Any, facility: str) -> None:
        self.stubs, self.auth, self.facility = stubs, auth, facility
        self.owner = auth("owner", "editor", facility)
        self.admin = auth("root", "admin", facility)
        self.query = stubs["queries"].CreateQuery(
            q.CreateQueryRequest(query=q.Query(facility_id=facility, name="esc", sql="SELECT 1 AS one")),
            metadata=self.owner,
        )
        self.board = self.new_board()
        self.widget = self.new_widget(self.board.id, y=0)

    def new_board(self, title: str = "escalation") -> d.Dashboard:
        return self.stubs["dashboards"].CreateDashboard(
            d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=self.facility, title=title)),
            metadata=self.owner,
        )

    def new_widget(self, board_id: str, *, y: int) -> w.Widget:
        widget = w.Widget(
            dashboard_id=board_id,
            title="w",
            position=w.GridPosition(x=0, y=y, width=4, height=2),
            table=w.TableConfig(),
            query=w.QueryBinding(query_id=self.query.id),
        )
        return self.stubs["widgets"].CreateWidget(w.CreateWidgetRequest(widget=widget), metadata=self.owner)

    def share(self, md: Any, level: int, *, user: str = "", role: int = 0, board_id: str = "") -> s.Share:
        request = s.ShareDashboardRequest(dashboard_id=board_id or self.board.id, level=level)
        if user:
            request.user_id = user
        else:
            request.role = role  # type: ignore[assignment]
        return self.stubs["shares"].ShareDashboard(request, metadata=md)

    def shares_now(self) -> set[tuple[str, int]]:
        listed = self.stubs["shares"].ListShares(s.ListSharesRequest(dashboard_id=self.board.id), metadata=self.admin)
        return {(x.user_id or f"role:{x.role}", x.level) for x in listed.shares}

    def board_now(self) -> d.Dashboard:
        return self.stubs["dashboards"].GetDashboard(d.GetDashboardRequest(id=self.board.id), metadata=self.admin)

    def publish(self) -> d.Dashboard:
        return self.stubs["dashboards"].PublishDashboard(
            d.PublishDashboardRequest(id=self.board.id), metadata=self.owner
        )

    def link(self, board_id: str = "") -> s.PublicLink:
        return self.stubs["shares"].CreatePublicLink(
            s.CreatePublicLinkRequest(dashboard_id=board_id or self.board.id), metadata=self.owner
        )


@pytest.fixture
def world(dashboards: Any, widgets: Any, queries: Any, shares: Any, auth: Any, facility: str) -> World:
    stubs = {"dashboards": dashboards, "widgets": widgets, "queries": queries, "shares": shares}
    return World(stubs, auth, facility)


def link_md(token: str) -> tuple[tuple[str, str], ...]:
    return (("x-tessera-link", token),)


def test_a_viewer_never_updates_whatever_its_share(world: World, dashboards: Any, widgets: Any, auth: Any) -> None:
    viewer = auth("val", "viewer", world.facility)
    world.share(world.owner, s.SHARE_LEVEL_MANAGE, user="val")
    before = world.board_now()
    rename = d.UpdateDashboardRequest(
        dashboard=d.Dashboard(id=world.board.id, title="x"), update_mask={"paths": ["title"]}
    )
    expect_failure(lambda: dashboards.UpdateDashboard(rename, metadata=viewer), Code.PERMISSION_DENIED)
    move = w.UpdateWidgetRequest(widget=w.Widget(id=world.widget.id, title="x"), update_mask={"paths": ["title"]})
    expect_failure(lambda: widgets.UpdateWidget(move, metadata=viewer), Code.PERMISSION_DENIED)
    expect_failure(
        lambda: dashboards.PublishDashboard(d.PublishDashboardRequest(id=world.board.id), metadata=viewer),
        Code.PERMISSION_DENIED,
    )
    after = world.board_now()
    assert (after.title, after.version, after.etag) == (before.title, before.version, before.etag)


def test_a_non_owner_never_shares(world: World, shares: Any, auth: Any) -> None:
    eddie = auth("eddie", "editor", world.facility)
    stranger = auth("stan", "editor", world.facility)
    world.share(world.owner, s.SHARE_LEVEL_EDIT, user="eddie")
    before = world.shares_now()
    # Cannot see it: NOT_FOUND. Sees it with EDIT: PERMISSION_DENIED, including raising its own share.
    expect_failure(lambda: world.share(stranger, s.SHARE_LEVEL_VIEW, user="stan"), Code.NOT_FOUND)
    expect_failure(lambda: world.share(eddie, s.SHARE_LEVEL_MANAGE, user="eddie"), Code.PERMISSION_DENIED)
    expect_failure(lambda: world.share(eddie, s.SHARE_LEVEL_VIEW, role=s.ROLE_VIEWER), Code.PERMISSION_DENIED)
    assert world.shares_now() == before


def test_a_share_never_reaches_another_facility(world: World, dashboards: Any, auth: Any) -> None:
    far = f"far-{uuid.uuid4().hex[:6]}"
    world.share(world.owner, s.SHARE_LEVEL_MANAGE, user=far)
    world.share(world.owner, s.SHARE_LEVEL_MANAGE, role=s.ROLE_VIEWER)
    for md in (auth(far, "editor", "another-facility"), auth(far, "admin", "another-facility")):
        expect_failure(
            lambda md=md: dashboards.GetDashboard(d.GetDashboardRequest(id=world.board.id), metadata=md),
            Code.NOT_FOUND,
        )
        # Nor can that facility's admin share it onwards.
        expect_failure(lambda md=md: world.share(md, s.SHARE_LEVEL_VIEW, user="x"), Code.NOT_FOUND)
    assert ("x", s.SHARE_LEVEL_VIEW) not in world.shares_now()


def test_editing_someone_elses_share_takes_manage(world: World, shares: Any, auth: Any) -> None:
    eddie = auth("eddie", "editor", world.facility)
    world.share(world.owner, s.SHARE_LEVEL_EDIT, user="eddie")
    world.share(world.owner, s.SHARE_LEVEL_VIEW, user="other")
    before = world.shares_now()
    expect_failure(lambda: world.share(eddie, s.SHARE_LEVEL_MANAGE, user="other"), Code.PERMISSION_DENIED)
    expect_failure(
        lambda: shares.UnshareDashboard(
            s.UnshareDashboardRequest(dashboard_id=world.board.id, user_id="other"), metadata=eddie
        ),
        Code.PERMISSION_DENIED,
    )
    assert world.shares_now() == before
    # With MANAGE it may (and the change says who made it).
    world.share(world.owner, s.SHARE_LEVEL_MANAGE, user="eddie")
    assert world.share(eddie, s.SHARE_LEVEL_EDIT, user="other").granted_by == "eddie"


def test_expired_and_revoked_links_are_refused_at_once(world: World, dashboards: Any, widgets: Any, dsn: str) -> None:
    world.publish()
    expired, revoked = world.link(), world.link()
    for link in (expired, revoked):  # both work, and fill the cache for the widget
        assert dashboards.GetDashboard(d.GetDashboardRequest(id=world.board.id), metadata=link_md(link.token)).id
        widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=world.widget.id), metadata=link_md(link.token))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE public_links SET expire_at = now() - interval '1 second' WHERE id = %s", (uuid.UUID(expired.id),)
        )
    world.stubs["shares"].RevokePublicLink(s.RevokePublicLinkRequest(id=revoked.id), metadata=world.owner)
    for link in (expired, revoked):
        for call in (
            lambda t=link.token: dashboards.GetDashboard(d.GetDashboardRequest(id=world.board.id), metadata=link_md(t)),
            lambda t=link.token: widgets.GetWidgetData(
                w.GetWidgetDataRequest(widget_id=world.widget.id), metadata=link_md(t)
            ),
        ):
            expect_failure(call, Code.UNAUTHENTICATED, reason="LINK_INVALID")


def test_a_link_never_opens_another_dashboard_nor_its_own_draft(
    world: World, dashboards: Any, widgets: Any, shares: Any
) -> None:
    published = world.publish()
    md = link_md(world.link().token)
    # The owner goes on editing after publishing: a new widget and a new title are draft only.
    draft_widget = world.new_widget(world.board.id, y=4)
    rename = d.UpdateDashboardRequest(
        dashboard=d.Dashboard(id=world.board.id, title="draft title"), update_mask={"paths": ["title"]}
    )
    draft = dashboards.UpdateDashboard(rename, metadata=world.owner)
    got = dashboards.GetDashboard(d.GetDashboardRequest(id=world.board.id), metadata=md)
    assert (got.version, got.title) == (published.published_version, published.title)
    listed = widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=world.board.id), metadata=md)
    assert [x.id for x in listed.widgets] == [world.widget.id]
    for call in (
        lambda: widgets.GetWidget(w.GetWidgetRequest(id=draft_widget.id), metadata=md),
        lambda: widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=draft_widget.id), metadata=md),
        lambda: widgets.GetWidgetData(
            w.GetWidgetDataRequest(widget_id=world.widget.id, dashboard_version=draft.version), metadata=md
        ),
        lambda: dashboards.GetDashboardVersion(
            d.GetDashboardVersionRequest(dashboard_id=world.board.id, version=draft.version), metadata=md
        ),
        lambda: widgets.MaterializeDashboard(
            w.MaterializeDashboardRequest(dashboard_id=world.board.id, dashboard_version=draft.version), metadata=md
        ),
    ):
        expect_failure(call, Code.NOT_FOUND)
    assert widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=world.widget.id), metadata=md).frame.row_count == 1

    # Another dashboard of the same facility, published and public: the link does not open it.
    other = world.new_board("other")
    other_widget = world.new_widget(other.id, y=0)
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=other.id, visibility=d.VISIBILITY_PUBLIC), update_mask={"paths": ["visibility"]}
        ),
        metadata=world.owner,
    )
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=other.id), metadata=world.owner)
    for call in (
        lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=other.id), metadata=md),
        lambda: widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=other_widget.id), metadata=md),
        lambda: widgets.BatchGetWidgetData(
            w.BatchGetWidgetDataRequest(
                requests=[
                    w.GetWidgetDataRequest(widget_id=world.widget.id),
                    w.GetWidgetDataRequest(widget_id=other_widget.id),
                ]
            ),
            metadata=md,
        ),
        lambda: shares.ListShares(s.ListSharesRequest(dashboard_id=other.id), metadata=md),
    ):
        expect_failure(call, Code.NOT_FOUND)
    assert [x.id for x in dashboards.ListDashboards(d.ListDashboardsRequest(), metadata=md).dashboards] == [
        world.board.id
    ]


def test_a_link_dies_with_its_dashboard(world: World, dashboards: Any) -> None:
    world.publish()
    token = world.link().token
    dashboards.DeleteDashboard(d.DeleteDashboardRequest(id=world.board.id), metadata=world.owner)
    expect_failure(
        lambda: dashboards.ListDashboards(d.ListDashboardsRequest(), metadata=link_md(token)),
        Code.UNAUTHENTICATED,
        reason="LINK_INVALID",
    )


def test_a_widget_is_never_moved_to_another_dashboard(world: World, widgets: Any, auth: Any) -> None:
    # An editor with EDIT on both dashboards still cannot re-parent a widget (a path around the
    # target's checks and versions).
    target = world.new_board("target")
    move = w.UpdateWidgetRequest(
        widget=w.Widget(id=world.widget.id, dashboard_id=target.id), update_mask={"paths": ["dashboard_id"]}
    )
    expect_failure(lambda: widgets.UpdateWidget(move, metadata=world.owner), Code.INVALID_ARGUMENT, field="update_mask")
    assert (
        widgets.GetWidget(w.GetWidgetRequest(id=world.widget.id), metadata=world.owner).dashboard_id == world.board.id
    )
