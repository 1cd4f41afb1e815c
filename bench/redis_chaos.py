"""Redis SIGKILLed and restarted under read load, 3 trials (quick) or 20 (--full), run only when
named (`python -m bench --only redis_chaos`): two server instances share a Redis of their own while
four threads keep reading widget data (warm keys); each trial kills Redis, keeps reading for a
second, starts it again and waits until reads are answered from Redis again. Reported: reads,
failed reads (must be 0), where the reads came from while Redis was down, and seconds from the
restart until tier 1 answered again."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from typing import Any

import grpc

from bench.harness import Bench
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from tests.harness.server import start_in_thread
from tests.integration.test_widget_data import RedisProcess

FACILITY = "north-general"


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    trials = 20 if full else 3
    redis = RedisProcess()
    redis.start()
    own = bench.settings.model_copy(update={"redis_url": redis.url, "redis_prefix": "chaos:"})
    servers = [start_in_thread(own), start_in_thread(own)]
    channels = [grpc.insecure_channel(s.address) for s in servers]
    md = bench.metadata("editor", FACILITY)
    stubs = [widget_pb2_grpc.WidgetServiceStub(ch) for ch in channels]
    query = query_pb2_grpc.QueryServiceStub(channels[0]).CreateQuery(
        q.CreateQueryRequest(query=q.Query(facility_id=FACILITY, name="chaos", sql="SELECT 1 AS n")), metadata=md
    )
    board = dashboard_pb2_grpc.DashboardServiceStub(channels[0]).CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=FACILITY, title="chaos")), metadata=md
    )
    widget = stubs[0].CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=board.id,
                title="chaos",
                position=w.GridPosition(x=0, y=0, width=4, height=2),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=query.id),
            )
        ),
        metadata=md,
    )
    request = w.GetWidgetDataRequest(widget_id=widget.id)
    stubs[0].GetWidgetData(request, metadata=md)
    failures: list[str] = []
    sources: Counter[str] = Counter()
    down = threading.Event()
    stop = threading.Event()
    reads = 0
    lock = threading.Lock()

    def reader(i: int) -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                data = stubs[i % 2].GetWidgetData(request, metadata=md, timeout=30)
                with lock:
                    reads += 1
                    if down.is_set():
                        sources[w.DataSource.Name(data.source)] += 1
            except grpc.RpcError as exc:
                with lock:
                    failures.append(f"{exc.code()}: {exc.details()}")  # type: ignore[attr-defined]

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    recovery: list[float] = []
    try:
        for _ in range(trials):
            time.sleep(0.5)
            down.set()
            redis.kill()
            time.sleep(1.0)
            redis.start()
            down.clear()
            restarted = time.monotonic()
            while stubs[0].GetWidgetData(request, metadata=md).source != w.DATA_SOURCE_MEMORY:
                if time.monotonic() - restarted > 30:
                    failures.append("tier 1 never answered again")
                    break
                time.sleep(0.05)
            recovery.append(time.monotonic() - restarted)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for ch in channels:
            ch.close()
        for server in servers:
            server.stop()
        redis.kill()
    return [
        {
            "workload": "redis_chaos.kill_restart_under_reads",
            "trials": trials,
            "reads": reads,
            "failed_reads": len(failures),
            "failure_samples": failures[:3],
            "sources_while_down": dict(sources),
            "tier1_back_after_s_p50": round(statistics.median(recovery), 2),
            "tier1_back_after_s_max": round(max(recovery), 2),
        }
    ]
