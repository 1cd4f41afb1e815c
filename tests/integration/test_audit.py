"""The audit log over a real channel: data reads leave events with row counts and whether PHI
was unmasked, denials leave DENIED events, ListAuditEvents is for admins of the facility only
(filters, pages, newest first), the log cannot be altered through the application's engine, and
buffered events are written on close."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

import grpc
import jwt
import psycopg
import psycopg.rows
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.app import build_app
from server.audit.log import SUCCESS, AuditEvent, AuditLog
from server.audit.refusals import RefusalCounter
from server.auth.tokens import mint_token
from server.db.engine import Database, make_engine
from server.db.migrate import sync_url
from server.db.schema import audit_log
from server.devtools.demo_data import install as install_demo_data
from server.grpc_server import start_server
from tests.harness.kit import board_with_queries
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


async def _written(db: Database, actor: str) -> int:
    """How many of `actor`'s events the audit log holds."""
    async with db.read() as conn:
        query = select(func.count()).select_from(audit_log).where(audit_log.c.actor == actor)
        return int((await conn.execute(query)).scalar_one())


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
            return await _written(db, marker)
        finally:
            await db.dispose()

    assert asyncio.run(scenario()) == 250


def test_closing_ends_a_writer_woken_as_its_cancellation_lands(migrated: str):
    """close() holds the writer's lock while it cancels the writer and waits for it to end. A
    writer woken in the same turn of the loop as that cancellation (events arriving as the server
    stops) must still end: on Python 3.11 asyncio.wait_for dropped such a cancellation, the writer
    went on to wait for the lock, and `tessera serve` hung on SIGTERM."""
    marker = f"woken-{uuid.uuid4().hex[:8]}"

    async def scenario() -> int:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        try:
            log = AuditLog(db, interval=3600, batch_size=10_000)
            log.record(AuditEvent(actor=marker, method="test/Woken", outcome=SUCCESS))
            for _ in range(3):
                await asyncio.sleep(0)  # the writer asleep, waiting to be woken
            assert log._wake is not None and log._task is not None and not log._task.done()
            log._wake.set()
            await asyncio.sleep(0)  # its wait has returned; the writer itself has not resumed
            closing = asyncio.create_task(log.close())
            # Not wait_for(close()): close() swallows a cancellation of its own while it waits for
            # the writer, so a deadlock would end at the timeout and pass for a close.
            await asyncio.wait({closing}, timeout=10)
            assert closing.done(), "close() and the audit writer wait for each other"
            await closing
            assert log.pending == 0
            return await _written(db, marker)
        finally:
            await db.dispose()

    assert asyncio.run(scenario()) == 1


def test_closing_lets_a_write_in_progress_finish_instead_of_cancelling_it(migrated: str):
    """A COPY cancelled half-way can leave its connection busy for whoever gets it next: closing
    waits for the writer's flush (here held up by a lock on the table) and then writes the rest."""
    marker = f"in-progress-{uuid.uuid4().hex[:8]}"
    outcomes: list[str] = []

    class Watched(AuditLog):
        writing: asyncio.Event

        async def _settle(self, size: int) -> None:
            self.writing.set()
            try:
                await super()._settle(size)
            except asyncio.CancelledError:
                outcomes.append("cancelled")
                raise
            outcomes.append(f"wrote {size}")

    async def scenario() -> int:
        db = Database(make_engine(migrated, pool_size=2, max_overflow=0))
        locker = await psycopg.AsyncConnection.connect(sync_url(migrated).replace("+psycopg", "", 1))
        try:
            await locker.execute(f"LOCK TABLE {audit_log.name} IN EXCLUSIVE MODE")  # COPY waits for it
            log = Watched(db, interval=0.01)
            log.writing = asyncio.Event()
            for i in range(20):
                log.record(AuditEvent(actor=marker, method="test/InProgress", outcome=SUCCESS, resource_id=str(i)))
            await asyncio.wait_for(log.writing.wait(), timeout=10)
            await asyncio.sleep(0.2)  # the writer's COPY is waiting for the lock
            closing = asyncio.create_task(log.close())
            await asyncio.sleep(0.3)
            assert not closing.done(), "close() must wait for the write in progress"
            await locker.rollback()  # the lock goes: the write goes through
            await asyncio.wait_for(closing, timeout=10)
            assert log.pending == 0
            return await _written(db, marker)
        finally:
            await locker.close()
            await db.dispose()

    assert asyncio.run(scenario()) == 20
    assert outcomes == ["wrote 20"]


