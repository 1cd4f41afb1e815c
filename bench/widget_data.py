"""Issue 4: the widget-data read path.

* cache hit: GetWidgetData answered from tier 1 (auth, validation, access and query resolution,
  parameter binding, key, Redis GET, frame parse, protobuf over gRPC), latency and throughput,
  against the transport ceiling: a bare grpc.aio server on the same machine, in the same process,
  answering the very same serialized WidgetData bytes to the same client code, in the same run;
* cold miss: a key never seen (lookups in both tiers, the single-flight lock, the query, writes to
  both tiers) against raw psycopg execution of the same SQL with the same value;
* stampede: N concurrent requests for one cold key: how many executions, how long.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import grpc
import psycopg

from bench.harness import Bench, sample, summary
from dashboard.v1 import common_pb2, dashboard_pb2, dashboard_pb2_grpc, query_pb2, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import widget_pb2 as w
from server.widgetdata import stats

METHOD = "/dashboard.v1.WidgetService/GetWidgetData"
SMALL_SQL = (
    "SELECT unit, count(*) AS admissions, sum(cost) AS cost FROM demo.admissions"
    " WHERE cost > :min_cost GROUP BY unit ORDER BY unit"
)
LARGE_SQL = "SELECT g AS n, g * 1.5 AS x, 'row ' || g AS label FROM generate_series(1, 10000) AS g"
_salt = itertools.count(1)


@contextmanager
def bare_server(payload: bytes) -> Iterator[str]:
    """A grpc.aio server whose GetWidgetData returns `payload` as it is: no interceptors, no
    deserialization, no work: what the transport alone costs."""
    loop = asyncio.new_event_loop()
    started: Future[tuple[grpc.aio.Server, int]] = Future()

    async def handler(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return payload

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        # No (de)serializers: bytes in, the pre-serialized bytes out.
        rpc = grpc.unary_unary_rpc_method_handler(handler)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("dashboard.v1.WidgetService", {"GetWidgetData": rpc}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    def run() -> None:
        asyncio.set_event_loop(loop)
        started.set_result(loop.run_until_complete(start()))
        loop.run_forever()

    thread = threading.Thread(target=run, name="bare-grpc", daemon=True)
    thread.start()
    server, port = started.result(timeout=30)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


async def _throughput(address: str, request: w.GetWidgetDataRequest, md: Any, concurrency: int, total: int) -> float:
    """Requests per second of `concurrency` callers sharing one grpc.aio channel."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = widget_pb2_grpc.WidgetServiceStub(channel)
        for _ in range(concurrency):  # warm the connection and the server's paths
            await stub.GetWidgetData(request, metadata=md)
        remaining = total

        async def caller() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await stub.GetWidgetData(request, metadata=md)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return total / (time.perf_counter() - started)


def _setup(bench: Bench, sql: str, params: list[query_pb2.ParameterSpec]) -> w.Widget:
    md = bench.metadata("editor")
    query = query_pb2_grpc.QueryServiceStub(bench.channel).CreateQuery(
        query_pb2.CreateQueryRequest(query=query_pb2.Query(name="bench widget data", sql=sql, parameters=params)),
        metadata=md,
    )
    board = dashboard_pb2_grpc.DashboardServiceStub(bench.channel).CreateDashboard(
        dashboard_pb2.CreateDashboardRequest(dashboard=dashboard_pb2.Dashboard(title="bench widget data")),
        metadata=md,
    )
    return widget_pb2_grpc.WidgetServiceStub(bench.channel).CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=board.id,
                title="bench",
                position=w.GridPosition(x=0, y=0, width=6, height=4),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=query.id),
            )
        ),
        metadata=md,
    )


def _min_cost(value: int) -> dict[str, common_pb2.ParameterValue]:
    return {"min_cost": common_pb2.ParameterValue(int_value=value)}


