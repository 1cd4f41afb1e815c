"""Issue 12: a cached GetWidgetData over REST (HTTP/JSON over h2c) against the same read over
gRPC, same `tessera serve` process (its own process), same widget, same run, with h2load (Debian's
nghttp2-client) and 16 calls in flight for both. The gRPC read is the baseline; the target is REST
costing no more than 1.3x it.

Rounds alternate (gRPC, REST, REST with gzip, Connect JSON, gRPC, ...) so that the load of others
on a shared machine hits every path alike; medians are reported. Each round also reads the server
process's CPU time from /proc: CPU per call is the figure others' load distorts least, so
`cost_ratio_cpu` is the headline and throughput and latency ratios come with it. `rest` is what
h2load sends by default (no Accept-Encoding), the same JSON bytes a shell script gets; `rest_gzip`
asks for gzip as browsers do (the body is compressed past 1 KiB); `connect_json` is the Connect
protocol's JSON on the same port (no routing or query transcoding), to tell the REST-specific
share apart. Before the load, the REST answer is checked to be the gRPC answer. The machine's load
average is reported before and after."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
from google.protobuf import json_format

from bench.harness import SECRET, Bench
from bench.widget_data import _setup
from dashboard.v1 import widget_pb2 as w
from dashboard.v1 import widget_pb2_grpc

SQL = "SELECT unit, count(*) AS admissions, sum(cost) AS cost FROM demo.admissions GROUP BY unit ORDER BY unit"
CLIENTS = 16
RPC = "/dashboard.v1.WidgetService/GetWidgetData"
REST_PATH = "/api/v1/dashboard/widgets/data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serve_process(bench: Bench, processes: int | None = None) -> Iterator[tuple[int, int, int]]:
    """`tessera serve` (`--processes N` when given) in its own process tree on the bench's
    database and Redis: (grpc port, http port, pid of the `tessera serve` process)."""
    grpc_port, http_port = _free_port(), _free_port()
    env = {
        # No saturation shedding unless asked (load_ceiling does): h2load counts a refusal (HTTP
        # 200, grpc-status 8) as an answer, so a shed share would pass for cheap, fast calls.
        "TESSERA_SHED_MIN_IDLE": "0",
        **os.environ,
        "DATABASE_URL": bench.settings.database_url,
        "REDIS_URL": bench.settings.redis_url,
        "TESSERA_REDIS_PREFIX": bench.settings.redis_prefix,
        "TESSERA_BROKER_KEY_PREFIX": bench.settings.broker_key_prefix,
        "TESSERA_JWT_SECRET": SECRET,
        "TESSERA_PORT": str(grpc_port),
        "TESSERA_HTTP_PORT": str(http_port),
        "TESSERA_METRICS_PORT": "-1",
        "TESSERA_LOG_LEVEL": "WARNING",
    }
    # One server process, so every call's CPU lands in the process measured (and profiled).
    command = [
        str(Path(sys.executable).parent / "tessera"),
        "serve",
        *(["--processes", str(processes)] if processes else []),
    ]
    proc = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as a, socket.socket() as b:
                if a.connect_ex(("127.0.0.1", grpc_port)) == 0 and b.connect_ex(("127.0.0.1", http_port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("tessera serve did not start")
        yield grpc_port, http_port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def _served(bench: Bench) -> Iterator[tuple[int, int]]:
    """`tessera serve` in its own process: (grpc, http) ports."""
    with _serve_process(bench) as (grpc_port, http_port, _pid):
        yield grpc_port, http_port


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its children (all their threads)."""
    parent = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in (parent, *parent.children(recursive=True)))


