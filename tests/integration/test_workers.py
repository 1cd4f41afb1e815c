"""The Celery side with real workers (subprocesses, prefork): the beat schedule, due widgets,
materialized-view refresh with invalidation, cleanup, a worker killed mid-job (the task is
delivered again and the job completes), and one materialization through RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
from celery.schedules import crontab

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.broker.app import beat_schedule, make_celery
from server.broker.names import TASK_CLEANUP, TASK_DUE_WIDGETS, TASK_REFRESH_VIEWS
from server.config import Settings
from server.db.engine import Database, make_engine
from server.db.migrate import sync_url
from server.materialization.sweep import SweepLimits, SweepResult, sweep_due_widgets
from server.widgetdata.key import generation_key
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import (
    Kit,
    broker_url_for,
    collect,
    jobs_settings,
    wait_terminal,
    watch,
    worker_env,
)
from workers.celery_app import make_worker_app
from workers.testing import WorkerProcess

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
SUCCEEDED = c.JOB_STATE_SUCCEEDED


@pytest.fixture(scope="module")
def job_settings(settings: Settings, migrated: str) -> Settings:
    return jobs_settings(settings, broker_url_for(settings.redis_url))


@pytest.fixture(scope="module")
def env(job_settings: Settings) -> dict[str, str]:
    # Small sweep chunks and a short queue: a handful of due widgets takes several chunks and
    # meets the back-pressure. The default visibility timeout: a sweep that runs past a short
    # one would be delivered again and claim the next test's due widgets.
    return worker_env(job_settings, TESSERA_MATERIALIZE_CHUNK_SIZE="3", TESSERA_MATERIALIZE_MAX_WAITING_TASKS="2")


@pytest.fixture(scope="module")
def redelivery_env(env: dict[str, str]) -> dict[str, str]:
    """A short visibility timeout and restore sweep: a dead worker's task comes back in seconds."""
    return env | {"TESSERA_BROKER_VISIBILITY_TIMEOUT_SECONDS": "3", "TESSERA_BROKER_RESTORE_INTERVAL_SECONDS": "1"}


@pytest.fixture(scope="module")
def jobs_server(job_settings: Settings) -> Iterator[ServerHandle]:
    handle = start_in_thread(job_settings)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def worker(env: dict[str, str]) -> Iterator[WorkerProcess]:
    process = WorkerProcess(env).start()
    yield process
    process.stop()


@pytest.fixture
def kit(jobs_server: ServerHandle, auth: Any, facility: str) -> Iterator[Kit]:
    import grpc

    from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc

    with grpc.insecure_channel(jobs_server.address) as channel:
        yield Kit(
            query_pb2_grpc.QueryServiceStub(channel),
            dashboard_pb2_grpc.DashboardServiceStub(channel),
            widget_pb2_grpc.WidgetServiceStub(channel),
            auth("alice", "editor", facility, permissions=("phi:read",)),
            facility,
        )


@pytest.fixture(scope="module")
def dsn(migrated: str) -> str:
    return sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)


def sql(dsn: str, statement: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, args)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def due_alone(dsn: str, ids: list[str], *, interval: int | None = None) -> None:
    """Makes `ids` due and every other widget of this run's database not: widgets that earlier
    modules left due (some with slow SQL) would join the sweep and hold its queue up."""
    sql(dsn, "UPDATE widgets SET next_refresh_at = now() + interval '1 day' WHERE NOT (id = ANY(%s::uuid[]))", ids)
    sql(
        dsn,
        "UPDATE widgets SET next_refresh_at = NULL,"
        " refresh_interval_seconds = coalesce(%s, refresh_interval_seconds) WHERE id = ANY(%s::uuid[])",
        interval,
        ids,
    )


def data(kit: Kit, widget_id: str) -> w.WidgetData:
    return kit.widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget_id), metadata=kit.md, timeout=30)


# --- schedule ----------------------------------------------------------------------------------