def _cache_hit(bench: Bench, full: bool, name: str, widget: w.Widget, values: dict[str, Any]) -> dict[str, Any]:
    md = bench.metadata("editor")
    stub = widget_pb2_grpc.WidgetServiceStub(bench.channel)
    request = w.GetWidgetDataRequest(widget_id=widget.id, parameter_values=values)
    stub.GetWidgetData(request, metadata=md)
    reply = stub.GetWidgetData(request, metadata=md)
    assert reply.source == w.DATA_SOURCE_MEMORY, reply.source
    iterations = 2000 if full else 300
    total = 20000 if full else 3000
    concurrency = 32
    with bare_server(reply.SerializeToString()) as address, grpc.insecure_channel(address) as bare_channel:
        bare = widget_pb2_grpc.WidgetServiceStub(bare_channel)
        # Same client code on both: the generated stub, which parses the WidgetData it gets.
        ceiling = summary(sample(lambda: bare.GetWidgetData(request, metadata=md), iterations, warmup=20))
        before = stats.snapshot()
        measured = summary(sample(lambda: stub.GetWidgetData(request, metadata=md), iterations, warmup=20))
        hits = stats.memory_hits - before["memory_hits"]
        ceiling_rps = asyncio.run(_throughput(address, request, md, concurrency, total))
        measured_rps = asyncio.run(_throughput(bench.server.address, request, md, concurrency, total))
    return {
        "workload": f"widget_data.cache_hit.{name}",
        "rows": reply.frame.row_count,
        "response_bytes": reply.ByteSize(),
        "rpc": {**measured, "throughput_rps": round(measured_rps), "memory_hits": hits},
        "baseline": {
            "what": "bare grpc.aio server returning the same serialized WidgetData, same client, same run",
            **ceiling,
            "throughput_rps": round(ceiling_rps),
        },
        "ratio_p50": round(measured["p50_ms"] / ceiling["p50_ms"], 2),
        "ratio_p99": round(measured["p99_ms"] / ceiling["p99_ms"], 2),
        "throughput_fraction_of_ceiling": round(measured_rps / ceiling_rps, 3),
        "concurrency": concurrency,
    }


def _cold_miss(bench: Bench, full: bool, widget: w.Widget) -> dict[str, Any]:
    md = bench.metadata("editor")
    stub = widget_pb2_grpc.WidgetServiceStub(bench.channel)
    iterations = 300 if full else 60

    def rpc() -> None:
        # A value never used before: a key no tier has.
        reply = stub.GetWidgetData(
            w.GetWidgetDataRequest(widget_id=widget.id, parameter_values=_min_cost(next(_salt))), metadata=md
        )
        assert reply.source == w.DATA_SOURCE_COMPUTED

    with psycopg.connect(bench.dsn) as direct:
        direct.execute("SELECT set_config('tessera.facility_id', 'north-general', false)")
        raw_sql = SMALL_SQL.replace(":min_cost", "%(min_cost)s")

        def raw() -> None:
            with direct.cursor() as cur:
                cur.execute(raw_sql, {"min_cost": next(_salt)})
                cur.fetchall()

        baseline = summary(sample(raw, iterations))
        before = stats.executions
        measured = summary(sample(rpc, iterations))
        executions = stats.executions - before
    return {
        "workload": "widget_data.cold_miss",
        "rpc": {**measured, "executions": executions},
        "baseline": {"what": "psycopg execute+fetchall, same SQL and value, same database", **baseline},
        "ratio_p50": round(measured["p50_ms"] / baseline["p50_ms"], 2),
    }


async def _stampede_once(address: str, widget_id: str, md: Any, requests: int) -> tuple[float, list[float], set[bytes]]:
    request = w.GetWidgetDataRequest(widget_id=widget_id, parameter_values=_min_cost(next(_salt)))
    async with grpc.aio.insecure_channel(address) as channel:
        stub = widget_pb2_grpc.WidgetServiceStub(channel)
        await channel.channel_ready()

        async def one() -> tuple[float, bytes]:
            started = time.perf_counter()
            reply = await stub.GetWidgetData(request, metadata=md, timeout=60)
            return time.perf_counter() - started, reply.frame.SerializeToString()

        started = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(requests)))
        wall = time.perf_counter() - started
    return wall, [r[0] for r in results], {r[1] for r in results}


def _stampede(bench: Bench, full: bool, widget: w.Widget) -> dict[str, Any]:
    md = bench.metadata("editor")
    requests = 200
    rounds = 5 if full else 2
    walls: list[float] = []
    latencies: list[float] = []
    executions = 0
    distinct_frames = 0
    for _ in range(rounds):
        before = stats.executions
        wall, each, frames = asyncio.run(_stampede_once(bench.server.address, widget.id, md, requests))
        executions += stats.executions - before
        walls.append(wall)
        latencies += each
        distinct_frames = max(distinct_frames, len(frames))
    return {
        "workload": "widget_data.stampede",
        "requests_per_round": requests,
        "rounds": rounds,
        "executions_per_round": executions / rounds,
        "distinct_frames_per_round": distinct_frames,
        "wall_ms_per_round": [round(x * 1000, 1) for x in walls],
        "rpc": summary(latencies),
    }


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    small = _setup(bench, SMALL_SQL, [query_pb2.ParameterSpec(name="min_cost", type=query_pb2.PARAMETER_TYPE_INT)])
    large = _setup(bench, LARGE_SQL, [])
    return [
        _cache_hit(bench, full, "small", small, _min_cost(0)),
        _cache_hit(bench, full, "large", large, {}),
        _cold_miss(bench, full, small),
        _stampede(bench, full, small),
    ]
