"""Servers in their own processes for the benchmarks: `tessera serve` against the bench's
database and Redis, and the bare grpc.aio ceiling (bench/bare_grpc.py); their CPU time and
memory read from /proc (psutil) so a workload can say what one call cost the server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from server.config import Settings

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A server running in its own process tree."""

    address: str
    process: subprocess.Popen[bytes]
    metrics_port: int | None = None

    def tree(self) -> list[psutil.Process]:
        parent = psutil.Process(self.process.pid)
        return [parent, *parent.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """User + system CPU of every process of the server so far."""
        total = 0.0
        for proc in self.tree():
            times = proc.cpu_times()
            total += times.user + times.system
        return total

    def connections_per_process(self) -> list[int]:
        """Established connections on the served port held by each process, busiest first: with
        SO_REUSEPORT the kernel hashes each connection to one process, so a few long ones split
        unevenly (8 over two processes landed 6/2 and 5/3), and a multi-process run's tail says
        how uneven."""
        port = int(self.address.rsplit(":", 1)[1])
        counts = [
            sum(1 for c in proc.net_connections("tcp") if c.status == "ESTABLISHED" and c.laddr.port == port)
            for proc in self.tree()
        ]
        return sorted((n for n in counts if n), reverse=True)

    def rss_bytes(self) -> int:
        return sum(proc.memory_info().rss for proc in self.tree())

    def metrics(self) -> str:
        if self.metrics_port is None:
            raise RuntimeError("this server exports no metrics")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as reply:
            return str(reply.read().decode())

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample named `name` (`..._total`, `..._count`, `..._sum` included) the server
        exports now, with its labels."""
        return [
            (dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(self.metrics())
            for sample in family.samples
            if sample.name == name
        ]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels`."""
        return sum(value for found, value in self.samples(name) if labels.items() <= found.items())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# Generous: on the shared 2-core machine the spawned processes' imports alone took 33-60 s.
def _wait_serving(address: str, process: subprocess.Popen[bytes], timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode} before serving")
            try:
                # Any answer means the port is served (a dependency may still be warming up).
                health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                return
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return
            time.sleep(0.2)
    raise RuntimeError(f"server at {address} did not answer within {timeout} s")


def with_connection_split(served: Served, run: Callable[[], T], after: float) -> tuple[T, list[int]]:
    """`run()` (a load on `served`), and how its connections were split over the server's
    processes `after` seconds into it (empty if it was over by then)."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run)
        time.sleep(after)
        split = [] if future.done() else served.connections_per_process()
        return future.result(), split


@contextmanager
def tessera_serve(
    settings: Settings,
    processes: int | None = None,
    extra_env: dict[str, str] | None = None,
    start_timeout: float = 240.0,
) -> Iterator[Served]:
    """`tessera serve` (with `--processes N` when given) on free ports, configured like the
    bench's in-thread server (same database and read replica, Redis prefix and token secret), plus
    `extra_env`; at the default log level (until 2026-12-08 at WARNING, which left out the line
    every rpc writes)."""
    port, metrics_port = free_port(), free_port()
    env = {
        # No saturation shedding unless asked (load_ceiling does): h2load counts a refusal (HTTP
        # 200, grpc-status 8) as an answer, so a shed share would pass for cheap, fast calls.
        "TESSERA_SHED_MIN_IDLE": "0",
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "TESSERA_REDIS_PREFIX": settings.redis_prefix,
        "TESSERA_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "TESSERA_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "TESSERA_HOST": "127.0.0.1",
        "TESSERA_PORT": str(port),
        "TESSERA_METRICS_PORT": str(metrics_port),
        "TESSERA_HTTP_PORT": "-1",
        **({"DATABASE_REPLICA_URL": settings.database_replica_url} if settings.database_replica_url else {}),
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "server.cli", "serve"]
    if processes is not None:
        command += ["--processes", str(processes)]
    # At the default log level, as deployed (a line per rpc): its log goes to a file of its own,
    # removed afterwards unless something failed.
    with tempfile.NamedTemporaryFile(prefix="tessera-serve-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        address = f"127.0.0.1:{port}"
        try:
            _wait_serving(address, process, start_timeout)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; its log: {log.name}") from None
        yield Served(address, process, metrics_port)
        Path(log.name).unlink(missing_ok=True)
    finally:
        _stop(process)


@contextmanager
def bare_grpc(method: str, payload: bytes, processes: int = 1) -> Iterator[Served]:
    """The ceiling: `processes` bare grpc.aio processes answering `method` with `payload`."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bare-grpc-") as tmp:
        payload_file = Path(tmp, "payload")
        payload_file.write_bytes(payload)
        command = [sys.executable, "-m", "bench.bare_grpc", "--port", str(port), "--method", method]
        command += ["--payload", str(payload_file), "--processes", str(processes)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE)
        try:
            assert process.stdout is not None
            if process.stdout.readline().strip() != b"ready":
                raise RuntimeError("the bare grpc.aio server did not start")
            yield Served(f"127.0.0.1:{port}", process)
        finally:
            _stop(process)