def test_beat_schedule_and_routing() -> None:
    schedule = beat_schedule()
    by_task = {entry["task"]: entry["schedule"] for entry in schedule.values()}
    assert by_task[TASK_DUE_WIDGETS] == crontab()  # every minute
    assert by_task[TASK_REFRESH_VIEWS] == crontab(minute=0)  # hourly
    assert by_task[TASK_CLEANUP] == crontab(minute=30, hour=3)  # daily
    app = make_worker_app(Settings(broker_url="redis://127.0.0.1:6379/9"))
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.worker_concurrency == 10
    assert {queue.name for queue in conf.task_queues} == {"materialize", "exports", "maintenance"}
    assert conf.broker_transport_options["visibility_timeout"] == 3600
    app.loader.import_default_modules()
    for name in (TASK_DUE_WIDGETS, TASK_REFRESH_VIEWS, TASK_CLEANUP, "tessera.materialize.dashboard"):
        assert name in app.tasks
        queue = app.amqp.router.route({}, name)["queue"].name
        assert queue == ("materialize" if name.startswith("tessera.materialize") else "maintenance")


# --- beat tasks --------------------------------------------------------------------------------


def test_sweep_holds_off_while_the_queue_is_full(migrated: str, kit: Kit, dsn: str) -> None:
    # Before any test of this module starts its worker: this sweep must be the only one.
    board = kit.board()
    ids = {kit.widget(board, kit.query("SELECT 1 AS n")).id for _ in range(7)}
    due_alone(dsn, list(ids))
    answers = iter([2, 2, 0])  # the queue is full twice, then workers took everything
    log: list[object] = []

    async def waiting() -> int:
        depth = next(answers, 0)
        log.append(("asked", depth))
        return depth

    async def scenario(limits: SweepLimits) -> SweepResult:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        try:
            return await sweep_due_widgets(db, lambda chunk: log.append(list(chunk)), waiting, limits)
        finally:
            await db.dispose()

    done = asyncio.run(scenario(SweepLimits(chunk=2, max_waiting=2, budget_seconds=30, poll_seconds=0.01)))
    assert done.drained and done.held_off_seconds > 0
    # Nothing was handed over before the queue had room; then at most 2 chunks per look at it.
    assert log[:3] == [("asked", 2), ("asked", 2), ("asked", 0)]
    chunks = [entry for entry in log if isinstance(entry, list)]
    assert all(len(chunk) <= 2 for chunk in chunks)
    dispatched = [widget_id for chunk in chunks for widget_id in chunk]
    missed = ids - set(dispatched)
    assert not missed, sql(dsn, "SELECT id, next_refresh_at FROM widgets WHERE id = ANY(%s::uuid[])", list(missed))
    assert len(dispatched) == len(set(dispatched))
    for index, entry in enumerate(log):
        if isinstance(entry, tuple):
            assert sum(isinstance(e, list) for e in log[index + 1 : index + 3]) <= 2
    # A queue that never empties: the sweep claims nothing and ends at its budget.
    sql(dsn, "UPDATE widgets SET next_refresh_at = NULL WHERE id = ANY(%s::uuid[])", list(ids))
    answers = iter([])

    async def full() -> int:
        return 5

    async def stalled() -> SweepResult:
        db = Database(make_engine(migrated, pool_size=1, max_overflow=0))
        try:
            return await sweep_due_widgets(
                db, lambda chunk: log.append(list(chunk)), full, SweepLimits(2, 2, 0.2, 0.05)
            )
        finally:
            await db.dispose()

    held = asyncio.run(stalled())
    assert (held.claimed, held.drained) == (0, False)
    assert (
        sql(dsn, "SELECT count(*) FROM widgets WHERE id = ANY(%s::uuid[]) AND next_refresh_at IS NULL", list(ids))[0][0]
        == 7
    )


def test_due_widgets_are_materialized_and_rescheduled(
    kit: Kit, worker: WorkerProcess, job_settings: Settings, dsn: str
) -> None:
    phi = kit.query(
        "SELECT 'Ada' AS patient_name",
        sensitive_columns=[q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_HASH)],
    )
    widget = kit.widget(kit.board(), phi, refresh=120)
    due_alone(dsn, [widget.id])
    tick = make_celery(job_settings).send_task(TASK_DUE_WIDGETS)
    # One execution warmed both masking levels.
    eventually(
        lambda: len(sql(dsn, "SELECT 1 FROM widget_data_cache WHERE query_id = %s", phi.id)) == 2,
        what="both masking levels cached",
    )
    (next_at,) = sql(dsn, "SELECT next_refresh_at - now() FROM widgets WHERE id = %s", widget.id)[0]
    assert 100 < next_at.total_seconds() <= 120
    assert data(kit, widget.id).source == w.DATA_SOURCE_MEMORY
    sweep_ended(worker, tick.id)


