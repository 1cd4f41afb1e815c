"""Materialization jobs over real channels, a real Celery worker (subprocess, prefork), real
PostgreSQL and Redis: MaterializeDashboard -> SUCCEEDED -> widget data served from memory; the
watch stream (snapshot first, strictly increasing revisions, heartbeats, ends at the terminal
state); resuming with since_revision (no gaps, no duplicates); a second server instance serving
the watch; access through the dashboard; request ids; a trimmed stream and a dead Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import redis
import redis.asyncio as aioredis
from google.protobuf import duration_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from dashboard.v1 import widget_pb2_grpc
from server.config import Settings
from server.materialization.store import MaterializationStore, stream_key
from tests.harness.kit import Kit as BaseKit
from tests.harness.rpc import expect_failure
from tests.harness.server import ServerHandle, start_in_thread
from workers.testing import WorkerProcess

Code = grpc.StatusCode
SUCCEEDED, FAILED, QUEUED = c.JOB_STATE_SUCCEEDED, c.JOB_STATE_FAILED, c.JOB_STATE_QUEUED
TERMINAL = {c.JOB_STATE_SUCCEEDED, c.JOB_STATE_FAILED, c.JOB_STATE_CANCELLED}
HEARTBEAT = 0.3
# About 1-2 s on a small machine: long enough to see heartbeats and to kill a worker mid-query.
SLOW_SQL = "SELECT count(*) AS n FROM generate_series(1, {n}) a CROSS JOIN generate_series(1, 2000) b"


# --- shared with test_workers.py -------------------------------------------------------------


def broker_url_for(redis_url: str) -> str:
    """The broker of a test module: the run's Redis; isolation comes from the key prefix that
    `jobs_settings` gives each module (see Settings.broker_key_prefix)."""
    return redis_url


def jobs_settings(settings: Settings, broker_url: str, **extra: Any) -> Settings:
    """The settings of a module with jobs: its own broker key prefix, so parallel runs and other
    modules (even a killed worker's re-delivered tasks) never share queues."""
    own = {
        "broker_url": broker_url,
        "broker_key_prefix": f"{settings.redis_prefix}broker-{uuid.uuid4().hex[:8]}:",
        "job_heartbeat_seconds": HEARTBEAT,
    }
    # Built anew (not model_copy): effective_broker_url is a cached property.
    return Settings(**(settings.model_dump() | own | extra))


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BROKER_URL": settings.effective_broker_url,
        "TESSERA_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "TESSERA_REDIS_PREFIX": settings.redis_prefix,
        "TESSERA_EXPORT_STORAGE_URL": settings.export_storage_url,
        "TESSERA_LOG_LEVEL": "WARNING",
        **extra,
    }


class Kit(BaseKit):
    def slow_query(self, n: int) -> q.Query:
        timeout = q.QueryOptions(timeout=duration_pb2.Duration(seconds=60))
        return self.query(SLOW_SQL.format(n=n), options=timeout)


def watch(stub: Any, md: Any, job_id: str, since: int = 0, timeout: float = 60) -> Iterator[Any]:
    return stub.WatchMaterializationJob(
        w.WatchMaterializationJobRequest(id=job_id, since_revision=since), metadata=md, timeout=timeout
    )


def collect(stream: Iterator[Any]) -> tuple[list[w.MaterializationJob], list[c.Heartbeat]]:
    jobs: list[w.MaterializationJob] = []
    beats: list[c.Heartbeat] = []
    for event in stream:
        if event.HasField("job"):
            jobs.append(event.job)
        else:
            beats.append(event.heartbeat)
    return jobs, beats


def wait_terminal(stub: Any, md: Any, job_id: str) -> w.MaterializationJob:
    jobs, _ = collect(watch(stub, md, job_id))
    assert jobs and jobs[-1].state in TERMINAL
    return jobs[-1]


