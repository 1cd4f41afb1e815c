"""The workers' side of operations, with a real prefork worker (subprocess) on a broker database
of its own: its Prometheus endpoint after real tasks (durations and outcomes by task, a retry
caused by a killed query connection, widget refresh durations, queue depth read from the broker,
the children's numbers aggregated by the main process), and its JSON log lines carrying the
correlation id an rpc came with."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import psycopg
import pytest

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import widget_pb2 as w
from server.broker.app import make_celery
from server.broker.names import TASK_MATERIALIZE_DASHBOARD
from server.config import Settings
from server.db.migrate import sync_url
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import Kit, broker_url_for, jobs_settings, wait_terminal, worker_env
from tests.integration.test_metrics import Samples, value
from workers import metrics as worker_metrics
from workers.testing import WorkerProcess

SUCCEEDED = c.JOB_STATE_SUCCEEDED


@pytest.fixture(scope="module")
def obs_settings(settings: Settings, migrated: str) -> Settings:
    return jobs_settings(settings, broker_url_for(settings.redis_url))


@pytest.fixture(scope="module")
def obs_server(obs_settings: Settings) -> Iterator[ServerHandle]:
    handle = start_in_thread(obs_settings)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def worker(obs_settings: Settings) -> Iterator[WorkerProcess]:
    # JSON lines, so the test reads fields rather than text; it consumes no `exports`, so a
    # message sent there stays and shows as queue depth.
    env = worker_env(obs_settings, TESSERA_LOG_JSON="true")
    process = WorkerProcess(env, queues="materialize,maintenance", concurrency=2).start()
    yield process
    process.stop()


@pytest.fixture
def kit(obs_server: ServerHandle, auth: Any, facility: str) -> Iterator[Kit]:
    with grpc.insecure_channel(obs_server.address) as channel:
        yield Kit(
            query_pb2_grpc.QueryServiceStub(channel),
            dashboard_pb2_grpc.DashboardServiceStub(channel),
            widget_pb2_grpc.WidgetServiceStub(channel),
            auth("olga", "editor", facility),
            facility,
        )


def scrape(port: int | None) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    assert isinstance(port, int) and port > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


def json_lines(log: str) -> list[dict[str, Any]]:
    lines = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:  # the banner and other prints are not log lines
                continue
    return lines


def kill_worker_query(dsn: str, database: str) -> bool:
    """Terminates the worker's data-source session while it runs a query (as a failover would;
    results come through a server-side cursor, so between FETCHes it is idle in transaction)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            " AND application_name = 'tessera-worker-queries' AND state IN ('active', 'idle in transaction')",
            (database,),
        ).fetchall()
    return any(row[0] for row in killed)


def test_worker_metrics_move_with_real_tasks(
    kit: Kit, worker: WorkerProcess, obs_server: ServerHandle, obs_settings: Settings
) -> None:
    before = scrape(worker.metrics_port)

    # Two quick widgets, materialized by the worker.
    board = kit.board()
    for n in (1, 2):
        kit.widget(board, kit.query(f"SELECT {n} AS n"))
    first = wait_terminal(kit.widgets, kit.md, kit.materialize(board).id)
    assert first.state == SUCCEEDED

    # A slow widget whose query connection is killed mid-run: the task retries, then succeeds.
    slow_board = kit.board()
    kit.widget(slow_board, kit.slow_query(1500))
    job = kit.materialize(slow_board)
    dsn = sync_url(obs_settings.database_url).replace("postgresql+psycopg://", "postgresql://", 1)
    eventually(lambda: kill_worker_query(dsn, dsn.rsplit("/", 1)[-1]), "the slow query to run and be killed")
    assert wait_terminal(kit.widgets, kit.md, job.id).state == SUCCEEDED

    task = TASK_MATERIALIZE_DASHBOARD

    def tasks_recorded() -> Samples | None:
        # A watcher sees SUCCEEDED a moment before the task itself returns and is recorded.
        samples = scrape(worker.metrics_port)
        done = value(samples, "tessera_task_duration_seconds_count", task=task, outcome="success")
        return (
            samples
            if done - value(before, "tessera_task_duration_seconds_count", task=task, outcome="success") >= 2
            else None
        )

    eventually(tasks_recorded, "both tasks to be recorded")

    # A message nobody consumes here waits in `exports`: queue depth is read from the broker.
    client = make_celery(obs_settings)
    try:
        client.send_task("tessera.export.observability_probe", queue="exports")
        after = scrape(worker.metrics_port)
        from_server = scrape(obs_server.running.metrics_port)
    finally:
        with client.connection_for_write() as conn:
            conn.default_channel.queue_purge("exports")
        client.close()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Durations and outcomes by task: two runs succeeded, one ended in a retry.
    assert moved("tessera_task_duration_seconds_count", task=task, outcome="success") == 2
    assert moved("tessera_task_duration_seconds_count", task=task, outcome="retry") == 1
    assert value(after, "tessera_task_duration_seconds_sum", task=task, outcome="success") > 0
    assert moved("tessera_task_retries_total", task=task) == 1
    # Per widget: three refreshes succeeded (2 + the slow one's second attempt), one failed.
    assert moved("tessera_widget_refresh_duration_seconds_count", outcome="ok") == 3
    assert moved("tessera_widget_refresh_duration_seconds_count", outcome="error") == 1
    # The children's cache metrics reach the endpoint too (multiprocess aggregation).
    assert moved("tessera_widget_data_served_total", source="computed") >= 3
    # Queue depth and broker state, on the worker's endpoint and the server's.
    for samples in (after, from_server):
        assert value(samples, "tessera_queue_depth", queue="exports") == 1
        assert value(samples, "tessera_queue_depth", queue="materialize") == 0
        assert value(samples, "tessera_broker_up") == 1


