"""Issue 16: a cached GetWidgetData over the browser protocols (Connect unary in binary proto and in
JSON, gRPC-Web binary) against the same read over gRPC: same `tessera serve` process (its own
process), same widget, same run, h2load (Debian's nghttp2-client) with 16 calls in flight for
every protocol. The gRPC read is the baseline; rounds alternate (gRPC, Connect proto, Connect
JSON, gRPC-Web, ...) so that drift on a shared machine hits all of them; medians are reported.
Besides throughput and latency (which a loaded machine distorts a lot), each round reads the
server process's CPU time from /proc: CPU per call is the figure others' load distorts least.
Before the load, each protocol's answer is checked to be the gRPC answer."""

from __future__ import annotations

import base64
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import grpc
import httpx

from bench.harness import Bench
from bench.rest_vs_grpc import _h2load, _served
from bench.widget_data import _setup
from dashboard.v1 import widget_pb2 as w
from dashboard.v1 import widget_pb2_grpc

SQL = "SELECT unit, count(*) AS admissions, sum(cost) AS cost FROM demo.admissions GROUP BY unit ORDER BY unit"
CLIENTS = 16
RPC = "/dashboard.v1.WidgetService/GetWidgetData"


def _frame(payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def _check_same_answer(base: str, token: str, request: w.GetWidgetDataRequest, reply: w.WidgetData) -> None:
    """Each browser protocol answers what gRPC answered (else the load would measure errors)."""
    auth = {"authorization": token}
    with httpx.Client(base_url=base, timeout=30) as client:
        proto = client.post(RPC, content=request.SerializeToString(),
                            headers={**auth, "content-type": "application/proto"})  # fmt: skip
        assert proto.status_code == 200 and w.WidgetData.FromString(proto.content) == reply, proto.text
        json_answer = client.post(RPC, json={"widgetId": request.widget_id}, headers=auth)
        assert json_answer.status_code == 200 and json_answer.json()["widgetId"] == request.widget_id
        web = client.post(RPC, content=_frame(request.SerializeToString()),
                          headers={**auth, "content-type": "application/grpc-web+proto"})  # fmt: skip
        length = struct.unpack(">I", web.content[1:5])[0]
        assert w.WidgetData.FromString(web.content[5 : 5 + length]) == reply
        assert b"grpc-status: 0" in web.content[5 + length :], base64.b64encode(web.content[-80:])


def _server_pid() -> int:
    """The `tessera serve` child of this process (started by rest_vs_grpc._served)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"serve" in command:
            return int(entry.name)
    raise RuntimeError("no tessera serve child process")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    values = sorted(r[key] for r in rounds)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    if shutil.which("h2load") is None:
        return [{"workload": "browser_vs_grpc", "skipped": "h2load not installed (apt-get install nghttp2-client)"}]
    widget = _setup(bench, SQL, [])
    md = bench.metadata("editor")
    token = md[0][1]
    request = w.GetWidgetDataRequest(widget_id=widget.id)
    # Many short rounds rather than a few long ones: on a shared machine the load of others
    # comes and goes, and the median of interleaved rounds shrugs most of it off.
    requests, round_count = (6000, 7) if full else (1500, 5)
    auth = f"authorization: {token}"
    payload = request.SerializeToString()
    rounds: dict[str, list[dict[str, Any]]] = {"grpc": [], "connect_proto": [], "connect_json": [], "grpc_web": []}
    with _served(bench) as (grpc_port, http_port):
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = widget_pb2_grpc.WidgetServiceStub(channel)
            stub.GetWidgetData(request, metadata=md)
            reply = stub.GetWidgetData(request, metadata=md)  # now a tier-1 hit
        http = f"http://127.0.0.1:{http_port}"
        _check_same_answer(http, token, request, reply)
        json_body = ('{"widgetId": "%s"}' % widget.id).encode()  # noqa: UP031  (a fixed JSON body)
        loads: dict[str, tuple[str, bytes, list[str]]] = {
            "grpc": (f"http://127.0.0.1:{grpc_port}{RPC}", _frame(payload),
                     [auth, "content-type: application/grpc", "te: trailers"]),
            "connect_proto": (f"{http}{RPC}", payload,
                              [auth, "content-type: application/proto", "connect-protocol-version: 1"]),
            "connect_json": (f"{http}{RPC}", json_body,
                             [auth, "content-type: application/json", "connect-protocol-version: 1"]),
            "grpc_web": (f"{http}{RPC}", _frame(payload),
                         [auth, "content-type: application/grpc-web+proto", "x-grpc-web: 1"]),
        }  # fmt: skip
        for url, body, headers in loads.values():  # warm every path
            _h2load(url, body, headers, 300, 4, False)
        pid = _server_pid()
        for _ in range(round_count):
            for name, (url, body, headers) in loads.items():
                before = _cpu_seconds(pid)
                measured = _h2load(url, body, headers, requests, CLIENTS, False)
                measured["server_cpu_us_per_call"] = round((_cpu_seconds(pid) - before) / measured["n"] * 1e6)
                rounds[name].append(measured)
    figures = {
        name: {key: _median(found, key) for key in ("throughput_rps", "p50_ms", "p99_ms", "server_cpu_us_per_call")}
        for name, found in rounds.items()
    }
    baseline = figures["grpc"]
    results: list[dict[str, Any]] = []
    for name in ("connect_proto", "connect_json", "grpc_web"):
        measured = figures[name]
        results.append(
            {
                "workload": f"browser_vs_grpc.cache_hit.{name}",
                "response_bytes_protobuf": reply.ByteSize(),
                "clients": CLIENTS,
                "requests_per_round": requests,
                name: {**measured, "http_statuses": sorted({s for r in rounds[name] for s in r["http_statuses"]})},
                "baseline": {
                    "what": "the same cached GetWidgetData over gRPC, same server process, h2load, same rounds",
                    **baseline,
                },
                "cost_ratio_cpu": round(measured["server_cpu_us_per_call"] / baseline["server_cpu_us_per_call"], 2),
                "cost_ratio_throughput": round(baseline["throughput_rps"] / measured["throughput_rps"], 2),
                "ratio_p50": round(measured["p50_ms"] / baseline["p50_ms"], 2),
                "ratio_p99": round(measured["p99_ms"] / baseline["p99_ms"], 2),
                "rounds": len(rounds[name]),
            }
        )
    return results