async def _insert_job(app: Any, kit: Kit, dashboard_id: str, widget_ids: list[str]) -> w.MaterializationJob:
    """A QUEUED job no worker will touch, straight into the table (revision 1)."""
    async with app.db.transaction() as conn:
        return await MaterializationStore.insert(
            conn,
            kind="materialize",
            dashboard_id=uuid.UUID(dashboard_id),
            facility_id=kit.facility,
            requested_by="alice",
            params={},
            widget_ids=widget_ids,
        )


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def job_settings(settings: Settings, migrated: str, request: pytest.FixtureRequest) -> Settings:
    """On the run's Redis; with `job_settings` parametrized "cluster", the job streams and the
    cache live on the session's Redis Cluster while Celery keeps the run's plain Redis as its
    broker (kombu's Redis transport does not speak Cluster)."""
    if getattr(request, "param", "redis") == "cluster":
        cluster_url = request.getfixturevalue("redis_cluster").url
        return jobs_settings(settings, broker_url_for(settings.redis_url), redis_url=cluster_url)
    return jobs_settings(settings, broker_url_for(settings.redis_url))


# The tests marked with this run on one Redis and on a 3-master Redis Cluster.
ON_EACH_REDIS = pytest.mark.parametrize("job_settings", ["redis", "cluster"], indirect=True)


@pytest.fixture(scope="module")
def job_servers(job_settings: Settings) -> Iterator[tuple[ServerHandle, ServerHandle]]:
    first = start_in_thread(job_settings)
    second = start_in_thread(job_settings)
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def worker(job_settings: Settings) -> Iterator[WorkerProcess]:
    process = WorkerProcess(worker_env(job_settings)).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def stubs(job_servers: tuple[ServerHandle, ServerHandle]) -> Iterator[tuple[Any, ...]]:
    from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc

    first, second = job_servers
    with grpc.insecure_channel(first.address) as one, grpc.insecure_channel(second.address) as two:
        yield (
            query_pb2_grpc.QueryServiceStub(one),
            dashboard_pb2_grpc.DashboardServiceStub(one),
            widget_pb2_grpc.WidgetServiceStub(one),
            widget_pb2_grpc.WidgetServiceStub(two),
        )


@pytest.fixture
def kit(stubs: tuple[Any, ...], auth: Any, facility: str) -> Kit:
    queries, dashboards, widgets, _ = stubs
    return Kit(queries, dashboards, widgets, auth("alice", "editor", facility), facility)


@pytest.fixture
def other_server(stubs: tuple[Any, ...]) -> Any:
    return stubs[3]


# --- tests ---------------------------------------------------------------------------------


def test_materialize_fills_the_cache_for_both_masking_levels(kit: Kit, worker: WorkerProcess, auth: Any) -> None:
    plain = kit.query("SELECT 1 AS n UNION ALL SELECT 2")
    phi = kit.query(
        "SELECT 'Ada Lovelace' AS patient_name, 3 AS n",
        sensitive_columns=[q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_REDACT)],
    )
    board = kit.board()
    first, second = kit.widget(board, plain), kit.widget(board, phi)
    kit.widget(board, None)  # no query: not part of the job
    job = kit.materialize(board)
    assert job.state == QUEUED and job.revision == 1 and job.dashboard_id == board.id
    assert [e.widget_id for e in job.widgets] == [first.id, second.id]
    assert job.progress.total_steps == 2

    done = wait_terminal(kit.widgets, kit.md, job.id)
    assert done.state == SUCCEEDED, done
    assert done.progress.completed_steps == 2 and done.progress.percent == 100
    assert [e.row_count for e in done.widgets] == [2, 1]
    assert done.HasField("end_time")
    assert kit.widgets.GetMaterializationJob(w.GetMaterializationJobRequest(id=job.id), metadata=kit.md) == done

    viewer = kit.md  # the owner, without phi:read
    reader = auth("alice", "editor", kit.facility, permissions=("phi:read",))
    for widget in (first, second):
        for md in (viewer, reader):
            data = kit.widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=md)
            assert data.source == w.DATA_SOURCE_MEMORY, (widget.id, md)
    masked = kit.widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=second.id), metadata=viewer)
    assert masked.masked


