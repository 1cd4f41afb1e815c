"""Nothing lost when the broker loses a message, nothing done twice when a message is duplicated
(server/jobs/sweep.py), with a real worker, a real broker and real PostgreSQL:

* a job whose message is really lost (its queue purged before any worker consumed it) is found
  QUEUED by the sweep (the beat task, run by the worker), queued again, and succeeds; watchers see
  the re-queue as a revision and the terminal state exactly once; later sweeps leave it alone;
* a delivery of a job's task while another delivery holds the job leaves it untouched; the job
  then runs once and ends once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import widget_pb2 as w
from server.broker.app import make_celery
from server.broker.names import QUEUE_MATERIALIZE, TASK_MATERIALIZE_DASHBOARD, TASK_REQUEUE_LOST
from server.config import Settings
from server.db.migrate import sync_url
from server.jobs.sweep import REQUEUED_MESSAGE, lock_id, requeue_lost
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import Kit, collect, jobs_settings, watch, worker_env
from workers.testing import WorkerProcess

SUCCEEDED, QUEUED = c.JOB_STATE_SUCCEEDED, c.JOB_STATE_QUEUED
TERMINAL = {c.JOB_STATE_SUCCEEDED, c.JOB_STATE_FAILED, c.JOB_STATE_CANCELLED}


@pytest.fixture(scope="module")
def lost_settings(settings: Settings, migrated: str) -> Settings:
    """The server's: its tasks go to queues under a broker key prefix no worker consumes, and
    are purged there: really lost."""
    return jobs_settings(settings, settings.redis_url, job_queued_timeout_seconds=0.5)


@pytest.fixture(scope="module")
def worker_settings(lost_settings: Settings) -> Settings:
    """The worker's: the same database and cache, the broker under a prefix of its own."""
    return jobs_settings(lost_settings, lost_settings.redis_url, job_queued_timeout_seconds=0.5)


@pytest.fixture(scope="module")
def worker(worker_settings: Settings) -> Iterator[WorkerProcess]:
    env = worker_env(worker_settings, TESSERA_JOB_QUEUED_TIMEOUT_SECONDS="0.5")
    process = WorkerProcess(env, queues="materialize,maintenance").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def server(lost_settings: Settings) -> Iterator[ServerHandle]:
    handle = start_in_thread(lost_settings)
    yield handle
    handle.stop()


@pytest.fixture
def to_worker(worker_settings: Settings) -> Iterator[Any]:
    """A Celery app that sends to the worker's queues (as beat, or a redelivery, would)."""
    app = make_celery(worker_settings)
    yield app
    app.close()


def lose_messages(lost_settings: Settings) -> int:
    app = make_celery(lost_settings)
    try:
        with app.connection_for_write() as conn:
            return int(conn.default_channel.queue_purge(QUEUE_MATERIALIZE) or 0)
    finally:
        app.close()


@pytest.fixture
def kit(server: ServerHandle, auth: Any, facility: str) -> Iterator[Kit]:
    with grpc.insecure_channel(server.address) as ch:
        yield Kit(
            query_pb2_grpc.QueryServiceStub(ch),
            dashboard_pb2_grpc.DashboardServiceStub(ch),
            widget_pb2_grpc.WidgetServiceStub(ch),
            auth("lou", "editor", facility),
            facility,
        )


def test_a_lost_message_is_swept_and_its_job_runs_once(
    kit: Kit, lost_settings: Settings, server: ServerHandle, worker: WorkerProcess, to_worker: Any
) -> None:
    board = kit.board()
    kit.widget(board, kit.query("SELECT 1 AS n"))
    job = kit.materialize(board)  # committed, and its message sent ...
    assert lose_messages(lost_settings) == 1  # ... and lost
    time.sleep(0.6)  # the job's age must pass the (half-second) timeout: a precondition, not a race
    assert kit.widgets.GetMaterializationJob(w.GetMaterializationJobRequest(id=job.id), metadata=kit.md).state == QUEUED

    to_worker.send_task(TASK_REQUEUE_LOST)  # what beat sends every minute
    jobs, _ = collect(watch(kit.widgets, kit.md, job.id))
    assert jobs[-1].state == SUCCEEDED, jobs[-1]
    history = [job, *collect(watch(kit.widgets, kit.md, job.id, since=1))[0]]  # every revision
    assert any(j.state == QUEUED and j.progress.message == REQUEUED_MESSAGE for j in history)
    assert sum(1 for j in history if j.state in TERMINAL) == 1, "the terminal state is written once"
    revisions = [j.revision for j in history]
    assert revisions == list(range(1, revisions[-1] + 1))

    # A sweep after the end leaves the job alone.
    app = server.running.app
    sent: list[str] = []

    async def send(job_id: str) -> None:
        sent.append(job_id)

    swept = server.run(requeue_lost(app.db, app.materialization.store, send, 0.0))
    assert job.id not in swept and job.id not in sent


def test_a_delivery_stands_aside_while_another_holds_the_job(
    kit: Kit, lost_settings: Settings, worker: WorkerProcess, to_worker: Any
) -> None:
    """Another delivery of the task holds the job (its advisory lock, taken here as that delivery
    would): this one leaves the job untouched; once the lock is free, a delivery runs it."""
    board = kit.board()
    kit.widget(board, kit.query("SELECT 2 AS n"))
    job = kit.materialize(board)
    lose_messages(lost_settings)  # only the deliveries this test sends reach the worker
    holder = psycopg.connect(sync_url(lost_settings.database_url).replace("+psycopg", ""), autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_id(job.id),))
        to_worker.send_task(TASK_MATERIALIZE_DASHBOARD, args=[job.id], queue=QUEUE_MATERIALIZE)
        deadline = time.monotonic() + 60
        while f"{job.id} is being run by another delivery of its task" not in worker.log:  # bounded
            assert time.monotonic() < deadline, worker.log[-3000:]
            time.sleep(0.05)
        got = kit.widgets.GetMaterializationJob(w.GetMaterializationJobRequest(id=job.id), metadata=kit.md)
        assert got.state == QUEUED and got.revision == 1, "the delivery that stood aside changed nothing"
        holder.execute("SELECT pg_advisory_unlock(%s)", (lock_id(job.id),))
    finally:
        holder.close()
    to_worker.send_task(TASK_MATERIALIZE_DASHBOARD, args=[job.id], queue=QUEUE_MATERIALIZE)
    jobs, _ = collect(watch(kit.widgets, kit.md, job.id))
    assert jobs[-1].state == SUCCEEDED
    history = [job, *collect(watch(kit.widgets, kit.md, job.id, since=1))[0]]
    assert sum(1 for j in history if j.state in TERMINAL) == 1
