"""Issue 12: a cached GetWidgetData over REST (HTTP/JSON, h2c and HTTP/1.1) against the same read
over gRPC, same run, same widget, same payload, with `tessera serve` in its own process and h2load
(Debian's nghttp2-client) as the load generator for both. The baseline is the gRPC read; the
target is REST costing no more than 1.3x it (latency and throughput)."""

from __future__ import annotations

import json
import os
import shutil
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

from bench.harness import SECRET, Bench
from bench.widget_data import _setup
from dashboard.v1 import widget_pb2 as w
from dashboard.v1 import widget_pb2_grpc

SQL = "SELECT unit, count(*) AS admissions, sum(cost) AS cost FROM demo.admissions GROUP BY unit ORDER BY unit"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _served(bench: Bench) -> Iterator[tuple[int, int]]:
    """`tessera serve` in its own process on the bench's database and Redis: (grpc, http) ports."""
    grpc_port, http_port = _free_port(), _free_port()
    env = {
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
    proc = subprocess.Popen([str(Path(sys.executable).parent / "tessera"), "serve"], env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as a, socket.socket() as b:
                if a.connect_ex(("127.0.0.1", grpc_port)) == 0 and b.connect_ex(("127.0.0.1", http_port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("tessera serve did not start")
        yield grpc_port, http_port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    if shutil.which("h2load") is None:
        return [{"workload": "rest_vs_grpc", "skipped": "h2load not installed (apt-get install nghttp2-client)"}]
    widget = _setup(bench, SQL, [])
    md = bench.metadata("editor")
    token = md[0][1]
    request = w.GetWidgetDataRequest(widget_id=widget.id)
    requests = 20000 if full else 4000
    clients = 16
    results: list[dict[str, Any]] = []
    with _served(bench) as (grpc_port, http_port):
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = widget_pb2_grpc.WidgetServiceStub(channel)
            stub.GetWidgetData(request, metadata=md)
            reply = stub.GetWidgetData(request, metadata=md)  # now a tier-1 hit
        auth = f"authorization: {token}"
        payload = request.SerializeToString()
        framed = b"\x00" + struct.pack(">I", len(payload)) + payload
        grpc_url = f"http://127.0.0.1:{grpc_port}/dashboard.v1.WidgetService/GetWidgetData"
        rest_url = f"http://127.0.0.1:{http_port}/api/v1/dashboard/widgets/data"
        body = json.dumps({"widgetId": widget.id}).encode()
        rest_headers = [auth, "content-type: application/json"]
        # Warm both paths, then measure each.
        _h2load(grpc_url, framed, [auth, "content-type: application/grpc", "te: trailers"], 300, 4, False)
        _h2load(rest_url, body, rest_headers, 300, 4, False)
        baseline = _h2load(
            grpc_url, framed, [auth, "content-type: application/grpc", "te: trailers"], requests, clients, False
        )
        h2c = _h2load(rest_url, body, rest_headers, requests, clients, False)
        # (h2load's HTTP/1.1 mode rejects hypercorn's reason-less status line, so h2c only.)
    for name, measured in (("h2c", h2c),):
        results.append(
            {
                "workload": f"rest_vs_grpc.cache_hit.{name}",
                "response_bytes_protobuf": reply.ByteSize(),
                "rest": measured,
                "baseline": {
                    "what": "the same cached GetWidgetData over gRPC, same server process, h2load",
                    **baseline,
                },
                "cost_ratio_throughput": round(baseline["throughput_rps"] / measured["throughput_rps"], 2),
                "ratio_p50": round(measured["p50_ms"] / baseline["p50_ms"], 2),
                "ratio_p99": round(measured["p99_ms"] / baseline["p99_ms"], 2),
                "target": "cost_ratio_throughput <= 1.3",
                "clients": clients,
            }
        )
    return results
