"""Issues 4 and 13: the widget-data read path, with `tessera serve` in its own process(es) and the
load from h2load speaking gRPC (bench/h2load.py).

* cached (`widget_data_cached`): GetWidgetData answered from the cache at 16 calls in flight (16
  connections) and at 1 connection, against the transport ceiling: bare grpc.aio processes (1 and
  one per core; the better counts) answering the very same serialized WidgetData bytes, same run;
  with the server's CPU per call (its processes' CPU time over the calls they answered), and the
  bare processes' measured the same way: `cpu_per_call_ratio_to_bare` is what a hit costs over
  what the transport alone costs for it;
* cold (`widget_data_cold`): force_refresh at 1 connection (the single-flight lock, an aggregate
  over 300,000 rows, writes to both tiers) against the SQL alone through psycopg, in alternating
  rounds;
* stampede: N concurrent requests for one cold key (in-process server): how many executions;
* soak (`widget_data_soak`): cached reads at 16 in flight for minutes, the server's RSS curve.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import psycopg

from bench import h2load
from bench.harness import Bench, sample, summary
from bench.served import Served, bare_grpc, tessera_serve, with_connection_split
from dashboard.v1 import common_pb2, dashboard_pb2, dashboard_pb2_grpc, query_pb2, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import widget_pb2 as w
from server.devtools.demo_data import POLICY
from server.widgetdata import stats

METHOD = "/dashboard.v1.WidgetService/GetWidgetData"
# About 95 rows and 3 KB as WidgetData: the size of a typical chart's frame.
CACHED_SQL = (
    "SELECT age, count(*) AS admissions, sum(cost) AS cost FROM demo.admissions"
    " WHERE cost > :min_cost GROUP BY age ORDER BY age"
)
SMALL_SQL = (
    "SELECT unit, count(*) AS admissions, sum(cost) AS cost FROM demo.admissions"
    " WHERE cost > :min_cost GROUP BY unit ORDER BY unit"
)
COLD_SQL = "SELECT unit, count(*) AS events, sum(cost) AS cost FROM demo.bench_events GROUP BY unit ORDER BY unit"
_salt = itertools.count(1)


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


def _install_cold_table(bench: Bench) -> None:
    """300,000 rows under the demo schema's facility policy: an aggregate over them is the
    cold read's SQL (tens of milliseconds, like a real report)."""
    with psycopg.connect(bench.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS demo.bench_events (facility_id text NOT NULL, unit text NOT NULL,"
            " cost numeric(12, 2) NOT NULL)"
        )
        conn.execute(POLICY.format(table="bench_events"))
        conn.execute("SELECT set_config('tessera.facility_id', '*', false)")
        conn.execute(
            "INSERT INTO demo.bench_events SELECT CASE WHEN g % 2 = 0 THEN 'north-general' ELSE 'south-clinic' END,"
            " 'unit ' || (g % 20), (g % 5000) / 10.0 FROM generate_series(1, 300000) AS g"
            " WHERE NOT EXISTS (SELECT 1 FROM demo.bench_events LIMIT 1)"
        )
        conn.execute("ANALYZE demo.bench_events")
        conn.execute("GRANT SELECT ON demo.bench_events TO tessera_reader")


def _cpu_ms_per_call(served: Served, run: Callable[[], h2load.Result], reply_bytes: int) -> tuple[h2load.Result, float]:
    """Runs the load; the server's CPU over it divided by every call it answered (warm-up too:
    the data received counts them)."""
    before = served.cpu_seconds()
    result = run()
    spent = served.cpu_seconds() - before
    calls = result.data_bytes // (reply_bytes + h2load.FRAME_PREFIX_BYTES)
    return result, round(spent * 1000 / max(calls, 1), 3)


def _served_count(served: Served, source: str) -> float:
    return served.total("tessera_widget_data_served_total", source=source)


def _source_seconds(served: Served) -> tuple[float, float]:
    """tessera_query_source_seconds' sum and count: what the calls spent at the data source."""
    return served.total("tessera_query_source_seconds_sum"), served.total("tessera_query_source_seconds_count")


def _tessera_configs() -> list[int | None]:
    """The serving models measured: one process, and the default (one per core)."""
    return [1, None]


def _cached(bench: Bench, full: bool, widget: w.Widget) -> list[dict[str, Any]]:
    md = bench.metadata("editor")
    request = w.GetWidgetDataRequest(widget_id=widget.id, parameter_values=_min_cost(0))
    reply = widget_pb2_grpc.WidgetServiceStub(bench.channel).GetWidgetData(request, metadata=md)
    payload = reply.SerializeToString()
    body = request.SerializeToString()
    seconds = 20.0 if full else 5.0
    cores = os.cpu_count() or 1

    def load(address: str, clients: int) -> Callable[[], h2load.Result]:
        return lambda: h2load.run_grpc(address, METHOD, body, metadata=md, clients=clients, duration=seconds).check(
            len(payload)
        )

    ceiling: dict[str, dict[int, h2load.Result]] = {"c16": {}, "c1": {}}
    # The transport's own CPU per call, measured as the server's: what a hit cannot cost less than.
    ceiling_cpu: dict[str, dict[int, float]] = {"c16": {}, "c1": {}}
    for processes in sorted({1, cores}):
        with bare_grpc(METHOD, payload, processes) as bare:
            for name, clients in (("c16", 16), ("c1", 1)):
                ceiling[name][processes], ceiling_cpu[name][processes] = _cpu_ms_per_call(
                    bare, load(bare.address, clients), len(payload)
                )
    measured: dict[str, dict[str, Any]] = {"c16": {}, "c1": {}}
    for processes in _tessera_configs():
        label = f"processes_{processes or 'default'}"
        with tessera_serve(bench.settings, processes) as served:
            first = widget_pb2_grpc.WidgetServiceStub(grpc.insecure_channel(served.address))
            warmed = first.GetWidgetData(request, metadata=md)
            assert warmed.SerializeToString() != b""
            hits_before = _served_count(served, "memory")
            for name, clients in (("c16", 16), ("c1", 1)):
                (result, cpu_ms), split = with_connection_split(
                    served,
                    functools.partial(_cpu_ms_per_call, served, load(served.address, clients), len(payload)),
                    after=h2load.DEFAULT_WARMUP_SECONDS + seconds / 2,
                )
                measured[name][label] = {
                    **result.figures(),
                    "server_cpu_ms_per_call": cpu_ms,
                    "connections_per_process": split,
                }
            measured["c16"][label]["memory_hits"] = _served_count(served, "memory") - hits_before
    best16 = max(ceiling["c16"].values(), key=lambda r: r.rps)
    best1 = min(ceiling["c1"].values(), key=lambda r: r.p50_ms)
    baseline_what = "bare grpc.aio process(es) answering the same serialized WidgetData, h2load, same run"

    def baseline(name: str) -> dict[str, Any]:
        return {
            "what": baseline_what,
            **{
                f"processes_{k}": {**v.figures(), "server_cpu_ms_per_call": ceiling_cpu[name][k]}
                for k, v in ceiling[name].items()
            },
        }

    def cpu_ratio(name: str) -> dict[str, float]:
        """Each serving model's CPU per call over the bare transport's with as many processes."""
        bare = {f"processes_{k}": v for k, v in ceiling_cpu[name].items()} | {
            "processes_default": ceiling_cpu[name][cores]
        }
        return {
            label: round(figures["server_cpu_ms_per_call"] / max(bare[label], 1e-6), 2)
            for label, figures in measured[name].items()
        }

    return [
        {
            "workload": "widget_data.cached_c16",
            "rows": reply.frame.row_count,
            "response_bytes": len(payload),
            "in_flight": 16,
            "rpc": measured["c16"],
            "baseline": baseline("c16"),
            "cpu_per_call_ratio_to_bare": cpu_ratio("c16"),
            "throughput_fraction_of_ceiling": {
                label: round(figures["rps"] / best16.rps, 3) for label, figures in measured["c16"].items()
            },
        },
        {
            "workload": "widget_data.cached_c1",
            "rows": reply.frame.row_count,
            "response_bytes": len(payload),
            "in_flight": 1,
            "rpc": measured["c1"],
            "baseline": baseline("c1"),
            "cpu_per_call_ratio_to_bare": cpu_ratio("c1"),
            "ratio_p50": {label: round(fig["p50_ms"] / best1.p50_ms, 2) for label, fig in measured["c1"].items()},
        },
    ]


def _cold(bench: Bench, full: bool, widget: w.Widget) -> dict[str, Any]:
    """force_refresh at one connection: every call executes the SQL (the single-flight lock,
    the query, writes to both tiers), against the SQL alone through psycopg. The two alternate
    in short rounds: the SQL's own time drifts by more than the overhead measured (autovacuum,
    caches, the other core), so rounds apart would compare two different databases."""
    md = bench.metadata("editor")
    request = w.GetWidgetDataRequest(widget_id=widget.id, force_refresh=True)
    reply = widget_pb2_grpc.WidgetServiceStub(bench.channel).GetWidgetData(request, metadata=md)
    rounds = 40 if full else 16
    with psycopg.connect(bench.dsn) as direct, tessera_serve(bench.settings) as served:
        # As the server runs user SQL: the reader role (under the facility policy) and scope.
        direct.execute(f"SET ROLE {bench.settings.query_role}")
        direct.execute("SELECT set_config('tessera.facility_id', 'north-general', false)")

        def raw() -> None:
            with direct.cursor() as cur:
                cur.execute(COLD_SQL)
                cur.fetchall()

        baseline_seconds: list[float] = []
        served_runs: list[h2load.Result] = []
        cpu_ms: list[float] = []
        paired: list[float] = []  # each round's served p50 less its own SQL p50
        in_call: list[float] = []  # each round's served mean less its calls' own time at the source
        for _ in range(rounds):
            sql = sample(raw, 5, warmup=1)
            baseline_seconds += sql
            source_before = _source_seconds(served)
            run, cpu = _cpu_ms_per_call(
                served,
                lambda: h2load.run_grpc(
                    served.address,
                    METHOD,
                    request.SerializeToString(),
                    metadata=md,
                    duration=0.5,
                    warmup=0.1,
                    # A fresh computed_at may take a byte or two fewer: half a reply per call still
                    # proves that every call carried one (an error carries none).
                ).check(reply.ByteSize() // 2),
                reply.ByteSize(),
            )
            served_runs.append(run)
            cpu_ms.append(cpu)
            paired.append(run.p50_ms - statistics.median(sql) * 1000)
            source_after = _source_seconds(served)
            at_source = (source_after[0] - source_before[0]) / max(source_after[1] - source_before[1], 1)
            in_call.append(run.mean_ms - at_source * 1000)
    result = h2load.combined(served_runs)
    baseline = summary(baseline_seconds)
    return {
        "workload": "widget_data.cold",
        "rows": reply.frame.row_count,
        "rounds": rounds,
        "rpc": {**result.figures(), "server_cpu_ms_per_call": round(statistics.median(cpu_ms), 3)},
        "baseline": {"what": "the SQL alone: psycopg, as the query role, same database and facility", **baseline},
        "overhead_ms_p50": round(result.p50_ms - baseline["p50_ms"], 2),
        "overhead_ms_mean": round(result.mean_ms - baseline["mean_ms"], 2),
        # The median over rounds of each round's difference: what drift between rounds leaves out.
        "overhead_ms_paired": round(statistics.median(paired), 2),
        # The same calls' own time at the data source (tessera_query_source_seconds) taken from
        # their mean: the server's share, free of the SQL's drift between calls; the median over
        # rounds. The round trip's setup, checks and end are in it, as the baseline has none.
        "overhead_ms_in_call": round(statistics.median(in_call), 2),
        "ratio_p50": round(result.p50_ms / baseline["p50_ms"], 2),
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


def _soak(bench: Bench, full: bool, widget: w.Widget) -> dict[str, Any]:
    """Cached reads at 16 in flight for 10 minutes (--full; TESSERA_BENCH_SOAK_SECONDS to choose,
    60 s otherwise): the server's RSS sampled along the way should flatten after the warm-up."""
    md = bench.metadata("editor")
    request = w.GetWidgetDataRequest(widget_id=widget.id, parameter_values=_min_cost(0))
    reply = widget_pb2_grpc.WidgetServiceStub(bench.channel).GetWidgetData(request, metadata=md)
    seconds = float(os.environ.get("TESSERA_BENCH_SOAK_SECONDS") or (600 if full else 60))
    every = max(seconds / 20, 1.0)
    curve: list[tuple[float, float]] = []
    with tessera_serve(bench.settings) as served, ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        running = pool.submit(
            h2load.run_grpc,
            served.address,
            METHOD,
            request.SerializeToString(),
            metadata=md,
            clients=16,
            duration=seconds,
            warmup=1.0,
        )
        while not running.done():
            curve.append((round(time.monotonic() - started, 1), round(served.rss_bytes() / 2**20, 1)))
            time.sleep(every)
        result = running.result().check(reply.ByteSize())
    half = [mb for at, mb in curve if at >= seconds / 2]
    return {
        "workload": "widget_data.soak",
        "seconds": seconds,
        "rpc": result.figures(),
        "rss_mb_curve": curve,
        "rss_mb_growth_second_half": round(max(half) - min(half), 1) if half else None,
    }


def _cached_widget(bench: Bench) -> w.Widget:
    return _setup(bench, CACHED_SQL, [query_pb2.ParameterSpec(name="min_cost", type=query_pb2.PARAMETER_TYPE_INT)])


def run_cached(bench: Bench, full: bool) -> list[dict[str, Any]]:
    return _cached(bench, full, _cached_widget(bench))


def run_cold(bench: Bench, full: bool) -> list[dict[str, Any]]:
    _install_cold_table(bench)
    return [_cold(bench, full, _setup(bench, COLD_SQL, []))]


def run_soak(bench: Bench, full: bool) -> list[dict[str, Any]]:
    return [_soak(bench, full, _cached_widget(bench))]


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    small = _setup(bench, SMALL_SQL, [query_pb2.ParameterSpec(name="min_cost", type=query_pb2.PARAMETER_TYPE_INT)])
    return [*run_cached(bench, full), *run_cold(bench, full), _stampede(bench, full, small)]
