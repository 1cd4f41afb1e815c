"""Tier 0 and the kept widget definitions across server processes (issue 13): with `tessera serve
--processes 2`, each process answers hot reads (and list pages) from its own memory, and a revoked share, a new
query version, a materialized view refresh and a forced refresh in one process are each seen by
every process within one second.

Each process gets a channel of its own (an HTTP/2 connection stays with the process that accepted
it; which one did is read from the per-process rpc counts), so every check reads from both."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, share_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from server.db.migrate import sync_url
from server.devtools.demo_data import GRANTS, POLICY
from server.devtools.demo_data import install as install_demo_data
from server.queries.frame import frame_to_rows
from tests.conftest import TokenFactory
from tests.integration.test_serve_processes import Served, two_processes

MEMORY = w.DATA_SOURCE_MEMORY
SEEN_WITHIN_SECONDS = 1.0
REFUSED = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)


@pytest.fixture
def served(settings: Settings, migrated: str, tmp_path: Path) -> Iterator[Served]:
    with two_processes(settings, tmp_path, http=False) as handle:
        yield handle


def _channel_per_process(served: Served, md: Any) -> list[grpc.Channel]:
    """One channel connected to each process (a channel with a subchannel pool of its own makes
    a new connection, which the kernel hands to either listener)."""
    pinned: dict[int, grpc.Channel] = {}
    for _ in range(100):
        channel = grpc.insecure_channel(
            f"127.0.0.1:{served.grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        before = served.per_process()
        dashboard_pb2_grpc.DashboardServiceStub(channel).ListDashboards(
            d.ListDashboardsRequest(page_size=1), metadata=md, timeout=30
        )
        after = served.per_process()
        grown = [pid for pid, n in after.items() if n > before.get(pid, 0)]
        if len(grown) == 1 and grown[0] not in pinned:
            pinned[grown[0]] = channel
            if len(pinned) == 2:
                return list(pinned.values())
        else:
            channel.close()
    raise AssertionError("could not get a connection to each of the two processes")


def _sql(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT set_config('tessera.facility_id', '*', false)")
        for statement in statements:
            conn.execute(statement)


def _seconds_until(check: Callable[[], bool], since: float, limit: float = 10.0) -> float:
    """How long after `since` (time.monotonic()) `check()` first holds (polled), failing past `limit`."""
    while not check():
        if time.monotonic() - since > limit:
            raise AssertionError(f"not seen within {limit} s")
        time.sleep(0.01)
    return time.monotonic() - since


def _refused(stub: widget_pb2_grpc.WidgetServiceStub, widget_id: str, md: Any) -> bool:
    try:
        stub.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget_id), metadata=md, timeout=30)
    except grpc.RpcError as error:
        assert error.code() in REFUSED, error
        return True
    return False


@pytest.mark.timeout(300)  # two server processes start slowly on a loaded machine
def test_a_revoked_share_a_new_version_and_a_view_refresh_reach_every_process_within_a_second(
    served: Served, migrated: str, auth: TokenFactory
) -> None:
    install_demo_data(migrated)
    dsn = sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)
    facility = f"tier0-{uuid.uuid4().hex[:8]}"
    _sql(
        dsn,
        "CREATE TABLE IF NOT EXISTS demo.tier0_visits (facility_id text NOT NULL, n integer NOT NULL)",
        POLICY.format(table="tier0_visits"),
        GRANTS,
        f"INSERT INTO demo.tier0_visits VALUES ('{facility}', 1)",
    )
    owner = auth("olive", "editor", facility)
    viewer = auth("victor", "viewer", facility)
    channels = _channel_per_process(served, owner)
    first = channels[0]
    queries = query_pb2_grpc.QueryServiceStub(first)
    dashboards = dashboard_pb2_grpc.DashboardServiceStub(first)
    widgets = widget_pb2_grpc.WidgetServiceStub(first)
    readers = [widget_pb2_grpc.WidgetServiceStub(ch) for ch in channels]

    query = queries.CreateQuery(
        q.CreateQueryRequest(query=q.Query(name="tier0", sql="SELECT 'one' AS v")), metadata=owner
    )
    board = dashboards.CreateDashboard(d.CreateDashboardRequest(dashboard=d.Dashboard(title="tier0")), metadata=owner)
    widget = widgets.CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=board.id,
                title="tier0",
                position=w.GridPosition(x=0, y=0, width=6, height=4),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=query.id),
            )
        ),
        metadata=owner,
    )
    share_pb2_grpc.ShareServiceStub(first).ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, user_id="victor", level=s.SHARE_LEVEL_VIEW),
        metadata=owner,
    )
    request = w.GetWidgetDataRequest(widget_id=widget.id)

    def warm(md: Any, widget_id: str = widget.id) -> None:
        for reader in readers:  # each process keeps the definition and the response in memory
            for _ in range(3):
                data = reader.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget_id), metadata=md, timeout=30)
            assert data.source == MEMORY

    # --- a revoked share ----------------------------------------------------------------------
    listers = [dashboard_pb2_grpc.DashboardServiceStub(ch) for ch in channels]

    def listed(lister: dashboard_pb2_grpc.DashboardServiceStub) -> list[str]:
        reply = lister.ListDashboards(d.ListDashboardsRequest(facility_id=facility), metadata=viewer, timeout=30)
        return [b.id for b in reply.dashboards]

    warm(viewer)
    for lister in listers:  # each process keeps the viewer's list page
        for _ in range(3):
            assert listed(lister) == [board.id]
    share_pb2_grpc.ShareServiceStub(first).UnshareDashboard(
        s.UnshareDashboardRequest(dashboard_id=board.id, user_id="victor"), metadata=owner
    )
    since = time.monotonic()
    for reader in readers:
        assert _seconds_until(lambda r=reader: _refused(r, widget.id, viewer), since) <= SEEN_WITHIN_SECONDS
    for lister in listers:
        assert _seconds_until(lambda x=lister: listed(x) == [], since) <= SEEN_WITHIN_SECONDS
    for reader, lister in zip(readers, listers, strict=True):  # and it stays refused
        assert _refused(reader, widget.id, viewer)
        assert listed(lister) == []

    # --- a new query version ------------------------------------------------------------------
    warm(owner)
    updated = queries.UpdateQuery(
        q.UpdateQueryRequest(query=q.Query(id=query.id, sql="SELECT 'two' AS v"), update_mask={"paths": ["sql"]}),
        metadata=owner,
    )
    assert updated.version == 2
    since = time.monotonic()

    def sees_version_two(reader: widget_pb2_grpc.WidgetServiceStub) -> bool:
        data = reader.GetWidgetData(request, metadata=owner, timeout=30)
        return data.query_version == 2 and frame_to_rows(data.frame) == [{"v": "two"}]

    for reader in readers:
        assert _seconds_until(lambda r=reader: sees_version_two(r), since) <= SEEN_WITHIN_SECONDS

    # --- a forced refresh in one process -------------------------------------------------------
    # Its new entry has the same key: the computing process announces the key, and the other
    # drops its copy and reads the new one from tier 1.
    warm(owner)
    forced = readers[0].GetWidgetData(
        w.GetWidgetDataRequest(widget_id=widget.id, force_refresh=True), metadata=owner, timeout=30
    )
    since = time.monotonic()
    assert (
        _seconds_until(
            lambda: readers[1].GetWidgetData(request, metadata=owner, timeout=30).compute_time == forced.compute_time,
            since,
        )
        <= SEEN_WITHIN_SECONDS
    )

    # --- a materialized view refresh ----------------------------------------------------------
    view = queries.CreateQuery(
        q.CreateQueryRequest(
            query=q.Query(
                name="tier0 view",
                sql="SELECT facility_id, sum(n) AS n FROM demo.tier0_visits GROUP BY facility_id",
                kind=q.QUERY_KIND_MATERIALIZED_VIEW,
                view_key_columns=["facility_id"],
            )
        ),
        metadata=owner,
    )
    on_view = widgets.CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=board.id,
                title="tier0 view",
                position=w.GridPosition(x=6, y=0, width=6, height=4),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=view.id),
            )
        ),
        metadata=owner,
    )
    warm(owner, on_view.id)
    view_request = w.GetWidgetDataRequest(widget_id=on_view.id)
    _sql(dsn, f"INSERT INTO demo.tier0_visits VALUES ('{facility}', 41)")
    for reader in readers:  # the view still holds what it held: the data served has not changed
        assert frame_to_rows(reader.GetWidgetData(view_request, metadata=owner, timeout=30).frame)[0]["n"] == 1
    queries.RefreshMaterializedView(q.RefreshMaterializedViewRequest(id=view.id), metadata=owner)
    since = time.monotonic()

    def sees_refreshed(reader: widget_pb2_grpc.WidgetServiceStub) -> bool:
        data = reader.GetWidgetData(view_request, metadata=owner, timeout=30)
        return bool(frame_to_rows(data.frame)[0]["n"] == 42)

    for reader in readers:
        assert _seconds_until(lambda r=reader: sees_refreshed(r), since) <= SEEN_WITHIN_SECONDS
    for channel in channels:
        channel.close()
