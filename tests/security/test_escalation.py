"""Privilege escalation (issue 6, adversarial suite), each case of the issue's list end to end.

Where the integration tests already prove a case in depth, it is proven again here in its
shortest form, so this file is the checklist: a viewer updating, a non-owner sharing, a share to
another facility, editing someone else's share, an expired or revoked public link, a public link
used for another dashboard (or for its own dashboard's draft), a widget moved out of its
dashboard, and exports: another's export taken by a viewer it is shared with or by a public link,
a link exporting another dashboard. Every refusal is followed by proof that nothing changed.

No worker runs here, so exports stay QUEUED: their requester's download answers
FAILED_PRECONDITION (EXPORT_NOT_READY), so anyone else's NOT_FOUND is the access check, not the
state. (Refusing a finished file is proven with a real worker in tests/integration/test_exports.py.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import psycopg
import pytest

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from server.db.migrate import sync_url
from tests.harness.rpc import expect_failure
from tests.security.queued import forget_queued_tasks

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


# --- exports ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def queued(settings: Settings) -> Iterator[set[str]]:
    """The export ids this module created: their tasks are taken off the broker at the end."""
    ids: set[str] = set()
    yield ids
    forget_queued_tasks(settings, ids)


class Exports:
    def __init__(self, stub: Any, queued: set[str], dsn: str) -> None:
        self.stub, self.queued, self.dsn = stub, queued, dsn

    def create(self, md: Any, board_id: str, version: int = 0) -> e.ExportJob:
        job = self.stub.CreateExport(
            e.CreateExportRequest(dashboard_id=board_id, format=e.EXPORT_FORMAT_PDF, dashboard_version=version),
            metadata=md,
        )
        self.queued.add(job.id)
        assert job.state == c.JOB_STATE_QUEUED
        return job

    def listed(self, md: Any, board_id: str = "") -> list[tuple[str, int]]:
        answer = self.stub.ListExports(e.ListExportsRequest(dashboard_id=board_id, page_size=1000), metadata=md)
        return sorted((x.id, x.state) for x in answer.exports)

    def stored(self, facility: str) -> list[tuple[str, str, int]]:
        """Every export row of the facility, read past the application: (id, requester, state)."""
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT id::text, requested_by, state FROM export_jobs WHERE facility_id = %s", (facility,)
            ).fetchall()
        return sorted((i, by, state) for i, by, state in rows)

    def taking(self, md: Any, export_id: str) -> list[Callable[[], Any]]:
        """Every way to reach one export: get, watch, download, cancel."""
        return [
            lambda: self.stub.GetExport(e.GetExportRequest(id=export_id), metadata=md),
            lambda: next(self.stub.WatchExport(e.WatchExportRequest(id=export_id), metadata=md, timeout=10)),
            lambda: list(self.stub.DownloadExport(e.DownloadExportRequest(id=export_id), metadata=md, timeout=10)),
            lambda: self.stub.CancelExport(e.CancelExportRequest(id=export_id), metadata=md),
        ]

    def download_not_ready(self, md: Any, export_id: str) -> None:
        """What the requester gets (the access check passed; nothing was rendered)."""
        expect_failure(
            lambda: list(self.stub.DownloadExport(e.DownloadExportRequest(id=export_id), metadata=md, timeout=10)),
            Code.FAILED_PRECONDITION,
            reason="EXPORT_NOT_READY",
        )


def _as_for(failure: Any, export_id: str, other_id: str) -> tuple[Any, ...]:
    """A refusal as it would read for another id (correlation ids differ by nature)."""
    meta = {k: v.replace(export_id, other_id) for k, v in failure.metadata.items() if k != "correlation_id"}
    return failure.code, failure.reason, failure.message.replace(export_id, other_id), meta, failure.violations


@pytest.fixture
def ex(exports: Any, queued: set[str], dsn: str) -> Exports:
    return Exports(exports, queued, dsn)


def test_a_viewer_it_is_shared_with_never_takes_the_owners_export(world: World, ex: Exports, auth: Any) -> None:
    world.publish()
    world.share(world.owner, s.SHARE_LEVEL_VIEW, user="val")
    viewer = auth("val", "viewer", world.facility)
    mine = ex.create(world.owner, world.board.id)
    own = ex.create(viewer, world.board.id)  # the viewer may export the dashboard: for itself
    before_owner, before_rows = ex.listed(world.owner), ex.stored(world.facility)
    nobody = str(uuid.uuid4())
    for call, unknown in zip(ex.taking(viewer, mine.id), ex.taking(viewer, nobody), strict=True):
        refused = expect_failure(call, Code.NOT_FOUND, reason="EXPORT_NOT_FOUND")
        # Exactly what an export that does not exist answers: nothing tells that this one does.
        absent = expect_failure(unknown, Code.NOT_FOUND, reason="EXPORT_NOT_FOUND")
        assert _as_for(refused, mine.id, nobody) == _as_for(absent, nobody, nobody)
    # Nor the other way round; and neither list shows the other's export.
    for call in ex.taking(world.owner, own.id)[:3]:
        expect_failure(call, Code.NOT_FOUND, reason="EXPORT_NOT_FOUND")
    assert ex.listed(viewer, world.board.id) == ex.listed(viewer) == [(own.id, c.JOB_STATE_QUEUED)]
    # Not an admin of another facility with the same subject either.
    for call in ex.taking(auth("owner", "admin", f"{world.facility}-x"), mine.id):
        expect_failure(call, Code.NOT_FOUND)
    # Harmless: the owner's export is untouched (not cancelled), still theirs alone.
    assert ex.listed(world.owner) == before_owner == [(mine.id, c.JOB_STATE_QUEUED)]
    assert ex.stored(world.facility) == before_rows
    ex.download_not_ready(world.owner, mine.id)


def test_a_link_never_takes_an_export_made_through_another_link_or_by_a_user(
    world: World, ex: Exports, shares: Any
) -> None:
    world.publish()
    first, second = link_md(world.link().token), link_md(world.link().token)
    through_first = ex.create(first, world.board.id)
    by_owner = ex.create(world.owner, world.board.id)
    before_owner, before_rows = ex.listed(world.owner), ex.stored(world.facility)
    for victim in (through_first, by_owner):
        for call in ex.taking(second, victim.id):
            expect_failure(call, Code.NOT_FOUND, reason="EXPORT_NOT_FOUND")
    for call in ex.taking(first, by_owner.id):
        expect_failure(call, Code.NOT_FOUND, reason="EXPORT_NOT_FOUND")
    # Nor can the owner (MANAGE on the dashboard) take the link's export.
    for call in ex.taking(world.owner, through_first.id):
        expect_failure(call, Code.NOT_FOUND, reason="EXPORT_NOT_FOUND")
    assert ex.listed(second) == ex.listed(second, world.board.id) == []
    assert ex.listed(first) == [(through_first.id, c.JOB_STATE_QUEUED)]
    assert ex.listed(world.owner) == before_owner == [(by_owner.id, c.JOB_STATE_QUEUED)]
    assert ex.stored(world.facility) == before_rows
    ex.download_not_ready(first, through_first.id)
    # A revoked link no longer reaches even its own export.
    revoked = world.link()
    through_revoked = ex.create(link_md(revoked.token), world.board.id)
    shares.RevokePublicLink(s.RevokePublicLinkRequest(id=revoked.id), metadata=world.owner)
    for call in ex.taking(link_md(revoked.token), through_revoked.id):
        expect_failure(call, Code.UNAUTHENTICATED, reason="LINK_INVALID")
    assert ex.stored(world.facility) == sorted([*before_rows, (through_revoked.id, through_revoked.requested_by, 1)])


def test_a_link_never_exports_another_dashboard_nor_its_own_draft(world: World, ex: Exports, dashboards: Any) -> None:
    published = world.publish()
    md = link_md(world.link().token)
    # Another dashboard of the facility, published and public (every user of the facility reads it).
    other = world.new_board("other")
    world.new_widget(other.id, y=0)
    dashboards.UpdateDashboard(
        d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=other.id, visibility=d.VISIBILITY_PUBLIC), update_mask={"paths": ["visibility"]}
        ),
        metadata=world.owner,
    )
    other_published = dashboards.PublishDashboard(d.PublishDashboardRequest(id=other.id), metadata=world.owner)
    victim = ex.create(world.owner, other.id)
    draft = world.new_widget(world.board.id, y=4)  # the owner edits on: a draft version after the published one
    draft_version = dashboards.GetDashboard(d.GetDashboardRequest(id=world.board.id), metadata=world.owner).version
    assert draft_version > published.published_version and draft.id
    before_owner, before_rows = ex.listed(world.owner), ex.stored(world.facility)

    def create(*items: tuple[str, int]) -> Callable[[], Any]:
        requests = [
            e.CreateExportRequest(dashboard_id=board_id, format=e.EXPORT_FORMAT_PDF, dashboard_version=version)
            for board_id, version in items
        ]
        if len(requests) == 1:
            return lambda: ex.stub.CreateExport(requests[0], metadata=md)
        return lambda: ex.stub.BatchCreateExports(e.BatchCreateExportsRequest(requests=requests), metadata=md)

    for call in (
        create((other.id, 0)),
        create((other.id, other_published.published_version)),
        create((world.board.id, draft_version)),
        # All or none: the link's own dashboard first, then another's.
        create((world.board.id, 0), (other.id, 0)),
        create((world.board.id, 0), (world.board.id, draft_version)),
        lambda: ex.stub.ListExports(e.ListExportsRequest(dashboard_id=other.id), metadata=md),
    ):
        expect_failure(call, Code.NOT_FOUND)
    for call in ex.taking(md, victim.id):
        expect_failure(call, Code.NOT_FOUND, reason="EXPORT_NOT_FOUND")
    # Nothing was created (the batches' valid items neither), and the victim's export is as it was.
    assert ex.stored(world.facility) == before_rows
    assert ex.listed(md) == []
    assert ex.listed(world.owner) == before_owner == [(victim.id, c.JOB_STATE_QUEUED)]
    # What the link may do, it does: its own dashboard's published version.
    assert ex.create(md, world.board.id).dashboard_version == published.published_version