def test_watch_streams_snapshot_progress_heartbeats_and_ends(
    kit: Kit, worker: WorkerProcess, other_server: Any
) -> None:
    board = kit.board()
    kit.widget(board, kit.slow_query(1500))
    kit.widget(board, kit.query("SELECT 1 AS n"))
    job = kit.materialize(board)
    # Served by the other server instance: everything goes through PostgreSQL and Redis.
    jobs, beats = collect(watch(other_server, kit.md, job.id))
    revisions = [j.revision for j in jobs]
    assert revisions[0] >= 1 and revisions == sorted(set(revisions)), revisions
    assert revisions == list(range(revisions[0], revisions[-1] + 1)), "a gap in a live stream"
    assert jobs[-1].state == SUCCEEDED
    # Heartbeats (if the slow widget outlasted the interval) carry a revision already sent.
    assert all(b.revision in revisions for b in beats)
    messages = [j.progress.message for j in jobs]
    assert any("widget 1 of 2" in m for m in messages) and any("widget 2 of 2" in m for m in messages)
    percents = [j.progress.percent for j in jobs]
    assert percents == sorted(percents) and percents[-1] == 100


def test_idle_watch_sends_heartbeats_then_ends_at_terminal(
    kit: Kit, job_settings: Settings, job_servers: tuple[ServerHandle, ServerHandle], other_server: Any
) -> None:
    """A job no worker touches (inserted directly): snapshot, heartbeats at the interval carrying
    the latest revision, then the change made by another process, and the end."""
    from server.materialization.runner import _finish

    server = job_servers[0]
    app = server.running.app
    board = kit.board()

    async def create() -> str:
        return (await _insert_job(app, kit, board.id, [])).id

    job_id = server.run(create())
    events = []
    for event in watch(other_server, kit.md, job_id, timeout=20):
        events.append(event)
        if sum(1 for e in events if e.HasField("heartbeat")) == 2:
            server.run(MaterializationStore(app.db, app.redis, job_settings).change(job_id, _finish))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["job", "heartbeat", "heartbeat", "job"], kinds
    assert [e.heartbeat.revision for e in events[1:3]] == [1, 1]
    assert events[-1].job.revision == 2 and events[-1].job.state == SUCCEEDED