def _loop_cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process's main thread: the event loop, where all the
    Python of a call runs (gRPC's C core does its HTTP/2 on threads of its own, hypercorn on
    this one), so it bounds the throughput of one process."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy sampling the server while the block runs, collapsed stacks written to `out`
    (nothing when `out` is None)."""
    if out is None:
        yield
        return
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
                            "--output", str(out), "--nonblocking"], stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(1)  # attached
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def _h2load(url: str, body: bytes, headers: list[str], requests: int, clients: int, h1: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data, log = Path(tmp) / "body", Path(tmp) / "log"
        data.write_bytes(body)
        args = ["h2load", "-n", str(requests), "-c", str(clients), "-m", "1", "-d", str(data), "--log-file", str(log)]
        if h1:
            args.append("--h1")
        for header in headers:
            args += ["-H", header]
        out = subprocess.run([*args, url], capture_output=True, text=True, timeout=600, check=True).stdout
        rows = [line.split("\t") for line in log.read_text().splitlines() if line]
    statuses = {row[1] for row in rows}
    micros = sorted(int(row[2]) for row in rows)
    finished = next(line for line in out.splitlines() if line.startswith("finished in"))
    rps = float(finished.split(",")[1].split()[0])
    return {
        "throughput_rps": round(rps),
        "p50_ms": round(statistics.median(micros) / 1000, 3),
        "p99_ms": round(micros[min(len(micros) - 1, int(len(micros) * 0.99))] / 1000, 3),
        "n": len(micros),
        "http_statuses": sorted(statuses),
    }


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _check_same_answer(base: str, token: str, body: bytes, reply: w.WidgetData) -> int:
    """The REST answer is the gRPC answer (else the load would measure errors); its JSON size."""
    with httpx.Client(base_url=base, timeout=30) as client:
        answer = client.post(
            REST_PATH, content=body, headers={"authorization": token, "content-type": "application/json"}
        )
    assert answer.status_code == 200, answer.text
    assert json_format.ParseDict(answer.json(), w.WidgetData()) == reply, answer.text[:500]
    return len(answer.content)


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    if shutil.which("h2load") is None:
        return [{"workload": "rest_vs_grpc", "skipped": "h2load not installed (apt-get install nghttp2-client)"}]
    widget = _setup(bench, SQL, [])
    md = bench.metadata("editor")
    token = md[0][1]
    request = w.GetWidgetDataRequest(widget_id=widget.id)
    # Many short rounds rather than a few long ones: on a shared machine the load of others
    # comes and goes, and the median of interleaved rounds shrugs most of it off.
    requests, round_count = (6000, 7) if full else (2000, 5)
    auth = f"authorization: {token}"
    payload = request.SerializeToString()
    framed = b"\x00" + struct.pack(">I", len(payload)) + payload
    json_body = json.dumps({"widgetId": widget.id}).encode()
    load_before = _loadavg()
    # TESSERA_BENCH_PROFILE=<dir>: collapsed py-spy stacks of the server per path (py-spy on PATH).
    profile_dir = Path(os.environ["TESSERA_BENCH_PROFILE"]) if os.environ.get("TESSERA_BENCH_PROFILE") else None
    rounds: dict[str, list[dict[str, Any]]] = {"grpc": [], "rest": [], "rest_gzip": [], "connect_json": []}
    with _serve_process(bench, processes=1) as (grpc_port, http_port, pid):
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = widget_pb2_grpc.WidgetServiceStub(channel)
            stub.GetWidgetData(request, metadata=md)
            reply = stub.GetWidgetData(request, metadata=md)  # now a tier-1 hit
        http = f"http://127.0.0.1:{http_port}"
        json_bytes = _check_same_answer(http, token, json_body, reply)
        rest_headers = [auth, "content-type: application/json"]
        loads: dict[str, tuple[str, bytes, list[str]]] = {
            "grpc": (f"http://127.0.0.1:{grpc_port}{RPC}", framed,
                     [auth, "content-type: application/grpc", "te: trailers"]),
            "rest": (f"{http}{REST_PATH}", json_body, rest_headers),
            "rest_gzip": (f"{http}{REST_PATH}", json_body, [*rest_headers, "accept-encoding: gzip"]),
            "connect_json": (f"{http}{RPC}", json_body,
                             [auth, "content-type: application/json", "connect-protocol-version: 1"]),
        }  # fmt: skip
        for url, body, headers in loads.values():  # warm every path
            _h2load(url, body, headers, 300, 4, False)
        for _ in range(round_count):
            for name, (url, body, headers) in loads.items():
                before, loop_before = _cpu_seconds(pid), _loop_cpu_seconds(pid)
                measured = _h2load(url, body, headers, requests, CLIENTS, False)
                measured["server_cpu_us_per_call"] = round((_cpu_seconds(pid) - before) / measured["n"] * 1e6)
                measured["loop_cpu_us_per_call"] = round((_loop_cpu_seconds(pid) - loop_before) / measured["n"] * 1e6)
                rounds[name].append(measured)
        if profile_dir is not None:  # one more round of each under py-spy, not measured
            for name, (url, body, headers) in loads.items():
                with _profiled(pid, profile_dir / f"{name}.txt"):
                    _h2load(url, body, headers, requests, CLIENTS, False)
    load_after = _loadavg()
    keys = ("throughput_rps", "p50_ms", "p99_ms", "server_cpu_us_per_call", "loop_cpu_us_per_call")
    figures = {name: {key: _median([r[key] for r in found]) for key in keys} for name, found in rounds.items()}
    baseline = figures["grpc"]
    results: list[dict[str, Any]] = []
    for name in ("rest", "rest_gzip", "connect_json"):
        measured = figures[name]
        results.append(
            {
                "workload": f"rest_vs_grpc.cache_hit.{name}",
                "response_bytes_protobuf": reply.ByteSize(),
                "response_bytes_json": json_bytes,
                "clients": CLIENTS,
                "requests_per_round": requests,
                name: {
                    **measured,
                    "http_statuses": sorted({s for r in rounds[name] for s in r["http_statuses"]}),
                    "cpu_us_per_round": [r["server_cpu_us_per_call"] for r in rounds[name]],
                    "loop_cpu_us_per_round": [r["loop_cpu_us_per_call"] for r in rounds[name]],
                },
                "baseline": {
                    "what": "the same cached GetWidgetData over gRPC, same server process, h2load, same rounds",
                    **baseline,
                    "cpu_us_per_round": [r["server_cpu_us_per_call"] for r in rounds["grpc"]],
                },
                "cost_ratio_cpu": round(measured["server_cpu_us_per_call"] / baseline["server_cpu_us_per_call"], 2),
                "cost_ratio_loop_cpu": round(measured["loop_cpu_us_per_call"] / baseline["loop_cpu_us_per_call"], 2),
                "cost_ratio_throughput": round(baseline["throughput_rps"] / measured["throughput_rps"], 2),
                "ratio_p50": round(measured["p50_ms"] / baseline["p50_ms"], 2),
                "ratio_p99": round(measured["p99_ms"] / baseline["p99_ms"], 2),
                "target": "cost_ratio_cpu <= 1.3" if name == "rest" else "reference",
                "rounds": len(rounds[name]),
                "loadavg_before_after": [load_before, load_after],
            }
        )
    return results
