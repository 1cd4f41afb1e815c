"""`tessera serve --processes 2`: two server processes on one gRPC port and one HTTP port, calls
spread across them, one metrics endpoint that adds both up, and a clean SIGTERM shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
import pytest

from dashboard.v1 import dashboard_pb2, dashboard_pb2_grpc
from server.config import Settings
from tests.conftest import TokenFactory

PROCESS_RPCS = re.compile(r'^tessera_process_rpcs_total\{pid="(\d+)"\} ([\d.e+]+)$', re.M)
RPC_COUNTS = re.compile(r"^tessera_rpc_duration_seconds_count\{[^}]*\} ([\d.e+]+)$", re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    grpc_port: int
    http_port: int
    metrics_port: int
    tmp: Path

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as reply:
            return str(reply.read().decode())

    def per_process(self) -> dict[int, float]:
        return {int(pid): float(n) for pid, n in PROCESS_RPCS.findall(self.metrics())}


def _until(what: str, check: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def two_processes(
    settings: Settings, tmp_path: Path, *, http: bool = True, log: dict[str, str] | None = None
) -> Iterator[Served]:
    """`tessera serve --processes 2` on the test's database and Redis, until both processes
    serve; stopped by SIGTERM afterwards, and whatever is left killed, children too (killing only
    the parent would leave them running)."""
    ports = {"grpc": _free_port(), "http": _free_port(), "metrics": _free_port()}
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        TESSERA_REDIS_PREFIX=settings.redis_prefix,
        TESSERA_BROKER_KEY_PREFIX=settings.broker_key_prefix,
        TESSERA_JWT_SECRET=settings.jwt_secret.get_secret_value(),
        TESSERA_PORT=str(ports["grpc"]),
        TESSERA_HTTP_PORT=str(ports["http"]) if http else "-1",
        TESSERA_METRICS_PORT=str(ports["metrics"]),
        TESSERA_SHUTDOWN_GRACE="1",
        TESSERA_LOG_LEVEL="WARNING",
        TESSERA_AUDIT_DEAD_LETTER_PATH=str(tmp_path / "dead-letter.jsonl"),
        TMPDIR=str(tmp_path),  # where the parent makes its metrics directory
    )
    env.update(log or {})
    with open(tmp_path / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--processes", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr if log else None,
        )
    handle = Served(process, ports["grpc"], ports["http"], ports["metrics"], tmp_path)
    try:
        # Both processes have started once each one's series is there.
        _until("two server processes", lambda: len(handle.per_process()) == 2)
        yield handle
    finally:
        children = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


@pytest.fixture
def served(settings: Settings, migrated: str, tmp_path: Path) -> Iterator[Served]:
    with two_processes(settings, tmp_path) as handle:
        yield handle


def test_two_processes_share_the_ports_and_one_metrics_endpoint_and_stop_on_sigterm(
    served: Served, auth: TokenFactory
) -> None:
    md = auth("multi", "viewer", "north-general")
    # A new channel is a new connection, which the kernel gives to one of the two listeners.
    for _ in range(40):
        with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
            dashboard_pb2_grpc.DashboardServiceStub(channel).ListDashboards(
                dashboard_pb2.ListDashboardsRequest(page_size=1), metadata=md, timeout=30
            )
        if all(n > 0 for n in served.per_process().values()):
            break
    per_process = served.per_process()
    assert len(per_process) == 2 and all(n > 0 for n in per_process.values()), per_process

    # The HTTP face is served by the same processes, through the same pipeline.
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.http_port}/api/v1/dashboard/dashboards?pageSize=1", headers=dict(md)
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200

    # One endpoint, both processes' values added up: every call counted once.
    text = served.metrics()
    assert sum(float(n) for n in RPC_COUNTS.findall(text)) == sum(served.per_process().values())

    children = psutil.Process(served.process.pid).children(recursive=True)
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=60) == 0
    # Every process of the tree ends (multiprocessing's resource tracker a moment after the parent).
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive
    assert not list(served.tmp.glob("tessera-server-metrics-*")), "the metrics directory is removed"


def test_every_rpc_has_one_whole_access_line_when_two_processes_share_stderr(
    settings: Settings, migrated: str, tmp_path: Path, auth: TokenFactory
) -> None:
    """At INFO, in JSON: the two processes share one stderr (a pipe in production, a file here),
    and their batched access lines never cut into each other; every call has its line, the
    last ones (answered just before SIGTERM) too."""
    md = auth("multi", "viewer", "north-general")
    sent: list[str] = []
    with two_processes(settings, tmp_path, log={"TESSERA_LOG_LEVEL": "INFO", "TESSERA_LOG_JSON": "true"}) as served:
        for i in range(12):
            # A new channel is a new connection: the kernel spreads them over both processes.
            with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
                stub = dashboard_pb2_grpc.DashboardServiceStub(channel)
                for j in range(25):
                    cid = f"access-{i:02d}-{j:02d}"
                    stub.ListDashboards(
                        dashboard_pb2.ListDashboardsRequest(page_size=1),
                        metadata=(*md, ("x-correlation-id", cid)),
                        timeout=30,
                    )
                    sent.append(cid)
        per_process = served.per_process()
        assert len(per_process) == 2 and all(n > 0 for n in per_process.values()), per_process
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=60) == 0
    lines = (tmp_path / "stderr.log").read_text().splitlines()
    # Every line whole (no two cut into each other), hypercorn's too: one JSON object each.
    entries = [json.loads(line) for line in lines]
    access = [e for e in entries if e["logger"] == "tessera.rpc"]
    mine = sorted(e["correlation_id"] for e in access if e["correlation_id"].startswith("access-"))
    assert mine == sorted(sent)
    assert {(e["method"], e["code"]) for e in access if e["correlation_id"] in set(sent)} == {
        ("/dashboard.v1.DashboardService/ListDashboards", "OK")
    }