@ON_EACH_REDIS
def test_resume_mid_way_has_no_gaps_and_no_duplicates(kit: Kit, worker: WorkerProcess, other_server: Any) -> None:
    board = kit.board()
    kit.widget(board, kit.slow_query(800))
    for i in range(3):
        kit.widget(board, kit.query(f"SELECT {i} AS n"))
    job = kit.materialize(board)
    seen: list[int] = []
    stream = watch(kit.widgets, kit.md, job.id)
    for event in stream:
        if event.HasField("job"):
            seen.append(event.job.revision)
            if event.job.revision >= 3:
                break
    stream.cancel()  # the client goes away mid-way ...
    # ... and resumes on another server from what it has.
    jobs, _ = collect(watch(other_server, kit.md, job.id, since=seen[-1]))
    resumed = [j.revision for j in jobs]
    assert resumed[0] == seen[-1] + 1, (seen, resumed)
    assert resumed == list(range(resumed[0], resumed[-1] + 1))
    assert jobs[-1].state == SUCCEEDED
    # After the end, every resume point gives exactly the missing revisions, from either server.
    final = jobs[-1].revision
    for since in (1, final // 2, final - 1):
        again, _ = collect(watch(kit.widgets, kit.md, job.id, since=since))
        assert [j.revision for j in again] == list(range(since + 1, final + 1))
    # The client that already has the final revision gets nothing and the stream ends.
    assert collect(watch(other_server, kit.md, job.id, since=final)) == ([], [])


def test_trimmed_stream_and_dead_redis_fall_back_to_the_row(
    kit: Kit, worker: WorkerProcess, job_settings: Settings, job_servers: tuple[ServerHandle, ServerHandle]
) -> None:
    board = kit.board()
    kit.widget(board, kit.query("SELECT 1 AS n"))
    job = kit.materialize(board)
    final = wait_terminal(kit.widgets, kit.md, job.id)
    client = redis.Redis.from_url(job_settings.redis_url)
    client.delete(stream_key(job_settings.redis_prefix, job.id))
    client.close()
    # Nothing left in the stream: the row's snapshot, once.
    jobs, _ = collect(watch(kit.widgets, kit.md, job.id, since=1))
    assert [j.revision for j in jobs] == [final.revision] and jobs[0] == final

    # A store whose Redis is gone: the watch still works, from the row (polling).
    server = job_servers[0]
    app = server.running.app

    async def dead_redis_watch() -> list[Any]:
        dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
        store = MaterializationStore(app.db, dead, job_settings)
        try:
            return [e async for e in store.watch(job.id, 0)]
        finally:
            await dead.aclose()

    events = server.run(dead_redis_watch())
    assert [e.job.revision for e in events] == [final.revision]


def test_live_watch_survives_dead_redis(
    kit: Kit, job_settings: Settings, job_servers: tuple[ServerHandle, ...]
) -> None:
    """Progress made while the watcher's Redis is unreachable reaches it by polling the row."""
    server = job_servers[0]
    app = server.running.app
    board = kit.board()
    kit.widget(board, kit.query("SELECT 1 AS n"))

    async def scenario() -> list[Any]:
        import asyncio

        from server.materialization.runner import _finish, _widget_step

        live = MaterializationStore(app.db, app.redis, job_settings)
        job = await _insert_job(app, kit, board.id, ["w-1"])
        dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
        watcher = MaterializationStore(
            app.db, dead, Settings(**(job_settings.model_dump() | {"job_poll_seconds": 0.05}))
        )
        events: list[Any] = []

        async def consume() -> None:
            async for event in watcher.watch(job.id, 0):
                events.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        await live.change(job.id, _widget_step(0, c.JOB_STATE_RUNNING, "materializing widget 1 of 1"))
        await asyncio.sleep(0.5)
        await live.change(job.id, _widget_step(0, SUCCEEDED, "widget 1 of 1 done"))
        await live.change(job.id, _finish)
        await asyncio.wait_for(task, 10)
        await dead.aclose()
        return events

    events = server.run(scenario())
    revisions = [e.job.revision for e in events if e.HasField("job")]
    assert revisions[0] == 1 and revisions == sorted(set(revisions)) and revisions[-1] == 4
    assert events[-1].job.state == SUCCEEDED
    assert any(e.HasField("heartbeat") for e in events)


def test_revisions_committed_just_before_a_heartbeat_are_all_sent(
    kit: Kit, job_settings: Settings, job_servers: tuple[ServerHandle, ...]
) -> None:
    """Revisions committed and published after the watch last read the stream, found by its
    heartbeat's read of the row: each is sent, in order (the row's snapshot alone was sent
    before, skipping those between)."""
    server = job_servers[0]
    app = server.running.app
    board = kit.board()

    async def scenario() -> list[Any]:
        from server.materialization.runner import _finish, _widget_step

        live = MaterializationStore(app.db, app.redis, job_settings)
        job = await _insert_job(app, kit, board.id, ["w-1"])

        class ChangedBeforeItsRead(MaterializationStore):
            """The worker's three changes land just before this watcher's next read of the row."""

            armed = False

            async def get(self, job_id: str) -> w.MaterializationJob:
                if self.armed:
                    self.armed = False
                    await live.change(job_id, _widget_step(0, c.JOB_STATE_RUNNING, "materializing widget 1 of 1"))
                    await live.change(job_id, _widget_step(0, SUCCEEDED, "widget 1 of 1 done"))
                    await live.change(job_id, _finish)
                return await super().get(job_id)

        watcher = ChangedBeforeItsRead(app.db, app.redis, job_settings)
        events: list[Any] = []
        async for event in watcher.watch(job.id, 0):
            events.append(event)
            if event.HasField("job") and event.job.revision == 1:
                watcher.armed = True  # the next read of the row is the heartbeat's
        return events

    events = server.run(scenario())
    assert [e.job.revision for e in events if e.HasField("job")] == [1, 2, 3, 4]
    assert events[-1].job.state == SUCCEEDED


def test_access_goes_through_the_dashboard(kit: Kit, worker: WorkerProcess, auth: Any, other_server: Any) -> None:
    board = kit.board()
    kit.widget(board, kit.query("SELECT 1 AS n"))
    job = kit.materialize(board)
    stranger = auth("mallory", "admin", f"fac-{uuid.uuid4().hex[:8]}")
    colleague_without_share = auth("bob", "viewer", kit.facility)
    for md in (stranger, colleague_without_share):
        expect_failure(
            lambda md=md: kit.widgets.GetMaterializationJob(w.GetMaterializationJobRequest(id=job.id), metadata=md),
            Code.NOT_FOUND,
        )
        expect_failure(lambda md=md: collect(watch(other_server, md, job.id)), Code.NOT_FOUND)
        expect_failure(
            lambda md=md: kit.widgets.MaterializeDashboard(
                w.MaterializeDashboardRequest(dashboard_id=board.id), metadata=md
            ),
            Code.NOT_FOUND,
        )
    expect_failure(
        lambda: kit.widgets.GetMaterializationJob(
            w.GetMaterializationJobRequest(id=str(uuid.uuid4())), metadata=kit.md
        ),
        Code.NOT_FOUND,
    )
    expect_failure(lambda: collect(watch(kit.widgets, kit.md, job.id, since=-1)), Code.INVALID_ARGUMENT)
    wait_terminal(kit.widgets, kit.md, job.id)


def test_request_id_returns_the_first_job(kit: Kit, worker: WorkerProcess) -> None:
    board = kit.board()
    kit.widget(board, kit.query("SELECT 1 AS n"))
    request_id = str(uuid.uuid4())
    first = kit.materialize(board, request_id=request_id)
    again = kit.materialize(board, request_id=request_id)
    assert again.id == first.id
    expect_failure(lambda: kit.materialize(board, request_id=request_id, dashboard_version=1), Code.ALREADY_EXISTS)
    wait_terminal(kit.widgets, kit.md, first.id)


def test_published_readers_materialize_the_published_version(kit: Kit, worker: WorkerProcess, auth: Any) -> None:
    board = kit.board(visibility=d.VISIBILITY_PUBLIC)
    published_widget = kit.widget(board, kit.query("SELECT 1 AS n"))
    kit.dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=kit.md)
    kit.widget(board, kit.query("SELECT 2 AS n"))  # after publishing: not in the published version
    reader = auth("pat", "viewer", kit.facility)
    job = kit.widgets.MaterializeDashboard(w.MaterializeDashboardRequest(dashboard_id=board.id), metadata=reader)
    assert [e.widget_id for e in job.widgets] == [published_widget.id]
    assert wait_terminal(kit.widgets, reader, job.id).state == SUCCEEDED


