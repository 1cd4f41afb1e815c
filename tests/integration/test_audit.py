"""The audit log over a real channel: data reads leave events with row counts and whether PHI
was unmasked, denials leave DENIED events, ListAuditEvents is for admins of the facility only
(filters, pages, newest first), the log cannot be altered through the application's engine, and
buffered events are written on close."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.audit.log import SUCCESS, AuditEvent, AuditLog
from server.db.engine import Database, make_engine
from server.db.schema import audit_log
from server.demo_data import install as install_demo_data
from tests.harness.rpc import expect_failure

Code = grpc.StatusCode
NORTH = "north-general"
GET_DATA = "dashboard.v1.WidgetService/GetWidgetData"


@pytest.fixture(scope="module")
def demo(migrated: str) -> str:
    install_demo_data(migrated)
    return migrated


def events(shares, md, **filters: Any) -> list[s.AuditEvent]:
    found: list[s.AuditEvent] = []
    token = ""
    while True:
        page = shares.ListAuditEvents(s.ListAuditEventsRequest(page_size=50, page_token=token, **filters), metadata=md)
        found += page.events
        token = page.next_page_token
        if not token:
            return found


def phi_widget(queries, dashboards, widgets, md) -> tuple[q.Query, d.Dashboard, w.Widget]:
    query = queries.CreateQuery(
        q.CreateQueryRequest(
            query=q.Query(
                facility_id=NORTH,
                name=f"patients {uuid.uuid4().hex[:6]}",
                sql="SELECT patient_name, unit FROM demo.admissions ORDER BY id LIMIT 3",
                sensitive_columns=[q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_REDACT)],
            )
        ),
        metadata=md,
    )
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=NORTH, title="Audited")), metadata=md
    )
    widget = widgets.CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=board.id,
                title="patients",
                position=w.GridPosition(x=0, y=0, width=4, height=2),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=query.id),
            )
        ),
        metadata=md,
    )
    return query, board, widget


def test_every_phi_read_leaves_an_event(shares, queries, dashboards, widgets, auth, demo):
    subject = f"phi-{uuid.uuid4().hex[:8]}"
    phi = auth(subject, "editor", NORTH, permissions=("phi:read",))
    plain_subject = f"plain-{uuid.uuid4().hex[:8]}"
    plain = auth(plain_subject, "editor", NORTH)
    admin = auth("auditor", "admin", NORTH)
    query, board, widget = phi_widget(queries, dashboards, widgets, phi)
    shares.ShareDashboard(
        s.ShareDashboardRequest(dashboard_id=board.id, user_id=plain_subject, level=s.SHARE_LEVEL_VIEW), metadata=phi
    )

    reads = 3
    for _ in range(reads):
        data = widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=phi, timeout=30)
        assert not data.masked
    batch = widgets.BatchGetWidgetData(
        w.BatchGetWidgetDataRequest(requests=[w.GetWidgetDataRequest(widget_id=widget.id)]), metadata=phi, timeout=30
    )
    assert not batch.data[0].masked
    run = queries.RunQuery(q.RunQueryRequest(id=query.id), metadata=phi, timeout=30)
    assert not run.masked
    masked = widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=plain, timeout=30)
    assert masked.masked

    mine = events(shares, admin, actor=subject)
    data_events = [e for e in mine if e.method.endswith(("GetWidgetData", "BatchGetWidgetData"))]
    assert len(data_events) == reads + 1
    for event in data_events:
        assert event.phi_unmasked and event.row_count == 3 and event.resource_id == widget.id
        assert event.facility_id == NORTH and event.outcome == s.AUDIT_OUTCOME_SUCCESS
        assert event.resource_type == "widget" and event.correlation_id and event.time.seconds > 0
    runs = [e for e in mine if e.method.endswith("RunQuery")]
    assert len(runs) == 1 and runs[0].phi_unmasked and runs[0].row_count == 3 and runs[0].resource_id == query.id
    # Every unmasked read is found by the PHI filter too.
    assert {e.id for e in events(shares, admin, actor=subject, phi_unmasked_only=True)} == {
        e.id for e in data_events + runs
    }
    # The masked read is recorded, without phi_unmasked.
    theirs = [e for e in events(shares, admin, actor=plain_subject) if e.method == GET_DATA]
    assert len(theirs) == 1 and not theirs[0].phi_unmasked and theirs[0].row_count == 3
    # Newest first.
    ids = [e.id for e in mine]
    assert ids == sorted(ids, reverse=True)


def test_denials_are_recorded(shares, dashboards, auth, facility):
    owner = auth("owner", "editor", facility)
    admin = auth("auditor", "admin", facility)
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="x")), metadata=owner
    )
    intruder = f"intruder-{uuid.uuid4().hex[:8]}"
    viewer = auth(intruder, "viewer", facility)
    expect_failure(lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=viewer), Code.NOT_FOUND)
    expect_failure(
        lambda: dashboards.CreateDashboard(d.CreateDashboardRequest(dashboard=d.Dashboard(title="x")), metadata=viewer),
        Code.PERMISSION_DENIED,
    )
    found = events(shares, admin, actor=intruder)
    assert [e.outcome for e in found] == [s.AUDIT_OUTCOME_DENIED, s.AUDIT_OUTCOME_DENIED]
    assert found[1].method == "dashboard.v1.DashboardService/GetDashboard" and found[1].resource_id == board.id
    assert found[0].method == "dashboard.v1.DashboardService/CreateDashboard"
    by_resource = events(shares, admin, resource_id=board.id)
    assert {e.actor for e in by_resource} >= {"owner", intruder}


def test_list_audit_events_is_for_admins_of_the_facility(shares, dashboards, auth, facility):
    owner = auth("owner", "editor", facility)
    dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="x")), metadata=owner
    )
    for md in (owner, auth("v", "viewer", facility)):
        expect_failure(
            lambda md=md: shares.ListAuditEvents(s.ListAuditEventsRequest(), metadata=md),
            Code.PERMISSION_DENIED,
            reason="ROLE_REQUIRED",
        )
    mine = events(shares, auth("a", "admin", facility), facility_id=facility)
    assert mine and all(e.facility_id == facility for e in mine)
    other_admin = auth("b", "admin", "another-facility")
    assert events(shares, other_admin, facility_id=facility) == []
    assert all(e.facility_id == "another-facility" for e in events(shares, other_admin, actor="owner"))
    # Pages are disjoint and in order; time filters bound them.
    admin = auth("a", "admin", facility)
    for _ in range(3):
        dashboards.CreateDashboard(
            d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="y")), metadata=owner
        )
    # (ListAuditEvents is audited too: filter on the owner so the listing itself does not move the pages.)
    everything = events(shares, admin, facility_id=facility, actor="owner")
    assert len(everything) == 5  # four creates and the denied ListAuditEvents
    first = shares.ListAuditEvents(
        s.ListAuditEventsRequest(facility_id=facility, actor="owner", page_size=2), metadata=admin
    )
    assert [e.id for e in first.events] == [e.id for e in everything[:2]] and first.next_page_token
    expect_failure(
        lambda: shares.ListAuditEvents(
            s.ListAuditEventsRequest(actor="someone", page_token=first.next_page_token), metadata=admin
        ),
        Code.INVALID_ARGUMENT,
    )
    newest = everything[0].time
    later = s.ListAuditEventsRequest(facility_id=facility, actor="owner", start_time=newest)
    assert all(
        e.time.ToNanoseconds() >= newest.ToNanoseconds() for e in shares.ListAuditEvents(later, metadata=admin).events
    )
    earlier = s.ListAuditEventsRequest(facility_id=facility, actor="owner", end_time=everything[-1].time)
    assert shares.ListAuditEvents(earlier, metadata=admin).events == []


def test_the_app_cannot_alter_the_log(server, shares, dashboards, auth, facility):
    dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="x")),
        metadata=auth("owner", "editor", facility),
    )
    event_id = events(shares, auth("a", "admin", facility), facility_id=facility)[0].id
    engine = server.running.app.db.engine

    async def attempt(statement: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(statement)

    for statement in (
        update(audit_log).where(audit_log.c.id == event_id).values(actor="someone-else"),
        delete(audit_log).where(audit_log.c.id == event_id),
        text("TRUNCATE audit_log"),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            server.run(attempt(statement))

    async def actor() -> str:
        async with engine.connect() as conn:
            return str((await conn.execute(select(audit_log.c.actor).where(audit_log.c.id == event_id))).scalar_one())

    assert server.run(actor()) == "owner"


def test_buffered_events_are_written_on_close(migrated: str):
    marker = f"closing-{uuid.uuid4().hex[:8]}"

    async def scenario() -> int:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        try:
            log = AuditLog(db, interval=3600, batch_size=10_000)  # never flushes by itself here
            for i in range(250):
                log.record(AuditEvent(actor=marker, method="test/Close", outcome=SUCCESS, resource_id=str(i)))
            assert log.pending == 250
            await log.close()
            assert log.pending == 0
            async with db.read() as conn:
                return int(
                    (
                        await conn.execute(
                            select(func.count()).select_from(audit_log).where(audit_log.c.actor == marker)
                        )
                    ).scalar_one()
                )
        finally:
            await db.dispose()

    assert asyncio.run(scenario()) == 250


def test_background_writer_flushes_without_being_asked(migrated: str):
    marker = f"background-{uuid.uuid4().hex[:8]}"

    async def scenario() -> int:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        log = AuditLog(db, interval=0.1)
        try:
            log.record(AuditEvent(actor=marker, method="test/Background", outcome=SUCCESS))
            for _ in range(50):
                await asyncio.sleep(0.1)
                if log.pending == 0:
                    break
            async with db.read() as conn:
                return int(
                    (
                        await conn.execute(
                            select(func.count()).select_from(audit_log).where(audit_log.c.actor == marker)
                        )
                    ).scalar_one()
                )
        finally:
            await log.close()
            await db.dispose()

    assert asyncio.run(scenario()) == 1
