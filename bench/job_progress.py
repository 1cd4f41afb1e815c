"""Issue 4: progress latency, from a worker's progress event (JobStore.change: the row UPDATE
with its new revision, commit, XADD) to a client watching the job over gRPC receiving it, on a
second server instance. Baseline: the bare Redis round trip the path rests on (XADD, then XREAD
of that entry) in the same run. The producer runs in its own thread and event loop with its own
engine and Redis client, as a worker process would."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis

from bench.harness import Bench, summary
from dashboard.v1 import common_pb2, dashboard_pb2, dashboard_pb2_grpc, widget_pb2, widget_pb2_grpc
from server.db.engine import Database, make_engine
from server.materialization.store import JobStore


def _producer(bench: Bench, job_id: str, steps: int, received: queue.Queue[int], out: list[float]) -> None:
    async def main() -> None:
        db = Database(make_engine(bench.settings.database_url, pool_size=1, max_overflow=1))
        client = aioredis.from_url(bench.settings.redis_url)
        store = JobStore(db, client, bench.settings)
        try:
            for i in range(steps):

                def step(job: widget_pb2.MaterializationJob, i: int = i) -> bool:
                    job.progress.message = f"step {i}"
                    job.state = common_pb2.JOB_STATE_RUNNING
                    if i == steps - 1:
                        job.state = common_pb2.JOB_STATE_SUCCEEDED
                    return True

                started = time.perf_counter()
                changed = await store.change(job_id, step)
                assert changed is not None
                # Wait (off the loop) for the watcher to report this revision.
                while await asyncio.to_thread(received.get) != changed.revision:
                    pass
                out.append(time.perf_counter() - started)
        finally:
            await client.aclose()
            await db.dispose()

    asyncio.run(main())


def _redis_round_trip(url: str, key: str, iterations: int) -> list[float]:
    client = redis.Redis.from_url(url)
    out: list[float] = []
    try:
        last = "0-0"
        for i in range(iterations + 5):
            started = time.perf_counter()
            client.xadd(key, {"rev": str(i)}, maxlen=1000, approximate=True)
            answer: Any = client.xread({key: last}, count=1, block=1000)
            last = answer[0][1][0][0]
            if i >= 5:
                out.append(time.perf_counter() - started)
    finally:
        client.delete(key)
        client.close()
    return out


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    from tests.harness.server import start_in_thread

    steps = 400 if full else 100
    server = start_in_thread(bench.settings)
    md = bench.metadata("editor")
    try:
        board = dashboard_pb2_grpc.DashboardServiceStub(bench.channel).CreateDashboard(
            dashboard_pb2.CreateDashboardRequest(dashboard=dashboard_pb2.Dashboard(title="bench jobs")), metadata=md
        )

        async def create() -> str:
            app = server.running.app
            async with app.db.transaction() as conn:
                job = await JobStore.insert(
                    conn,
                    kind="materialize",
                    dashboard_id=uuid.UUID(board.id),
                    facility_id=board.facility_id,
                    requested_by="bench",
                    params={},
                    widget_ids=[],
                )
            return job.id

        job_id = server.run(create())
        received: queue.Queue[int] = queue.Queue()
        latencies: list[float] = []
        import grpc

        with grpc.insecure_channel(server.address) as channel:
            stream = widget_pb2_grpc.WidgetServiceStub(channel).WatchMaterializationJob(
                widget_pb2.WatchMaterializationJobRequest(id=job_id), metadata=md, timeout=600
            )
            first = next(stream)  # the snapshot: the watch is established

            def consume() -> None:
                for event in stream:
                    if event.HasField("job"):
                        received.put(event.job.revision)

            assert first.job.revision == 1
            reader = threading.Thread(target=consume, daemon=True)
            reader.start()
            producer = threading.Thread(target=_producer, args=(bench, job_id, steps, received, latencies))
            producer.start()
            producer.join()
            reader.join(timeout=10)
        baseline = _redis_round_trip(bench.settings.redis_url, f"{bench.settings.redis_prefix}bench:rt", steps)
    finally:
        server.stop()
    progress, redis_rt = summary(latencies[5:]), summary(baseline)
    return [
        {
            "benchmark": "job_progress",
            "workload": "store update -> gRPC watch client",
            "progress": progress,
            "baseline_redis_xadd_xread": redis_rt,
            "ratio_p50": round(progress["p50_ms"] / redis_rt["p50_ms"], 2),
            "ratio_p99": round(progress["p99_ms"] / redis_rt["p99_ms"], 2),
        }
    ]
