"""Many servers, many workers: three `tessera serve` processes on three ports and two Celery
workers on RabbitMQ (a node of the session's own), sharing the session's 3-master Redis Cluster
and PostgreSQL, used the way a deployment without a load balancer is: the Python client's round
robin over the three addresses.
The usage examples pass through it, and a server SIGKILLed under load costs callers nothing:
reads retried after UNAVAILABLE land on the two that are left. Examples 04 and 05 follow jobs
through their watch streams, so job streams on the cluster are exercised here too, with the
rpcs of one job spread over the three servers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from dashboard.v1 import dashboard_pb2 as d
from server.auth.tokens import mint_token
from server.config import Settings
from server.devtools.demo_data import install as install_demo_data
from server.devtools.embedded import free_port
from tessera_client import Client
from tessera_client.core import balanced_target
from tests.conftest import TEST_SECRET
from tests.e2e.test_examples import EXAMPLES, FACILITY, run_example
from tests.harness.rabbitmq import PrivateRabbit
from tests.harness.redis_cluster import RedisClusterProcesses
from workers.testing import WorkerProcess

ROOT = Path(__file__).resolve().parents[2]
# Three servers (one process each: the test is about servers, and each process imports the
# whole server) and two workers import at once, beside the other test process: on a loaded
# 2-core machine a server of two processes once had not answered after 90 s, its log empty.
START_SECONDS = 240
# The module's deployment starts inside its first test's timeout.
SETUP_TIMEOUT = START_SECONDS + 180


@dataclass
class Deployment:
    env: dict[str, str]
    ports: list[int]
    servers: list[subprocess.Popen[bytes] | None] = field(default_factory=list)

    @property
    def addresses(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self, *indexes: int) -> None:
        """Starts the servers at once (their imports overlap), then waits for each to answer."""
        started = {index: self._spawn(index) for index in indexes}
        while len(self.servers) <= max(indexes):
            self.servers.append(None)
        # Registered at once: stop() and kill() reach every one spawned, also when one never answers.
        for index, process in started.items():
            self.servers[index] = process
        for index in started:
            with grpc.insecure_channel(f"127.0.0.1:{self.ports[index]}") as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=START_SECONDS)
                except grpc.FutureTimeoutError:
                    raise RuntimeError(
                        f"server {index} did not start:\n{self._log(index).read_text()[-3000:]}"
                    ) from None

    def _log(self, index: int) -> Path:
        return Path(self.env["TESSERA_SCALE_LOGS"]) / f"server-{index}.log"

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        with self._log(index).open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--port", str(self.ports[index]), "--processes", "1"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, index: int) -> None:
        process = self.servers[index]
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self.servers[index] = None

    def stop(self) -> None:
        for process in self.servers:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for index, process in enumerate(self.servers):
            if process is not None:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.kill(index)


@pytest.fixture(scope="module")
def deployment(
    settings: Settings, migrated: str, redis_cluster: RedisClusterProcesses, rabbitmq_node: PrivateRabbit
) -> Iterator[Deployment]:
    install_demo_data(migrated)
    workdir = Path(tempfile.mkdtemp(prefix="tessera-scale-"))
    (workdir / "exports").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": redis_cluster.url,
        "BROKER_URL": rabbitmq_node.url,  # the session's own node: no other run takes its tasks
        "TESSERA_REDIS_PREFIX": f"scale-{uuid.uuid4().hex[:6]}:",
        "TESSERA_JWT_SECRET": TEST_SECRET,
        "TESSERA_HOST": "127.0.0.1",
        "TESSERA_HTTP_PORT": "-1",
        "TESSERA_METRICS_PORT": "-1",
        "TESSERA_EXPORT_STORAGE_URL": f"file://{workdir / 'exports'}",
        "TESSERA_AUDIT_DEAD_LETTER_PATH": str(workdir / "dead-letter.jsonl"),
        "TESSERA_JOB_HEARTBEAT_SECONDS": "0.5",
        "TESSERA_LOG_LEVEL": "WARNING",
        "TESSERA_SHUTDOWN_GRACE": "1",
        "TESSERA_SCALE_LOGS": str(workdir),
    }
    running = Deployment(env, [free_port() for _ in range(3)])
    workers: list[WorkerProcess] = []
    try:
        workers.extend(WorkerProcess(env, queues="materialize,exports,maintenance") for _ in range(2))
        starting = [threading.Thread(target=w.start, kwargs={"timeout": 150}, daemon=True) for w in workers]
        for thread in starting:
            thread.start()
        running.start(0, 1, 2)
        for thread in starting:
            thread.join(timeout=160)
        assert all(" ready." in w.log for w in workers), "a worker did not start"
        yield running
    finally:
        for worker in workers:
            worker.stop()
        running.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def example_env(deployment: Deployment, settings: Settings) -> dict[str, str]:
    admin = mint_token(settings, subject="dev-admin", roles=["admin"], facilities=[FACILITY])
    viewer = mint_token(settings, subject="bob", roles=["viewer"], facilities=[FACILITY])
    return {
        **os.environ,
        "TESSERA_ADDRESS": deployment.addresses,  # client-side round robin over the three
        "TESSERA_TOKEN": admin,
        "TESSERA_VIEWER_TOKEN": viewer,
        "PYTHONUNBUFFERED": "1",
    }


def test_several_addresses_make_one_balanced_target() -> None:
    assert balanced_target("127.0.0.1:1,127.0.0.1:2") == ("ipv4:127.0.0.1:1,127.0.0.1:2", True)
    assert balanced_target(["localhost:5"])[0] == "localhost:5"
    assert balanced_target("dns:///tessera.default.svc:50051") == ("dns:///tessera.default.svc:50051", True)
    assert balanced_target("[::1]:7,[::1]:8") == ("ipv6:[::1]:7,[::1]:8", True)
    with pytest.raises(ValueError, match="host:port"):
        balanced_target("127.0.0.1:1,nohost")


@pytest.mark.slow
@pytest.mark.timeout(SETUP_TIMEOUT)
@pytest.mark.parametrize("name", EXAMPLES)
def test_the_examples_run_across_three_servers(name: str, example_env: dict[str, str]) -> None:
    run_example(name, example_env)


@pytest.mark.slow
@pytest.mark.timeout(SETUP_TIMEOUT)
def test_a_server_killed_under_load_costs_callers_nothing(deployment: Deployment, settings: Settings) -> None:
    token = mint_token(settings, subject="dev-admin", roles=["admin"], facilities=[FACILITY])
    with Client(deployment.addresses, token=token) as setup:
        board = setup.dashboards.create(d.Dashboard(facility_id=FACILITY, title="under load"))
    failures: list[BaseException] = []
    done: list[int] = []
    stop = threading.Event()
    killed = threading.Event()

    def load() -> None:
        with Client(deployment.addresses, token=token) as client:
            n = 0
            while not stop.is_set():
                try:
                    assert client.dashboards.get(board.id).id == board.id
                    assert next(iter(client.dashboards.list(page_size=5)), None) is not None
                except BaseException as exc:  # every failure is one too many
                    failures.append(exc)
                n += 1
                if killed.is_set() and n % 50 == 0:
                    done.append(n)
            done.append(n)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        with Client(deployment.addresses, token=token) as probe:
            for _ in range(20):
                probe.dashboards.get(board.id)  # the load runs meanwhile on every server
        deployment.kill(1)
        killed.set()
        with Client(deployment.addresses, token=token) as probe:
            for _ in range(40):
                assert probe.dashboards.get(board.id).id == board.id  # after the kill, same story
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        deployment.start(1)
    assert not failures, [repr(f) for f in failures[:5]]
    assert sum(done) > 0
