"""Hostile input from a signed-in caller (issue 11): text PostgreSQL cannot store, timestamps and
durations protobuf cannot represent, and bytes that are not the message are refused with
INVALID_ARGUMENT naming the field, before any handler; and the audit log can be neither poisoned
nor stalled by what a caller sends: a refused row is split out and dead-lettered, the rest are
written, the writer backs off while the database is away, and nothing is lost on shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy import func, select

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server import pagination
from server.audit.dead_letter import DeadLetterFile
from server.audit.log import SUCCESS, AuditEvent, AuditLog
from server.audit.replay import replay_dead_letters
from server.db.engine import Database, make_engine
from server.db.schema import audit_log
from server.metrics import Metrics
from tests.harness.rpc import expect_failure, failure_of

Code = grpc.StatusCode
NUL = "a\x00b"


def _cid() -> tuple[str, tuple[tuple[str, str]]]:
    cid = f"hostile-{uuid.uuid4().hex}"
    return cid, (("x-correlation-id", cid),)


def _events(server: Any, correlation_ids: list[str]) -> dict[str, list[Any]]:
    async def read() -> dict[str, list[Any]]:
        # all_refusals: the writer's own flush cannot buffer a window's summaries behind this one.
        await server.running.app.audit.flush(all_refusals=True)
        async with server.running.app.db.read() as conn:
            rows = await conn.execute(select(audit_log).where(audit_log.c.correlation_id.in_(correlation_ids)))
            found: dict[str, list[Any]] = {}
            for row in rows:
                found.setdefault(row.correlation_id, []).append(row)
            return found

    return server.run(read())


# --- defect 1: one NUL byte must not stop the audit log ------------------------------------


def test_a_refused_nul_request_is_audited_and_every_later_event_is_stored(server, dashboards, auth, facility):
    viewer = auth("viewer-nul", "viewer", facility)
    admin = auth("admin-nul", "admin", facility)
    poison, md = _cid()
    failure = expect_failure(
        lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=NUL), metadata=viewer + md),
        Code.INVALID_ARGUMENT,
        field="id",
    )
    assert "NUL" in failure.violations[0][1]
    later = []
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="after")), metadata=admin
    )
    for _ in range(5):
        cid, md = _cid()
        later.append(cid)
        dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=admin + md)
    found = _events(server, [poison, *later])
    assert set(found) == {poison, *later}, "every call after the poisoned one is in the audit log"
    (refused,) = found[poison]
    assert refused.resource_id == "a\\u0000b", "the refused value is recorded, escaped, not lost"
    assert refused.actor == "viewer-nul"
    audit = server.running.app.audit
    assert audit.pending == 0 and audit.health().ok


# --- defect 2: NUL in any text field names the field ---------------------------------------

NUL_CASES = [
    (
        "dashboards",
        "CreateDashboard",
        lambda f, _: d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=f, title=NUL)),
        "dashboard.title",
    ),
    (
        "dashboards",
        "CreateDashboard",
        lambda f, _: d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=f, title="t", description=NUL)),
        "dashboard.description",
    ),
    (
        "dashboards",
        "UpdateDashboard",
        lambda f, ids: d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=ids["board"], title=NUL), update_mask={"paths": ["title"]}
        ),
        "dashboard.title",
    ),
    (
        "widgets",
        "UpdateWidget",
        lambda f, ids: w.UpdateWidgetRequest(
            widget=w.Widget(id=ids["widget"], title=NUL), update_mask={"paths": ["title"]}
        ),
        "widget.title",
    ),
    (
        "queries",
        "CreateQuery",
        lambda f, _: q.CreateQueryRequest(query=q.Query(facility_id=f, name=NUL, sql="SELECT 1")),
        "query.name",
    ),
    (
        "queries",
        "CreateQuery",
        lambda f, _: q.CreateQueryRequest(
            query=q.Query(
                facility_id=f,
                name="n",
                sql="SELECT :p AS v",
                parameters=[q.ParameterSpec(name="p", type=q.PARAMETER_TYPE_STRING, pattern=NUL)],
            )
        ),
        "query.parameters[0].pattern",
    ),
    ("dashboards", "ListDashboards", lambda f, _: d.ListDashboardsRequest(tags=["ok", NUL]), "tags[1]"),
    (
        "widgets",
        "GetWidgetData",
        lambda f, ids: w.GetWidgetDataRequest(
            widget_id=ids["widget"], parameter_values={NUL: c.ParameterValue(string_value="x")}
        ),
        'parameter_values["a\\u0000b"]',
    ),
    (
        "widgets",
        "GetWidgetData",
        lambda f, ids: w.GetWidgetDataRequest(
            widget_id=ids["widget"], parameter_values={"p": c.ParameterValue(string_value=NUL)}
        ),
        'parameter_values["p"].string_value',
    ),
    (
        "dashboards",
        "CreateDashboard",
        lambda f, _: d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=f, title="t", metadata={"k": NUL})),
        'dashboard.metadata.fields["k"].string_value',
    ),
]


@pytest.fixture(scope="module")
def existing(dashboards, widgets, auth) -> dict[str, str]:
    facility = f"fac-{uuid.uuid4().hex[:10]}"
    md = auth("owner", "admin", facility)
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="b")), metadata=md
    )
    widget = widgets.CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=board.id,
                title="w",
                position=w.GridPosition(x=0, y=0, width=4, height=2),
                kpi=w.KpiConfig(value_column="v"),
            )
        ),
        metadata=md,
    )
    return {"facility": facility, "board": board.id, "widget": widget.id, "md": md}  # type: ignore[dict-item]


@pytest.mark.parametrize(("stub", "method", "build", "field"), NUL_CASES, ids=[f"{c[1]}:{c[3]}" for c in NUL_CASES])
def test_nul_in_any_text_field_is_refused_naming_it(request, existing, stub, method, build, field):
    service = request.getfixturevalue(stub)
    message = build(existing["facility"], existing)
    failure = expect_failure(
        lambda: getattr(service, method)(message, metadata=existing["md"]), Code.INVALID_ARGUMENT, field=field
    )
    assert "NUL" in dict(failure.violations)[field]


# --- defect 3: timestamps and durations protobuf cannot represent ---------------------------

BAD_TIMES = [
    ("seconds 2^40", timestamp_pb2.Timestamp(seconds=2**40)),
    ("year 10000", timestamp_pb2.Timestamp(seconds=253_402_300_800)),
    ("before year 1", timestamp_pb2.Timestamp(seconds=-62_135_596_801)),
    ("nanos -1", timestamp_pb2.Timestamp(seconds=1, nanos=-1)),
    ("nanos 1e9", timestamp_pb2.Timestamp(seconds=1, nanos=1_000_000_000)),
]


@pytest.mark.parametrize(("label", "stamp"), BAD_TIMES, ids=[b[0] for b in BAD_TIMES])
@pytest.mark.parametrize("which", ["start_time", "end_time"])
def test_list_audit_events_refuses_unrepresentable_times(shares, auth, facility, label, stamp, which):
    admin = auth("auditor", "admin", facility)
    request = s.ListAuditEventsRequest()
    getattr(request, which).CopyFrom(stamp)
    expect_failure(lambda: shares.ListAuditEvents(request, metadata=admin), Code.INVALID_ARGUMENT, field=which)


def test_list_audit_events_answers_an_empty_request(shares, auth, facility):
    shares.ListAuditEvents(s.ListAuditEventsRequest(), metadata=auth("auditor", "admin", facility))


def test_parameter_timestamps_are_checked_everywhere(dashboards, widgets, existing):
    md = existing["md"]
    bad = c.ParameterValue(timestamp_value=timestamp_pb2.Timestamp(seconds=2**40))
    expect_failure(
        lambda: dashboards.CreateDashboard(
            d.CreateDashboardRequest(
                dashboard=d.Dashboard(
                    facility_id=existing["facility"],
                    title="t",
                    filters=[d.DashboardFilter(name="since", default_value=bad)],
                )
            ),
            metadata=md,
        ),
        Code.INVALID_ARGUMENT,
        field="dashboard.filters[0].default_value.timestamp_value",
    )
    expect_failure(
        lambda: widgets.MaterializeDashboard(
            w.MaterializeDashboardRequest(dashboard_id=existing["board"], filter_values={"since": bad}), metadata=md
        ),
        Code.INVALID_ARGUMENT,
        field='filter_values["since"].timestamp_value',
    )


def test_durations_past_their_range_are_refused(widgets, existing):
    widget = w.Widget(id=existing["widget"])
    widget.refresh_interval.seconds = 315_576_000_001
    expect_failure(
        lambda: widgets.UpdateWidget(
            w.UpdateWidgetRequest(widget=widget, update_mask={"paths": ["refresh_interval"]}), metadata=existing["md"]
        ),
        Code.INVALID_ARGUMENT,
        field="widget.refresh_interval",
    )


# --- defect 4: bytes that are not the message ------------------------------------------------


def test_malformed_bytes_are_invalid_argument_without_a_traceback(server, channel, auth, facility, caplog):
    md = auth("someone", "viewer", facility)
    metrics: Metrics = server.running.app.metrics
    before = metrics.malformed_requests.labels(
        method="/dashboard.v1.DashboardService/GetDashboard", transport="grpc"
    )._value.get()
    call = channel.unary_unary("/dashboard.v1.DashboardService/GetDashboard")
    with caplog.at_level(logging.INFO):
        for payload in (b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xc0\x80"):  # junk, short, invalid UTF-8
            with pytest.raises(grpc.RpcError) as caught:
                call(payload, metadata=md, timeout=5)
            failure = failure_of(caught.value)
            assert failure.code == Code.INVALID_ARGUMENT
            assert failure.reason == "MALFORMED_REQUEST"
    after = metrics.malformed_requests.labels(
        method="/dashboard.v1.DashboardService/GetDashboard", transport="grpc"
    )._value.get()
    assert after - before == 3
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged for bad bytes"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_malformed_bytes_of_a_streaming_rpc_too(channel, auth, facility):
    call = channel.unary_stream("/dashboard.v1.ExportService/WatchExport")
    with pytest.raises(grpc.RpcError) as caught:
        list(call(b"\xff\x01", metadata=auth("someone", "viewer", facility), timeout=5))
    assert failure_of(caught.value).reason == "MALFORMED_REQUEST"


def test_malformed_bytes_without_a_token_are_unauthenticated(channel):
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/dashboard.v1.DashboardService/GetDashboard")(b"\xff", timeout=5)
    assert caught.value.code() == Code.UNAUTHENTICATED  # type: ignore[attr-defined]


# --- the writer: split, dead letter, backoff, shutdown, replay --------------------------------


def _count(db: Database, actor: str) -> Any:
    async def count() -> int:
        async with db.read() as conn:
            return int(
                (
                    await conn.execute(select(func.count()).select_from(audit_log).where(audit_log.c.actor == actor))
                ).scalar_one()
            )

    return count()


def test_a_row_the_database_refuses_is_split_out_and_dead_lettered(migrated: str, tmp_path: Path):
    actor = f"split-{uuid.uuid4().hex[:8]}"
    dead = DeadLetterFile(tmp_path / "dead.jsonl")
    metrics = Metrics()

    async def scenario() -> tuple[int, Any]:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        try:
            log = AuditLog(db, interval=3600, batch_size=1000, dead_letter=dead, metrics=metrics)
            for i in range(20):
                # bigint holds 2^63 - 1 at most: the database refuses this one row, and only it.
                version = 2**70 if i == 13 else i
                log.record(
                    AuditEvent(
                        actor=actor, method="test/Split", outcome=SUCCESS, resource_id=str(i), resource_version=version
                    )
                )
            await log.flush()
            return await _count(db, actor), log.health()
        finally:
            await db.dispose()

    stored, health = asyncio.run(scenario())
    assert stored == 19
    lines = [json.loads(line) for line in dead.path.read_text().splitlines()]
    assert [line["event"]["resource_id"] for line in lines] == ["13"]
    assert "refused" in lines[0]["error"]
    assert metrics.audit_dead_letters._value.get() == 1
    assert metrics.audit_write_failures.labels(kind="rejected")._value.get() >= 1
    assert health.writing and health.dead_letters and not health.ok


def test_the_database_away_events_wait_then_go_to_the_dead_letter_file_on_close_and_replay_back(
    migrated: str, tmp_path: Path
):
    actor = f"away-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "dead.jsonl"
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1

    async def away() -> Any:
        db = Database(make_engine(unreachable, pool_size=1, max_overflow=0))
        log = AuditLog(db, interval=0.05, max_backoff=0.2, dead_letter=DeadLetterFile(path), metrics=Metrics())
        try:
            for i in range(7):
                log.record(AuditEvent(actor=actor, method="test/Away", outcome=SUCCESS, resource_id=str(i)))
            await asyncio.sleep(0.6)  # the writer tries, fails, backs off, tries again
            health = log.health()
            await log.close()  # the database never came back: everything to the dead-letter file
            return health
        finally:
            await db.dispose()

    health = asyncio.run(away())
    assert not health.writing and health.pending == 7
    assert len(path.read_text().splitlines()) == 7

    async def replay() -> Any:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        try:
            result = await replay_dead_letters(db, path)
            return result, await _count(db, actor)
        finally:
            await db.dispose()

    result, stored = asyncio.run(replay())
    assert (result.read, result.written, stored) == (7, 7, 7)
    assert not DeadLetterFile(path).holds_events()


def test_with_the_database_away_events_arriving_do_not_cut_the_writers_backoff_short(tmp_path: Path):
    """A full batch wakes the writer, but not while its writes are failing: each event arriving
    then woke it for another attempt at once (a connection refused in a millisecond), so under
    traffic the writer retried as fast as events came in instead of backing off."""
    db = Database(make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", pool_size=1, max_overflow=0))
    metrics = Metrics()

    async def scenario() -> None:
        log = AuditLog(
            db,
            interval=0.05,
            batch_size=10,
            max_backoff=0.4,
            dead_letter=DeadLetterFile(tmp_path / "d.jsonl"),
            metrics=metrics,
        )
        for i in range(200):  # an event every 5 ms for a second
            log.record(AuditEvent(actor="busy", method="test/Backoff", outcome=SUCCESS, resource_id=str(i)))
            await asyncio.sleep(0.005)
        await log.close()
        await db.dispose()

    asyncio.run(scenario())
    attempts = metrics.audit_write_failures.labels(kind="unavailable")._value.get()
    # Backing off from 0.05 s, doubling up to 0.4 s: a handful of attempts in that second (the last at close).
    assert 2 <= attempts <= 8


def test_a_full_buffer_sets_new_events_aside_instead_of_dropping_them(tmp_path: Path):
    path = tmp_path / "dead.jsonl"
    db = Database(make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", pool_size=1, max_overflow=0))
    log = AuditLog(db, interval=3600, max_buffer=5, dead_letter=DeadLetterFile(path))
    for i in range(8):
        log.record(AuditEvent(actor="full", method="test/Full", outcome=SUCCESS, resource_id=str(i)))
    assert log.pending == 5
    kept = [json.loads(line)["event"]["resource_id"] for line in path.read_text().splitlines()]
    assert kept == ["5", "6", "7"]
    asyncio.run(db.dispose())


def test_audit_writes_failing_are_logged_once_not_per_attempt(tmp_path: Path, caplog):
    db = Database(make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", pool_size=1, max_overflow=0))

    async def scenario() -> None:
        log = AuditLog(db, interval=0.02, max_backoff=0.05, dead_letter=DeadLetterFile(tmp_path / "d.jsonl"))
        log.record(AuditEvent(actor="x", method="test/Log", outcome=SUCCESS))
        await asyncio.sleep(0.5)
        await log.close()
        await db.dispose()

    with caplog.at_level(logging.WARNING, logger="tessera.audit"):
        asyncio.run(scenario())
    failing = [r for r in caplog.records if "audit writes failing" in r.getMessage()]
    assert len(failing) == 1
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("order_by", ["title", ""])
def test_a_forged_page_token_holding_a_nul_is_refused(dashboards, auth, facility, order_by):
    # Page tokens are base64 JSON a caller can forge: a NUL inside the key or id must be refused
    # like any other malformed token, never reach PostgreSQL (which refuses NUL in text).
    md = auth("forger", "editor", facility)
    filters = pagination.fingerprint([], "", None, "", "", order_by)
    for key, ident in (("a\x00b", str(uuid.uuid4())), ("2026-01-01T00:00:00+00:00", "x\x00")):
        token = pagination.encode(pagination.Cursor(key, ident), filters)
        with pytest.raises(grpc.RpcError) as caught:
            dashboards.ListDashboards(d.ListDashboardsRequest(page_token=token, order_by=order_by), metadata=md)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
