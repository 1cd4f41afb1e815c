"""Soak: mixed traffic across two `tessera serve` processes for a while (quick: 45 s; --full: 30
minutes; `tests/reliability/test_soak_slice.py` runs a 45-second slice in CI), through the
client's round robin, with one worker for materializations:

* cached reads (GetWidgetData of a warm widget), cold reads (a parameter value never seen),
  writes with etags (UpdateDashboard), lists, and now and then a MaterializeDashboard followed
  to its end through its watch stream;
* every `window` seconds: p50/p99 per rpc over the window, errors, and for each server process
  its RSS, open file descriptors and PostgreSQL connections (pg_stat_activity).

The client retries refusals (RESOURCE_EXHAUSTED with SERVER_OVERLOADED or RATE_LIMITED) of every
rpc, so load shedding shows as waiting, not as errors: each window and the summary count the
retried refusals per rpc and reason (`retried_refusals`; the client's `on_retry`), and the summary
gives each rpc's p50/p99 over the whole run. `TESSERA_BENCH_MIXED_SOAK_SECONDS` sets the length
(e.g. 180); the servers get this process's environment, so `TESSERA_SHED_MIN_IDLE=0` runs them
without saturation shedding.

What a healthy run shows: zero errors, and RSS, descriptors and connections flat after the first
windows (warm-up). Output: one JSON object per window, then a summary (first vs last window).

Measured 2026-12-06, 180 s each (quick windows of 5 s), one run each on the 2-core machine shared
with other work (load average 2-6, this branch's own Node and Go tests running beside part of
both), p99 / p50 over the whole run:

    TESSERA_SHED_MIN_IDLE   errors  retried refusals (SERVER_OVERLOADED)          UpdateDashboard   cached GetWidgetData
    0                       0       none                                          178 / 40 ms       82 / 12 ms
    0.05                    0       915: GetWidgetData 396, ListDashboards 340,   203 / 23 ms       153 / 7.7 ms
                                    GetDashboard 92, UpdateDashboard 87

With shedding every refused call (87 etag updates among them) was retried and served: no error.
Its cost is in the tail: a refused call waits its advice (50-100 ms) plus up to 100 ms of jitter
before the retry, so p99 rose while p50 fell; more calls were served in the same 180 s (1,714
updates and 12,738 cached reads against 1,267 and 11,108), though one run each on a noisy
machine settles nothing. RSS (about 202 MiB per server), descriptors and database connections
stayed flat in both.

A second pair right after, nothing of this branch beside it (load average 2-23: other work rose
and fell during it), p99 / p50:

    0                       0       none                                          63 / 19 ms        30 / 5.9 ms
    0.05                    0       1,335: GetWidgetData 601, ListDashboards 487, 182 / 18 ms       163 / 6.0 ms
                                    GetDashboard 122, UpdateDashboard 118,
                                    MaterializeDashboard 7

Again no error with shedding (every refusal retried, 118 etag updates and 7 materializations
among them), medians alike, but here the tail is clearly worse with it (a refusal's wait is 50-200
ms) and fewer cached reads were served (15,350 against 21,240): on this machine the loop's idle
share dips under 5% often enough under this mixed traffic that shedding refuses calls a busy but
not overloaded server would have answered sooner. What shedding buys is bounded waits past the
ceiling (bench/load_ceiling.py), not speed below it, so it is off by default (0) and an
operator whose servers run past their ceiling turns it on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import Bench
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.devtools.embedded import free_port
from tessera_client import ApiError, Client, is_refusal
from workers.testing import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
FACILITY = "north-general"
SQL = "SELECT :v AS v, count(*) AS n FROM demo.admissions"


def _env(bench: Bench, port: int) -> dict[str, str]:
    settings = bench.settings
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "TESSERA_REDIS_PREFIX": settings.redis_prefix,
        "TESSERA_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "TESSERA_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "TESSERA_HOST": "127.0.0.1",
        "TESSERA_PORT": str(port),
        # One process per server, so the figures read off its pid are the serving process's own
        # (by default `serve` supervises one child per core).
        "TESSERA_SERVER_PROCESSES": "1",
        "TESSERA_HTTP_PORT": "-1",
        "TESSERA_METRICS_PORT": "-1",
        "TESSERA_LOG_LEVEL": "WARNING",
        "TESSERA_SHUTDOWN_GRACE": "1",
    }


def _process_figures(pid: int) -> dict[str, int]:
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return {"rss_mib": rss_kib // 1024, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def _connections(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE 'tessera%' AND application_name NOT LIKE 'tessera-worker%'"
        ).fetchone()
    return int(row[0]) if row else 0


class Traffic:
    def __init__(self, address: str, token: str) -> None:
        self.client = Client(address, token=token, on_retry=self._retried)
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.refusals: Counter[tuple[str, str]] = Counter()  # (rpc, reason): refusals the client retried
        self.lock = threading.Lock()

    def _retried(self, method: str, error: ApiError, delay: float) -> None:
        if is_refusal(error):
            with self.lock:
                self.refusals[(method.rsplit("/", 1)[-1], error.reason)] += 1

    def timed(self, name: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            return call()
        except Exception as exc:
            with self.lock:
                self.errors.append(f"{name}: {exc!r}"[:300])
            return None
        finally:
            with self.lock:
                self.latencies[name].append(time.perf_counter() - started)

    def take(self) -> tuple[dict[str, list[float]], list[str], Counter[tuple[str, str]]]:
        with self.lock:
            taken, errors, refusals = dict(self.latencies), list(self.errors), self.refusals.copy()
            self.latencies.clear()
            self.errors.clear()
            self.refusals.clear()
        return taken, errors, refusals


def _by_rpc(refusals: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for (rpc, reason), n in sorted(refusals.items()):
        out[rpc][reason] = n
    return dict(out)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    duration, window = (1800.0, 60.0) if full else (45.0, 5.0)
    duration = float(os.environ.get("TESSERA_BENCH_MIXED_SOAK_SECONDS", duration))
    return soak(bench, duration, window)


def soak(bench: Bench, duration: float, window: float) -> list[dict[str, Any]]:
    """Windows of figures, then the summary (first window after warm-up against the last)."""
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"],
            cwd=ROOT,
            env=_env(bench, port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for port in ports
    ]
    worker = WorkerProcess(_env(bench, 0), queues="materialize").start(timeout=120)
    token = bench.metadata("admin", FACILITY)[0][1].removeprefix("Bearer ")
    address = ",".join(f"127.0.0.1:{p}" for p in ports)
    results: list[dict[str, Any]] = []
    everything: dict[str, list[float]] = defaultdict(list)  # every latency of the run, per rpc
    refused: Counter[tuple[str, str]] = Counter()
    try:
        traffic = Traffic(address, token)
        client = traffic.client
        deadline = time.monotonic() + 120
        while True:  # both servers answering
            try:
                for _ in range(4):
                    next(iter(client.dashboards.list(page_size=1)), None)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        spec = q.ParameterSpec(name="v", type=q.PARAMETER_TYPE_STRING)
        query = client.queries.create(q.Query(facility_id=FACILITY, name="soak", sql=SQL, parameters=[spec]))
        board = client.dashboards.create(d.Dashboard(facility_id=FACILITY, title="soak"))
        widget = client.widgets.create(
            w.Widget(
                dashboard_id=board.id,
                title="soak",
                position=w.GridPosition(x=0, y=0, width=4, height=2),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=query.id),
            )
        )
        stop = threading.Event()

        def reads() -> None:
            while not stop.is_set():
                traffic.timed("GetWidgetData(hit)", lambda: client.widgets.data(widget.id))
                traffic.timed("ListDashboards", lambda: next(iter(client.dashboards.list(page_size=10)), None))

        def cold_and_writes() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                value = uuid.uuid4().hex[:8]
                traffic.timed(
                    "GetWidgetData(cold)", lambda v=value: client.widgets.data(widget.id, parameters={"v": v})
                )
                current = traffic.timed("GetDashboard", lambda: client.dashboards.get(board.id))
                if current is not None:
                    changed = d.Dashboard(id=board.id, title=f"soak {n}", etag=current.etag)
                    traffic.timed("UpdateDashboard", lambda c=changed: client.dashboards.update(c, ["title"]))
                if n % 20 == 0:
                    traffic.timed("Materialize+watch", lambda: client.widgets.materialize_and_wait(board.id))

        threads = [threading.Thread(target=f, daemon=True) for f in (reads, reads, cold_and_writes)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        while time.monotonic() - started < duration:
            time.sleep(window)
            latencies, errors, refusals = traffic.take()
            for name, values in latencies.items():
                everything[name] += values
            refused += refusals
            results.append(
                {
                    "workload": "soak",
                    "at_s": round(time.monotonic() - started),
                    "rpcs": {
                        name: {
                            "n": len(v),
                            "p50_ms": round(_percentile(v, 0.5), 2),
                            "p99_ms": round(_percentile(v, 0.99), 2),
                        }
                        for name, v in sorted(latencies.items())
                        if v
                    },
                    "errors": len(errors),
                    "error_samples": errors[:3],
                    "retried_refusals": _by_rpc(refusals),
                    "servers": [_process_figures(s.pid) for s in servers],
                    "db_connections": _connections(bench.dsn),
                }
            )
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        client.close()
    finally:
        worker.stop()
        for server in servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
        for server in servers:
            server.wait(timeout=30)
    if results:
        first, last = results[min(1, len(results) - 1)], results[-1]  # the first window is warm-up
        results.append(
            {
                "workload": "soak summary",
                "duration_s": duration,
                "windows": len(results),
                "errors": sum(r["errors"] for r in results),
                "shed_min_idle": os.environ.get("TESSERA_SHED_MIN_IDLE", "default"),
                "retried_refusals": _by_rpc(refused),
                "rpcs": {
                    name: {"n": len(v), "p50_ms": _percentile(v, 0.5), "p99_ms": _percentile(v, 0.99)}
                    for name, v in sorted(everything.items())
                    if v
                },
                "load_average": [round(x, 1) for x in os.getloadavg()],
                "rss_mib_after_warmup": [s["rss_mib"] for s in first["servers"]],
                "rss_mib_at_end": [s["rss_mib"] for s in last["servers"]],
                "fds_after_warmup": [s["fds"] for s in first["servers"]],
                "fds_at_end": [s["fds"] for s in last["servers"]],
                "db_connections_after_warmup": first["db_connections"],
                "db_connections_at_end": last["db_connections"],
            }
        )
    return results