def test_a_flush_writes_what_was_buffered_in_one_batch_not_what_keeps_arriving(migrated: str):
    """Events recorded while a flush writes wait for the next one: a flush that drained until the
    buffer was empty chased a busy server's events a few at a time, a transaction and a COPY each
    (0.3 ms of server CPU per event)."""
    marker = f"arriving-{uuid.uuid4().hex[:8]}"

    writes: list[int] = []

    class Arrivals(AuditLog):
        """Ten more events come in while each batch is written."""

        async def _settle(self, size: int) -> None:
            writes.append(size)
            for i in range(10):
                self.record(AuditEvent(actor=marker, method="test/Arriving", outcome=SUCCESS, resource_id=f"late-{i}"))
            await super()._settle(size)

    async def scenario() -> int:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        try:
            log = Arrivals(db, interval=3600)
            for i in range(50):
                log.record(AuditEvent(actor=marker, method="test/Arriving", outcome=SUCCESS, resource_id=str(i)))
            await asyncio.wait_for(log.flush(), timeout=10)
            return log.pending
        finally:
            await db.dispose()

    pending = asyncio.run(scenario())
    assert writes == [50]
    assert pending == 10


def test_the_writer_is_woken_by_a_batch_of_new_events_not_by_those_being_written(migrated: str):
    """The events a flush is writing stay buffered until written, but they are not the next batch:
    counted as if they were, every event recorded during a write woke the writer again at once,
    and a busy server wrote back to back, a transaction and a COPY for every few events."""
    marker = f"waking-{uuid.uuid4().hex[:8]}"

    class Arrivals(AuditLog):
        """`arriving` events come in while the first batch is written."""

        arriving = 0
        woken: bool | None = None

        async def _settle(self, size: int) -> None:
            for i in range(self.arriving):
                self.record(AuditEvent(actor=marker, method="test/Waking", outcome=SUCCESS, resource_id=f"late-{i}"))
            self.arriving = 0
            if self.woken is None:
                self.woken = self._wake is not None and self._wake.is_set()
            await super()._settle(size)

    def woken_by(arriving: int) -> bool | None:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        log = Arrivals(db, interval=3600, batch_size=100)
        log.arriving = arriving
        for i in range(150):  # outside a loop: buffered, and no writer started or woken yet
            log.record(AuditEvent(actor=marker, method="test/Waking", outcome=SUCCESS, resource_id=str(i)))

        async def scenario() -> bool | None:
            try:
                await asyncio.wait_for(log.flush(), timeout=10)
                await log.close()
                assert log.pending == 0
                return log.woken
            finally:
                await db.dispose()

        return asyncio.run(scenario())

    assert woken_by(10) is False
    assert woken_by(100) is True


def test_events_keep_the_time_they_happened_not_the_flush_time(migrated: str):
    marker = f"times-{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[Any]:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        try:
            log = AuditLog(db, interval=3600)  # one flush at the end writes all three together
            for i in range(3):
                log.record(AuditEvent(actor=marker, method="test/Times", outcome=SUCCESS, resource_id=str(i)))
                await asyncio.sleep(0.05)
            await log.close()
            async with db.read() as conn:
                rows = await conn.execute(
                    select(audit_log.c.resource_id, audit_log.c.at)
                    .where(audit_log.c.actor == marker)
                    .order_by(audit_log.c.at)
                )
                return list(rows.all())
        finally:
            await db.dispose()

    rows = asyncio.run(scenario())
    assert [row.resource_id for row in rows] == ["0", "1", "2"]
    gaps = [(later.at - earlier.at).total_seconds() for earlier, later in itertools.pairwise(rows)]
    assert all(gap >= 0.04 for gap in gaps), gaps


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
            return await _written(db, marker)
        finally:
            await log.close()
            await db.dispose()

    assert asyncio.run(scenario()) == 1