def test_one_tick_drains_more_due_widgets_than_a_chunk(
    kit: Kit, worker: WorkerProcess, job_settings: Settings, dsn: str
) -> None:
    # 20 due widgets, chunks of 3, at most 2 tasks waiting: one tick must refresh them all.
    board = kit.board()
    made = [kit.widget(board, kit.query(f"SELECT {i} AS n, '{uuid.uuid4().hex}' AS tag")) for i in range(20)]
    ids = [widget.id for widget in made]
    due_alone(dsn, ids, interval=600)
    (since,) = sql(dsn, "SELECT now()")[0]
    tick = make_celery(job_settings).send_task(TASK_DUE_WIDGETS)
    refreshed = (
        "SELECT count(DISTINCT widget_id) FROM widget_data_cache"
        " WHERE widget_id = ANY(%s::uuid[]) AND computed_at >= %s"
    )
    try:
        eventually(lambda: sql(dsn, refreshed, ids, since)[0][0] == len(ids), timeout=60, what="the due widgets")
    except AssertionError as timed_out:  # say how far it got and what the worker did
        count = sql(dsn, refreshed, ids, since)[0][0]
        raise AssertionError(f"{count}/{len(ids)} refreshed; worker log tail:\n{worker.log[-12000:]}") from timed_out
    # Each was claimed once, by that tick: rescheduled a whole interval ahead.
    left = sql(dsn, "SELECT min(next_refresh_at - now()) FROM widgets WHERE id = ANY(%s::uuid[])", ids)[0][0]
    assert left.total_seconds() > 500
    assert "tessera.materialize.widgets" in worker.log
    sweep_ended(worker, tick.id)


def sweep_ended(worker: WorkerProcess, task_id: str) -> None:
    """Waits for a tick's sweep to end. Its data can be refreshed while the sweep still waits
    for room in the queue; a sweep that outlived its test would claim the next test's due
    widgets."""
    eventually(
        lambda: any(task_id in line and "succeeded in" in line for line in worker.log.splitlines()),
        timeout=60,
        what="the tick's sweep ended",
    )


def test_widgets_of_one_job_run_concurrently(kit: Kit, worker: WorkerProcess) -> None:
    board = kit.board()
    for _ in range(3):
        kit.widget(board, kit.slow_query(300))
    job = kit.materialize(board)
    running_at_once = 0
    # Every change after the job was queued, replayed from its stream whenever the watch starts.
    jobs, _ = collect(watch(kit.widgets, kit.md, job.id, since=job.revision))
    for seen in jobs:
        running_at_once = max(running_at_once, sum(w_.state == c.JOB_STATE_RUNNING for w_ in seen.widgets))
    assert jobs[-1].state == SUCCEEDED
    assert running_at_once == 3
    assert [j.revision for j in jobs] == list(range(job.revision + 1, jobs[-1].revision + 1))


def test_refresh_materialized_views_invalidates(
    kit: Kit, worker: WorkerProcess, job_settings: Settings, dsn: str
) -> None:
    view = kit.query(
        f"SELECT '{kit.facility}'::text AS facility_id, 1 AS n",
        kind=q.QUERY_KIND_MATERIALIZED_VIEW,
        view_key_columns=["facility_id"],
    )
    widget = kit.widget(kit.board(), view)
    assert data(kit, widget.id).source == w.DATA_SOURCE_COMPUTED
    assert data(kit, widget.id).source == w.DATA_SOURCE_MEMORY
    before = sql(dsn, "SELECT refresh_time FROM widget_queries WHERE id = %s", view.id)[0][0]
    generations = redis.Redis.from_url(job_settings.redis_url)
    generation = generation_key(job_settings.redis_prefix, view.id)
    make_celery(job_settings).send_task(TASK_REFRESH_VIEWS)
    eventually(lambda: generations.get(generation) is not None, what="the generation bump")
    generations.close()
    after = sql(dsn, "SELECT refresh_time FROM widget_queries WHERE id = %s", view.id)[0][0]
    assert after is not None and (before is None or after > before)
    assert sql(dsn, "SELECT count(*) FROM widget_data_cache WHERE query_id = %s", view.id)[0][0] == 0
    assert data(kit, widget.id).source == w.DATA_SOURCE_COMPUTED


