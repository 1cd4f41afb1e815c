"""Issue 16: cached widget-data reads through the TypeScript SDK over gRPC (Node.js) against the
Python client (`tessera_client.AsyncClient`), same server, same widget, same run. Each client
runs in a process of its own with 16 calls in flight; the server (in this process) answers every
call from tier 1. The Python client is the baseline: the ratios are Node / Python.
Rounds alternate (Python, Node, Python, Node) so that drift on a shared machine hits both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.harness import Bench
from bench.widget_data import _setup
from dashboard.v1 import widget_pb2 as w
from dashboard.v1 import widget_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
SQL = "SELECT unit, count(*) AS admissions, sum(cost) AS cost FROM demo.admissions GROUP BY unit ORDER BY unit"
CONCURRENCY = 16


def _build_node() -> Path:
    done = subprocess.run(
        [str(ROOT / "node_modules/.bin/tsc"), "-p", "clients/ts"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"tsc failed: {done.stdout}{done.stderr}")
    return ROOT / "build/ts/bench/node_load.js"


def _run(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    values = sorted(r[key] for r in rounds)
    return (
        values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2
    )


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    script = _build_node()
    widget = _setup(bench, SQL, [])
    token = bench.metadata("editor")[0][1].removeprefix("Bearer ")
    stub = widget_pb2_grpc.WidgetServiceStub(bench.channel)
    stub.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=bench.metadata("editor"))
    total = 20000 if full else 4000
    args = [bench.server.address, token, widget.id, str(CONCURRENCY), str(total)]
    python: list[dict[str, Any]] = []
    node: list[dict[str, Any]] = []
    for _ in range(3 if full else 2):
        python.append(_run([sys.executable, "-m", "bench.client_load", *args]))
        node.append(_run(["node", str(script), *args]))
    figures = {
        name: {key: _median(rounds, key) for key in ("throughput_rps", "p50_ms", "p99_ms", "mean_ms")}
        for name, rounds in (("node_sdk", node), ("python_client", python))
    }
    return [
        {
            "workload": "clients.widget_data_cache_hit",
            "concurrency": CONCURRENCY,
            "calls_per_round": total,
            "rounds": len(node),
            "node_sdk": {**figures["node_sdk"], "rounds": node},
            "baseline": {
                "what": "tessera_client.AsyncClient (Python, grpc.aio), its own process, same server/widget/run",
                **figures["python_client"],
                "rounds": python,
            },
            "throughput_ratio": round(
                figures["node_sdk"]["throughput_rps"] / figures["python_client"]["throughput_rps"], 2
            ),
            "ratio_p50": round(figures["node_sdk"]["p50_ms"] / figures["python_client"]["p50_ms"], 2),
            "ratio_p99": round(figures["node_sdk"]["p99_ms"] / figures["python_client"]["p99_ms"], 2),
        }
    ]
