"""Materialization through the client against a real server and a real Celery worker: progress
fed by the watch stream (every revision once, in order), a connection cut mid-watch (resumed
with since_revision through a TCP proxy), failed jobs as JobFailedError, and the asyncio client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from google.protobuf import duration_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from tessera_client import AsyncClient, Client, JobFailedError, RetryPolicy
from tessera_client.jobs import MATERIALIZATION
from tests.client.conftest import JobStack, Mint
from tests.client.scripted import DroppingProxy

# About a second on a small machine: long enough for a watch to see several revisions.
SLOW_SQL = "SELECT count(*) AS n FROM generate_series(1, 800) a CROSS JOIN generate_series(1, 2000) b"


@pytest.fixture
def stack_client(job_stack: JobStack, mint: Mint, facility: str) -> Iterator[Client]:
    with Client(job_stack.address, token=mint("mia", "editor", facility)) as client:
        yield client


def board_with(client: Client, facility: str, *sqls: str) -> tuple[d.Dashboard, list[w.Widget]]:
    board = client.dashboards.create(title="Jobs", facility_id=facility)
    made = []
    for i, sql in enumerate(sqls):
        options = q.QueryOptions(timeout=duration_pb2.Duration(seconds=60))
        query = client.queries.create(name=f"q{i}", facility_id=facility, sql=sql, options=options)
        made.append(
            client.widgets.create(
                dashboard_id=board.id,
                title=f"w{i}",
                position=w.GridPosition(x=0, y=2 * i, width=6, height=2),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=query.id),
            )
        )
    return board, made


def contiguous(revisions: list[int]) -> bool:
    return revisions == list(range(revisions[0], revisions[0] + len(revisions)))


def test_materialize_and_wait_reports_every_revision_once(stack_client: Client, facility: str) -> None:
    board, made = board_with(stack_client, facility, "SELECT 1 AS n", "SELECT 2 AS n UNION ALL SELECT 3")
    seen: list[w.MaterializationJob] = []
    final = stack_client.widgets.materialize_and_wait(board.id, on_progress=seen.append, timeout=60)
    revisions = [job.revision for job in seen]
    assert revisions[0] == 1 and contiguous(revisions), revisions
    assert final.state == c.JOB_STATE_SUCCEEDED and final.progress.percent == 100 and final == seen[-1]
    assert [entry.row_count for entry in final.widgets] == [1, 2]
    assert [job.progress.percent for job in seen] == sorted(job.progress.percent for job in seen)
    for widget in made:
        assert stack_client.widgets.data(widget.id).source == w.DATA_SOURCE_MEMORY


def test_a_cut_connection_mid_watch_is_resumed_without_gaps_or_repeats(
    job_stack: JobStack, mint: Mint, facility: str
) -> None:
    proxy = DroppingProxy(job_stack.address)
    retry = RetryPolicy(initial_backoff=0.05, max_backoff=0.5)
    seen: list[int] = []

    def progress(job: w.MaterializationJob) -> None:
        seen.append(job.revision)
        if job.revision == 2:
            proxy.drop()  # mid-stream: the watch fails with UNAVAILABLE

    try:
        with Client(proxy.address, token=mint("mia", "editor", facility), retry=retry) as client:
            board, _ = board_with(client, facility, SLOW_SQL, "SELECT 1 AS n", "SELECT 2 AS n")
            final = client.widgets.materialize_and_wait(board.id, on_progress=progress, timeout=60)
    finally:
        proxy.close()
    assert final.state == c.JOB_STATE_SUCCEEDED
    assert seen[0] == 1 and contiguous(seen) and seen[-1] == final.revision, seen
    assert final.revision > 2, "the cut came before the end"
    assert proxy.connections >= 2, "the client connected again"


def test_a_failed_job_raises_with_its_reason(stack_client: Client, facility: str) -> None:
    boom = "SELECT 1 / (SELECT count(*) - count(*) FROM generate_series(1, 3)) AS n"
    board, _ = board_with(stack_client, facility, "SELECT 1 AS n", boom)
    with pytest.raises(JobFailedError) as caught:
        stack_client.widgets.materialize_and_wait(board.id, timeout=60)
    job = caught.value.job
    assert job.state == c.JOB_STATE_FAILED and caught.value.reason == "WIDGETS_FAILED"
    assert [entry.state for entry in job.widgets] == [c.JOB_STATE_SUCCEEDED, c.JOB_STATE_FAILED]
    assert job.progress.failed_steps == 1
    unchecked = stack_client.widgets.wait_job(job.id, check=False)
    assert unchecked == job, "watching a finished job gives its final snapshot"


def test_the_async_client_follows_a_job(stack_client: Client, job_stack: JobStack, mint: Mint, facility: str) -> None:
    board, _ = board_with(stack_client, facility, "SELECT 1 AS n")
    job = stack_client.widgets.materialize(board.id)
    seen: list[int] = []

    async def follow() -> w.MaterializationJob:
        async with AsyncClient(job_stack.address, token=mint("mia", "editor", facility)) as client:
            final: w.MaterializationJob = await client.follow(
                MATERIALIZATION, job.id, on_progress=lambda j: seen.append(j.revision), timeout=60
            )
            return final

    final = asyncio.run(follow())
    assert final.state == c.JOB_STATE_SUCCEEDED and contiguous(seen) and seen[-1] == final.revision