def test_cleanup_removes_what_expired(kit: Kit, worker: WorkerProcess, job_settings: Settings, dsn: str) -> None:
    board = kit.board()
    widget = kit.widget(board, kit.query("SELECT 1 AS n"))
    job = kit.materialize(board)
    wait_terminal(kit.widgets, kit.md, job.id)
    sql(dsn, "UPDATE widget_data_cache SET expires_at = now() - interval '2 days' WHERE widget_id = %s", widget.id)
    sql(dsn, "UPDATE jobs SET ended_at = now() - interval '2 days' WHERE id = %s", job.id)
    stream = f"{job_settings.redis_prefix}job:{job.id}"
    client = redis.Redis.from_url(job_settings.redis_url)
    assert client.exists(stream)
    make_celery(job_settings).send_task(TASK_CLEANUP)
    eventually(lambda: not client.exists(stream), what="the old job stream deleted")
    client.close()
    assert sql(dsn, "SELECT count(*) FROM widget_data_cache WHERE widget_id = %s", widget.id)[0][0] == 0


# --- redelivery --------------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_killed_mid_job_is_redelivered_and_completes(
    kit: Kit, redelivery_env: dict[str, str], worker: Any
) -> None:
    worker.stop()  # this test owns the queue: only the worker it kills may take the task
    doomed = WorkerProcess(redelivery_env, concurrency=1).start()
    board = kit.board()
    slow = kit.widget(board, kit.slow_query(5000))
    kit.widget(board, kit.query("SELECT 1 AS n"))
    job = kit.materialize(board)
    seen: list[int] = []
    for event in watch(kit.widgets, kit.md, job.id):
        if event.HasField("job"):
            seen.append(event.job.revision)
            if event.job.widgets[0].state == c.JOB_STATE_RUNNING:
                break
    time.sleep(0.3)  # inside the slow query
    doomed.kill()
    rescuer = WorkerProcess(redelivery_env, concurrency=1).start()
    try:
        jobs, _ = collect(watch(kit.widgets, kit.md, job.id, since=seen[-1], timeout=60))
    finally:
        rescuer.stop()
    final = jobs[-1]
    assert final.state == SUCCEEDED, final
    assert final.widgets[0].widget_id == slow.id and final.widgets[0].row_count == 1
    assert final.progress.completed_steps == 2 and final.progress.failed_steps == 0
    revisions = [j.revision for j in jobs]
    assert revisions == list(range(seen[-1] + 1, final.revision + 1))
    assert "tessera.materialize.dashboard" in rescuer.log


# --- RabbitMQ ----------------------------------------------------------------------------------


def _rabbitmq_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


def test_materialization_through_rabbitmq(settings: Settings, migrated: str, auth: Any, facility: str) -> None:
    if not _rabbitmq_answers():
        if os.environ.get("CI"):
            pytest.fail("RabbitMQ must answer on 127.0.0.1:5672 in CI")
        pytest.skip("RabbitMQ does not answer on 127.0.0.1:5672 (not CI): the AMQP path is tested in CI")
    import grpc

    from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc

    # Queues of their own on the shared vhost: a unique virtual prefix is not available for AMQP,
    # so the queues are purged first and used by this one run.
    rabbit = jobs_settings(settings, RABBITMQ_URL)
    app = make_celery(rabbit)
    with app.connection_for_write() as conn:
        for name in ("materialize", "maintenance"):
            with conn.channel() as channel, contextlib.suppress(Exception):  # not declared: nothing to purge
                channel.queue_purge(name)
    handle = start_in_thread(rabbit)
    process = WorkerProcess(worker_env(rabbit)).start()
    try:
        with grpc.insecure_channel(handle.address) as channel:
            kit = Kit(
                query_pb2_grpc.QueryServiceStub(channel),
                dashboard_pb2_grpc.DashboardServiceStub(channel),
                widget_pb2_grpc.WidgetServiceStub(channel),
                auth("alice", "editor", facility),
                facility,
            )
            board = kit.board()
            kit.widget(board, kit.query(f"SELECT '{uuid.uuid4().hex}' AS tag"))
            job = kit.materialize(board)
            assert wait_terminal(kit.widgets, kit.md, job.id).state == SUCCEEDED
    finally:
        process.stop()
        handle.stop()