# --- phi_unmasked is exact -------------------------------------------------------------------


def _details(server, correlation_id: str) -> list[tuple[str, bool, dict[str, Any]]]:
    """(resource_id, phi_unmasked, details) of the events of one call, straight from the table."""

    async def read() -> list[tuple[str, bool, dict[str, Any]]]:
        await server.running.app.audit.flush()
        async with server.running.app.db.read() as conn:
            rows = await conn.execute(
                select(audit_log.c.resource_id, audit_log.c.phi_unmasked, audit_log.c.details)
                .where(audit_log.c.correlation_id == correlation_id)
                .order_by(audit_log.c.id)
            )
            return [(r.resource_id, r.phi_unmasked, r.details) for r in rows]

    return server.run(read())


def _cid() -> tuple[str, tuple[tuple[str, str]]]:
    cid = f"audit-{uuid.uuid4().hex}"
    return cid, (("x-correlation-id", cid),)


def test_phi_unmasked_is_true_exactly_when_a_phi_column_left_unmasked(
    server, shares, queries, dashboards, widgets, auth, demo
):
    phi = auth(f"phi-{uuid.uuid4().hex[:6]}", "editor", NORTH, permissions=("phi:read",))
    plain = auth(f"plain-{uuid.uuid4().hex[:6]}", "admin", NORTH)  # sees every dashboard; no phi:read
    no_phi_sql = "SELECT unit, count(*) AS n FROM demo.admissions GROUP BY unit ORDER BY unit"
    with_phi_sql = "SELECT patient_name, unit FROM demo.admissions ORDER BY id LIMIT 3"
    _, made = board_with_queries(
        queries,
        dashboards,
        widgets,
        phi,
        NORTH,
        (no_phi_sql, ()),  # no PHI declared
        (with_phi_sql, ("patient_name",)),  # PHI selected
    )
    (_, none_w), (phi_q, phi_w) = made

    def read(widget: w.Widget, md: Any) -> tuple[w.WidgetData, list[tuple[str, bool, dict[str, Any]]]]:
        cid, header = _cid()
        data = widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=md + header, timeout=30)
        return data, _details(server, cid)

    # A plain reader first: it warms the entry a phi:read caller of a PHI-free query shares.
    data, found = read(none_w, plain)
    assert not data.masked and [(r, p) for r, p, _ in found] == [(none_w.id, False)]
    # phi:read on a query with no PHI (a cache hit now, unmasked): not phi_unmasked.
    data, found = read(none_w, phi)
    assert data.source == w.DATA_SOURCE_MEMORY and not data.masked
    assert [(r, p, x["phi_columns"]) for r, p, x in found] == [(none_w.id, False, [])]
    # PHI selected: a miss and then a hit for the phi:read caller are both phi_unmasked.
    for source in (w.DATA_SOURCE_COMPUTED, w.DATA_SOURCE_MEMORY):
        data, found = read(phi_w, phi)
        assert data.source == source and not data.masked
        assert [(r, p, x["phi_columns"]) for r, p, x in found] == [(phi_w.id, True, ["patient_name"])]
    # The same widget for a plain reader: masked, not phi_unmasked.
    data, found = read(phi_w, plain)
    assert data.masked and [(p, x["phi_columns"]) for _, p, x in found] == [(False, [])]

    # A batch: one event per widget, each exact.
    cid, header = _cid()
    widgets.BatchGetWidgetData(
        w.BatchGetWidgetDataRequest(requests=[w.GetWidgetDataRequest(widget_id=x.id) for x in (none_w, phi_w)]),
        metadata=phi + header,
        timeout=30,
    )
    assert [(r, p) for r, p, _ in _details(server, cid)] == [(none_w.id, False), (phi_w.id, True)]

    # RunQuery likewise.
    for query, expected in ((made[0][0], False), (phi_q, True)):
        cid, header = _cid()
        queries.RunQuery(q.RunQueryRequest(id=query.id), metadata=phi + header, timeout=30)
        assert [(r, p) for r, p, _ in _details(server, cid)] == [(query.id, expected)]