def test_failed_widget_fails_the_job_with_an_error(kit: Kit, worker: WorkerProcess) -> None:
    board = kit.board()
    kit.widget(board, kit.query("SELECT 1 AS n"))
    kit.widget(board, kit.query("SELECT 1 / (random() * 0)::int AS boom"))
    job = kit.materialize(board)
    done = wait_terminal(kit.widgets, kit.md, job.id)
    assert done.state == FAILED
    assert done.error.reason == "WIDGETS_FAILED"
    assert [e.state for e in done.widgets] == [SUCCEEDED, FAILED]
    assert done.widgets[1].error.reason and done.progress.failed_steps == 1 and done.progress.percent == 100


def test_a_broker_that_refuses_the_task_fails_the_job_and_says_retry(
    settings: Settings, migrated: str, auth: Any, facility: str
) -> None:
    from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc

    handle = start_in_thread(jobs_settings(settings, "redis://127.0.0.1:1/0"))  # nothing listens there
    try:
        with grpc.insecure_channel(handle.address) as channel:
            widgets = widget_pb2_grpc.WidgetServiceStub(channel)
            md = auth("alice", "editor", facility)
            kit = Kit(
                query_pb2_grpc.QueryServiceStub(channel),
                dashboard_pb2_grpc.DashboardServiceStub(channel),
                widgets,
                md,
                facility,
            )
            board = kit.board()
            kit.widget(board, kit.query("SELECT 1 AS n"))
            request_id = str(uuid.uuid4())
            expect_failure(
                lambda: kit.materialize(board, request_id=request_id),
                grpc.StatusCode.UNAVAILABLE,
                reason="BROKER_UNAVAILABLE",
            )
            # The committed job says so (a retry with the same request id returns it).
            job = kit.materialize(board, request_id=request_id)
            assert job.state == c.JOB_STATE_FAILED and job.error.reason == "BROKER_UNAVAILABLE"
    finally:
        handle.stop()
