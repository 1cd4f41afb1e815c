"""Reads that may be slightly stale go to a real streaming replica (pg_basebackup -R of a primary
this module starts), and a caller always reads its own writes: on the server that wrote, and on
another one when the call carries the write's `x-tessera-lsn`. With the replica's replay paused
(`pg_wal_replay_pause()`), the replica is really behind, so where each read ran shows in what it
answers as well as in `tessera_db_reads`. When the replica stops, reads fall back to the primary
with no error, and return to it once it is back."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from server.db.replica import LSN_METADATA
from server.queries.frame import frame_to_rows
from tests.harness.kit import Kit
from tests.harness.replica import ReplicatedServers, replicated_servers
from tests.harness.server import ServerHandle

Code = grpc.StatusCode


class Deployment(ReplicatedServers):
    def stubs(self, i: int) -> tuple[Any, Any, Any]:
        ch = self.channels[i]
        return (
            query_pb2_grpc.QueryServiceStub(ch),
            dashboard_pb2_grpc.DashboardServiceStub(ch),
            widget_pb2_grpc.WidgetServiceStub(ch),
        )


@pytest.fixture(scope="module")
def deployment(settings: Settings) -> Iterator[Deployment]:
    with replicated_servers(settings) as found:
        yield Deployment(found.pg, found.servers, found.channels)


def lsn_of(call: Any) -> str:
    return dict(call.trailing_metadata() or ())[LSN_METADATA]


def test_a_caller_reads_its_own_writes_while_the_replica_lags(deployment: Deployment, auth: Any) -> None:
    facility = f"fac-{uuid.uuid4().hex[:8]}"
    alice = auth("alice", "editor", facility)
    bob = auth("bob", "admin", facility)
    queries, dashboards, widgets = deployment.stubs(0)
    _, other_dashboards, other_widgets = deployment.stubs(1)
    kit = Kit(queries, dashboards, widgets, alice, facility)
    seen = kit.board()  # replicated before the pause: every reader sees it
    deployment.pg.wait_replayed()
    deployment.replay(paused=True)
    try:
        replica_before = deployment.reads(0, "replica")
        assert dashboards.GetDashboard(d.GetDashboardRequest(id=seen.id), metadata=bob).id == seen.id
        assert deployment.reads(0, "replica") == replica_before + 1

        created, call = dashboards.CreateDashboard.with_call(
            d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="fresh")), metadata=alice
        )
        lsn = lsn_of(call)
        widget = kit.widget(created, kit.query("SELECT 7 AS n"))
        # The writer, on the server it wrote through: gets, lists and widget data all see it.
        primary_before = deployment.reads(0, "primary")
        assert dashboards.GetDashboard(d.GetDashboardRequest(id=created.id), metadata=alice).id == created.id
        listed = dashboards.ListDashboards(d.ListDashboardsRequest(page_size=50), metadata=alice).dashboards
        assert {b.id for b in listed} == {seen.id, created.id}
        assert widgets.GetWidget(w.GetWidgetRequest(id=widget.id), metadata=alice).id == widget.id
        assert kit.data(widget.id).frame.row_count == 1
        assert deployment.reads(0, "primary") >= primary_before + 4

        # Someone else on the other server reads the replica, which has not replayed it yet:
        # slightly stale, as allowed.
        with pytest.raises(grpc.RpcError) as missing:
            other_dashboards.GetDashboard(d.GetDashboardRequest(id=created.id), metadata=bob)
        assert missing.value.code() == Code.NOT_FOUND
        # On the writer's server the dashboard alice read (on the primary, so current) is kept,
        # and decided for bob on his read: found, and nothing read.
        ran = deployment.reads(0, "replica"), deployment.reads(0, "primary")
        assert dashboards.GetDashboard(d.GetDashboardRequest(id=created.id), metadata=bob).id == created.id
        assert (deployment.reads(0, "replica"), deployment.reads(0, "primary")) == ran

        # The writer on another server process: held to its write by the LSN it carries.
        with_lsn = (*alice, (LSN_METADATA, lsn))
        assert other_dashboards.GetDashboard(d.GetDashboardRequest(id=created.id), metadata=with_lsn).id == created.id
        widget_lsn = lsn_of(kit.widgets.CreateWidget.with_call(
            w.CreateWidgetRequest(widget=w.Widget(
                dashboard_id=created.id, title="w2", position=w.GridPosition(x=4, y=0, width=4, height=2),
                table=w.TableConfig(),
            )),
            metadata=alice,
        )[1])  # fmt: skip
        listed = other_widgets.ListWidgets(
            w.ListWidgetsRequest(dashboard_id=created.id), metadata=(*alice, (LSN_METADATA, widget_lsn))
        ).widgets
        assert len(listed) == 2
        # A malformed LSN is ignored (the read may be stale, never an error).
        assert (
            other_dashboards.GetDashboard(
                d.GetDashboardRequest(id=seen.id), metadata=(*alice, (LSN_METADATA, "not/an/lsn" * 50))
            ).id
            == seen.id
        )
    finally:
        deployment.replay(paused=False)
    deployment.pg.wait_replayed()
    replica_before = deployment.reads(1, "replica")
    assert other_dashboards.GetDashboard(d.GetDashboardRequest(id=created.id), metadata=bob).id == created.id
    assert deployment.reads(1, "replica") == replica_before + 1


def test_reads_fall_back_to_the_primary_while_the_replica_is_down(deployment: Deployment, auth: Any) -> None:
    facility = f"fac-{uuid.uuid4().hex[:8]}"
    carol = auth("carol", "editor", facility)
    queries, dashboards, widgets = deployment.stubs(1)
    kit = Kit(queries, dashboards, widgets, carol, facility)
    board = kit.board()
    widget = kit.widget(board, kit.query("SELECT 1 AS n"))
    deployment.pg.wait_replayed()
    reader = auth("dave", "admin", facility)  # no writes of his own: every read of his may go to the replica
    deployment.pg.replica.stop()
    try:
        primary_before = deployment.reads(1, "primary")
        for _ in range(5):
            assert dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=reader).id == board.id
            listed = dashboards.ListDashboards(d.ListDashboardsRequest(facility_id=facility), metadata=reader)
            assert [b.id for b in listed.dashboards] == [board.id]
            assert len(widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=board.id), metadata=reader).widgets) == 1
            assert kit.data(widget.id, md=reader).frame.row_count == 1
        # The first get and list read the primary (their statements run on the driver, so the
        # replica's failure comes as psycopg's own error) and, read there, are kept: the others
        # read nothing. Widget lists read the primary each time; widget data loads its
        # definition there once and then serves it from memory (both followed by the primary's
        # notifications).
        assert deployment.reads(1, "primary") >= primary_before + 8
    finally:
        deployment.pg.replica.start()
    # Back: once its retry pause is over, reads return to it (a bounded wait on a condition).
    replica_before = deployment.reads(1, "replica")
    deadline = time.monotonic() + 30
    while deployment.reads(1, "replica") == replica_before:
        assert time.monotonic() < deadline, "reads never returned to the restarted replica"
        assert len(widgets.ListWidgets(w.ListWidgetsRequest(dashboard_id=board.id), metadata=reader).widgets) == 1
        time.sleep(0.1)


def test_a_kept_definition_is_never_loaded_from_a_lagging_replica(deployment: Deployment, auth: Any) -> None:
    """Kept definitions follow the primary's notifications: a copy loaded from a replica that has
    not replayed the change yet would be kept stale after the notification that should drop it.
    So they load from the primary, and a reader with no writes of his own sees a new query
    version at once on another server however far the replica lags."""
    facility = f"fac-{uuid.uuid4().hex[:8]}"
    fay = auth("fay", "editor", facility)
    gus = auth("gus", "admin", facility)  # writes nothing: routing alone would send him to the replica
    queries, dashboards, widgets = deployment.stubs(0)
    _, _, other_widgets = deployment.stubs(1)
    kit = Kit(queries, dashboards, widgets, fay, facility)
    query = kit.query("SELECT 1 AS n")
    widget = kit.widget(kit.board(), query)
    deployment.pg.wait_replayed()
    reader = Kit(queries, dashboards, other_widgets, gus, facility)
    assert frame_to_rows(reader.data(widget.id).frame) == [{"n": 1}]  # kept on server 1 now
    deployment.replay(paused=True)
    try:
        queries.UpdateQuery(
            q.UpdateQueryRequest(query=q.Query(id=query.id, sql="SELECT 2 AS n"), update_mask={"paths": ["sql"]}),
            metadata=fay,
        )
        deadline = time.monotonic() + 5
        while frame_to_rows(reader.data(widget.id).frame) != [{"n": 2}]:
            assert time.monotonic() < deadline, "server 1 kept the old query version"
            time.sleep(0.05)
    finally:
        deployment.replay(paused=False)
    deployment.pg.wait_replayed()
    assert frame_to_rows(reader.data(widget.id).frame) == [{"n": 2}]


def test_kept_answers_are_read_on_a_current_replica_and_never_kept_from_a_lagging_one(
    deployment: Deployment, auth: Any
) -> None:
    """Kept dashboard answers (server/dashboards/kept.py) with a replica: a list page or a
    dashboard asked again reads nothing, its first read having run on the replica, which had
    replayed every change the server had heard. While the replica lags behind a change heard,
    reads go where routing sends them (the replica: stale, as allowed) and nothing is kept from
    them, so the change shows as soon as the replica has replayed it, and is kept from then on."""
    facility = f"fac-{uuid.uuid4().hex[:8]}"
    hal = auth("hal", "editor", facility)
    ivy = auth("ivy", "admin", facility)  # writes nothing: routing sends her to the replica
    queries, dashboards, widgets = deployment.stubs(0)
    _, other_dashboards, _ = deployment.stubs(1)
    kit = Kit(queries, dashboards, widgets, hal, facility)
    board = kit.board()
    deployment.pg.wait_replayed()

    def listed() -> list[str]:
        request = d.ListDashboardsRequest(facility_id=facility)
        return [b.id for b in other_dashboards.ListDashboards(request, metadata=ivy).dashboards]

    def got() -> str:
        return str(other_dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=ivy).title)

    def reads() -> tuple[float, float]:
        return deployment.reads(1, "replica"), deployment.reads(1, "primary")

    before = reads()
    assert listed() == [board.id] and got() == board.title
    first = reads()
    assert first == (before[0] + 2, before[1])  # both on the replica
    for _ in range(3):
        assert listed() == [board.id] and got() == board.title
    assert reads() == first  # kept: nothing read

    deployment.replay(paused=True)
    try:
        newer = dashboards.CreateDashboard(  # through the other server
            d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="newer")), metadata=hal
        )
        deadline = time.monotonic() + 5
        while True:  # until server 1 has heard it: its kept page goes, the dashboard stays
            ran = reads()
            shown = listed()
            if reads() != ran:
                break
            assert time.monotonic() < deadline, "the change was not heard"
            time.sleep(0.02)
        assert reads()[0] == ran[0] + 1 and shown == [board.id]  # the lagging replica's answer
        for _ in range(2):  # not kept: each list reads the replica again
            ran = reads()
            assert listed() == [board.id] and reads() == (ran[0] + 1, ran[1])
        ran = reads()
        assert got() == board.title and reads() == ran  # another dashboard's change: still kept
    finally:
        deployment.replay(paused=False)
    deployment.pg.wait_replayed()
    ran = reads()
    assert listed() == [newer.id, board.id] and reads() == (ran[0] + 1, ran[1])  # current: kept
    assert listed() == [newer.id, board.id] and reads() == (ran[0] + 1, ran[1])


def _rest(server: ServerHandle, method: str, path: str, md: Any, body: Any = None, lsn: str = "") -> Any:
    """(status, headers, JSON body) of one REST call to `server`'s HTTP face."""
    headers = {**dict(md), "content-type": "application/json"}
    if lsn:
        headers["X-Tessera-Lsn"] = lsn
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.running.http_port}{path}", data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.headers, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def test_the_http_face_returns_the_lsn_of_a_write_and_honours_it_on_a_read(deployment: Deployment, auth: Any) -> None:
    facility = f"fac-{uuid.uuid4().hex[:8]}"
    erin = auth("erin", "editor", facility)
    writer, other = deployment.servers
    deployment.pg.wait_replayed()
    deployment.replay(paused=True)
    try:
        status, headers, created = _rest(
            writer, "POST", "/api/v1/dashboard/dashboards", erin, {"facilityId": facility, "title": "over REST"}
        )
        assert status == 200, created
        lsn = headers["X-Tessera-Lsn"]
        assert lsn and "/" in lsn  # the primary's position, as PostgreSQL spells it
        path = f"/api/v1/dashboard/dashboards/{created['id']}"
        # Another server, the replica behind: without the LSN the read may be stale (not found)...
        status, headers, _ = _rest(other, "GET", path, erin)
        assert status == 404
        # ...with it, the read waits for nothing and goes where the write is: found.
        status, headers, read = _rest(other, "GET", path, erin, lsn=lsn)
        assert (status, read["id"]) == (200, created["id"])
        assert "X-Tessera-Lsn" not in headers  # a read writes nothing, so announces no position
    finally:
        deployment.replay(paused=False)