def test_a_caller_of_several_facilities_is_recorded_where_it_read(
    server, shares, queries, dashboards, widgets, auth, demo
):
    subject = f"multi-{uuid.uuid4().hex[:6]}"
    multi = auth(subject, "admin", NORTH, "south-clinic", permissions=("phi:read",))
    board, [(query, widget)] = board_with_queries(
        queries,
        dashboards,
        widgets,
        multi,
        NORTH,
        ("SELECT patient_name FROM demo.admissions LIMIT 2", ("patient_name",)),
    )
    widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=multi, timeout=30)
    queries.RunQuery(q.RunQueryRequest(id=query.id), metadata=multi, timeout=30)
    dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=multi)
    expect_failure(
        lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=str(uuid.uuid4())), metadata=multi), Code.NOT_FOUND
    )
    mine = events(shares, auth("auditor", "admin", NORTH), actor=subject)
    by_method = {e.method.rsplit("/", 1)[-1]: e for e in mine}
    for method in ("GetWidgetData", "RunQuery", "GetDashboard", "CreateQuery", "CreateWidget"):
        assert by_method[method].facility_id == NORTH, method
    assert by_method["GetWidgetData"].phi_unmasked and by_method["RunQuery"].phi_unmasked


# --- refused calls, and nothing lost on shutdown ---------------------------------------------


def _dsn(database_url: str) -> str:
    return sync_url(database_url).replace("postgresql+psycopg://", "postgresql://", 1)


def _rows_by_correlation(dsn: str, correlation_ids: set[str]) -> list[dict[str, Any]]:
    """Events whose correlation id, or (summaries) last_correlation_id, is one of ours."""
    with psycopg.connect(dsn, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT * FROM audit_log WHERE correlation_id = ANY(%s) OR details->>'last_correlation_id' = ANY(%s)"
            " ORDER BY id",
            (list(correlation_ids), list(correlation_ids)),
        ).fetchall()