def test_worker_log_lines_carry_the_rpcs_correlation_id(kit: Kit, worker: WorkerProcess) -> None:
    correlation = f"obs-{uuid.uuid4().hex[:12]}"
    board = kit.board()
    for n in (1, 2):
        kit.widget(board, kit.query(f"SELECT {n} AS n"))
    job = kit.widgets.MaterializeDashboard(
        w.MaterializeDashboardRequest(dashboard_id=board.id),
        metadata=(*kit.md, ("x-correlation-id", correlation)),
        timeout=10,
    )
    assert wait_terminal(kit.widgets, kit.md, job.id).state == SUCCEEDED

    def task_lines() -> list[dict[str, Any]]:
        lines = json_lines(worker.log)
        done = any(line.get("job_id") == job.id and line.get("state") == "JOB_STATE_SUCCEEDED" for line in lines)
        finished = any(
            "succeeded in" in line["message"] and line.get("correlation_id") == correlation for line in lines
        )
        return lines if done and finished else []

    lines = eventually(task_lines, "the task's log lines")
    progress = [line for line in lines if line.get("job_id") == job.id and line["message"] == "job progress"]
    # started, then running and done for each widget, then succeeded: every event, every line tagged.
    assert len(progress) >= 6
    assert {line.get("correlation_id") for line in progress} == {correlation}
    assert [line["revision"] for line in progress] == sorted(line["revision"] for line in progress)
    assert progress[-1]["state"] == "JOB_STATE_SUCCEEDED" and progress[-1]["percent"] == 100
    tagged = [line for line in lines if line.get("correlation_id") == correlation]
    assert any(line["logger"] == "celery.app.trace" for line in tagged)  # Celery's own "succeeded" line
    assert all(line["level"] in ("INFO", "WARNING") for line in tagged)


def test_a_task_nobody_correlated_is_correlated_by_its_id(obs_settings: Settings, worker: WorkerProcess) -> None:
    client = make_celery(obs_settings)
    try:
        result = client.send_task(TASK_MATERIALIZE_DASHBOARD, args=[str(uuid.uuid4())], queue="materialize")
    finally:
        client.close()
    line = eventually(
        lambda: next(
            (x for x in json_lines(worker.log) if x.get("correlation_id") == result.id and "succeeded" in x["message"]),
            None,
        ),
        "the task's line",
    )
    assert line["logger"] == "celery.app.trace"


def test_observe_export_checks_its_arguments_and_counts() -> None:
    def total() -> float:
        labels = {"format": "pdf", "outcome": "succeeded"}
        return worker_metrics.REGISTRY.get_sample_value("tessera_export_duration_seconds_sum", labels) or 0.0

    before = total()
    worker_metrics.observe_export("PDF", "succeeded", 1.5)
    assert total() == before + 1.5
    bad = ((("", "failed", 1.0), "format"), (("pdf", "done", 1.0), "outcome"), (("pdf", "failed", -1.0), "seconds"))
    for (fmt, outcome, seconds), field in bad:
        with pytest.raises(ValueError, match=f"^{field}:"):
            worker_metrics.observe_export(fmt, outcome, seconds)