def test_refused_calls_are_audited_aggregated_and_nothing_is_lost_on_shutdown(settings, migrated, facility):
    """A server of its own whose audit log never flushes by itself: refused calls are recorded
    (first of a source at once, the rest summed), and every buffered event (including those of
    an rpc still running when shutdown starts) is in the table after a graceful stop."""
    dsn = _dsn(migrated)
    expired = jwt.encode(
        {"sub": "x", "iss": "tessera", "aud": "tessera", "exp": int(time.time()) - 600, "roles": ["admin"]},
        settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )
    good = mint_token(settings, subject="owner", roles=["editor"], facilities=[facility])
    flood = 150
    ids: dict[str, set[str]] = {"expired": set(), "missing": set(), "link": set(), "basic": set(), "ok": set()}

    def md(kind: str, *pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        cid = f"{kind}-{uuid.uuid4().hex}"
        ids[kind].add(cid)
        return (("x-correlation-id", cid), *pairs)

    async def scenario() -> tuple[int, int]:
        local = settings.model_copy(update={"port": 0, "metrics_port": -1})
        app = build_app(local)
        app.audit = AuditLog(
            app.db, interval=3600, batch_size=10**6, refusals=RefusalCounter(window_seconds=3600, max_sources=50)
        )
        running = await start_server(local, app)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                boards = dashboard_pb2_grpc.DashboardServiceStub(channel)
                health = health_pb2_grpc.HealthStub(channel)

                async def refused(metadata: Any) -> None:
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await boards.ListDashboards(d.ListDashboardsRequest(), metadata=metadata)
                    assert caught.value.code() == Code.UNAUTHENTICATED

                await asyncio.gather(
                    *(refused(md("expired", ("authorization", f"Bearer {expired}"))) for _ in range(flood))
                )
                await refused(md("missing"))
                await refused(md("link", ("x-tessera-link", "not-a-link-token")))
                await refused(md("basic", ("authorization", f"Basic {good}")))
                bearer = ("authorization", f"Bearer {good}")
                board = await boards.CreateDashboard(
                    d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="t")),
                    metadata=md("ok", bearer),
                )
                for _ in range(20):
                    await boards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=md("ok", bearer))
                # Nothing written yet: the writer never flushes by itself here.
                buffered = app.audit.pending
                assert not _rows_by_correlation(dsn, set().union(*ids.values()))

                # An rpc in flight when shutdown starts: held by a row lock the test owns.
                with psycopg.connect(dsn) as blocker:
                    blocker.execute("SELECT 1 FROM dashboards WHERE id = %s FOR UPDATE", (uuid.UUID(board.id),))
                    update = asyncio.ensure_future(
                        boards.UpdateDashboard(
                            d.UpdateDashboardRequest(
                                dashboard=d.Dashboard(id=board.id, title="late"), update_mask={"paths": ["title"]}
                            ),
                            metadata=md("ok", bearer),
                        )
                    )
                    await _until(lambda: _waiting_on_a_lock(dsn))
                    stopping = asyncio.ensure_future(running.stop(grace=30))
                    await _until(lambda: _not_serving(health))
                    blocker.rollback()  # releases the lock: the rpc finishes inside the grace period
                    assert (await update).title == "late"
                    await stopping
            return buffered, app.audit.pending
        except BaseException:
            await running.stop(grace=0)
            raise

    buffered, left = asyncio.run(scenario())
    assert buffered == 1 + 1 + 1 + 1 + 1 + 20  # a refusal per source (the rest counted), a create, 20 reads
    assert left == 0
    rows = _rows_by_correlation(dsn, set().union(*ids.values()))
    ok = [r for r in rows if r["correlation_id"] in ids["ok"]]
    assert len(ok) == 22 and {r["outcome"] for r in ok} == {s.AUDIT_OUTCOME_SUCCESS}
    assert [r["method"].rsplit("/", 1)[-1] for r in ok].count("UpdateDashboard") == 1  # the in-flight one

    refused_rows = [r for r in rows if r not in ok]
    for row in refused_rows:
        assert row["actor"] == "" and row["facility_id"] == "" and row["outcome"] == s.AUDIT_OUTCOME_DENIED
        assert row["method"] == "dashboard.v1.DashboardService/ListDashboards"
        assert row["details"]["unauthenticated"] is True and row["details"]["peer"] == "ipv4:127.0.0.1"
        assert expired not in str(row) and good not in str(row)  # never the credential
    by_reason = {}
    for row in refused_rows:
        by_reason.setdefault((row["details"]["credential"], row["details"]["reason"]), []).append(row)
    assert set(by_reason) == {
        ("bearer", "TOKEN_EXPIRED"),
        ("none", "MISSING_CREDENTIALS"),
        ("link", "LINK_INVALID"),
        ("other", "TOKEN_INVALID"),
    }
    first, summary = by_reason[("bearer", "TOKEN_EXPIRED")]
    assert first["details"]["count"] == 1 and first["correlation_id"] in ids["expired"]
    assert summary["details"]["summary"] is True and summary["details"]["count"] == flood - 1
    assert summary["details"]["last_correlation_id"] in ids["expired"]
    for kind, reason in (("none", "MISSING_CREDENTIALS"), ("link", "LINK_INVALID"), ("other", "TOKEN_INVALID")):
        assert [r["details"]["count"] for r in by_reason[(kind, reason)]] == [1]


async def _until(condition: Any, attempts: int = 1000) -> None:
    """Waits (polling) until `condition()` holds; fails rather than hang."""
    for _ in range(attempts):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def _waiting_on_a_lock(dsn: str) -> bool:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        found = await (
            await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).fetchone()
        return bool(found and found[0])


async def _not_serving(health: Any) -> bool:
    """Shutdown has begun: health says NOT_SERVING (or the server no longer answers)."""
    try:
        status = (await health.Check(health_pb2.HealthCheckRequest())).status
    except grpc.aio.AioRpcError:
        return True
    return status != health_pb2.HealthCheckResponse.SERVING
