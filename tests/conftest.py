"""Session fixtures: real PostgreSQL and Redis (CI's when the environment names them, embedded
otherwise), a fresh database per run, and a real gRPC server on an ephemeral port."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from dashboard.v1 import (
    dashboard_pb2_grpc,
    export_pb2_grpc,
    query_pb2_grpc,
    share_pb2_grpc,
    widget_pb2_grpc,
)
from server.auth.tokens import mint_token
from server.config import Settings
from server.db.migrate import sync_url
from tests.harness.killable_postgres import server_folder
from tests.harness.rabbitmq import RABBITMQ_SERVER, PrivateRabbit
from tests.harness.redis_cluster import RedisClusterProcesses, start_redis_cluster
from tests.harness.server import ServerHandle, start_in_thread
from tests.harness.services import TestServices, provision
from tests.security.phi_reads import PhiReadRecorder

# The suite on several processes: work units, slow ones first, session-end lines (the module says).
pytest_plugins = ["tests.harness.parallel"]

TEST_SECRET = "tessera-test-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def services() -> Iterator[TestServices]:
    with provision() as provided:
        yield provided


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """A real 3-master Redis Cluster, started once for the session by the first test asking for
    it (tests/harness/redis_cluster.py) and stopped at its end."""
    with start_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def rabbitmq_node() -> Iterator[PrivateRabbit]:
    """A RabbitMQ node of the session's own (tests/harness/rabbitmq.py), started by the first test
    asking for it: queues nobody else's worker can take, and a broker chaos tests may kill."""
    if not Path(RABBITMQ_SERVER).exists():
        pytest.skip("rabbitmq-server is not installed")
    with server_folder("tessera-rabbit-") as folder:
        node = PrivateRabbit(folder).start()
        try:
            yield node
        finally:
            node.stop()


@pytest.fixture(scope="session")
def settings(services: TestServices, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        audit_dead_letter_path=str(tmp_path_factory.mktemp("audit") / "dead-letter.jsonl"),
        database_url=services.database_url,
        redis_url=services.redis_url,
        redis_prefix=services.redis_prefix,
        # Tasks the session's server enqueues (nobody consumes them) go under the run's prefix,
        # so they are removed with its keys and never reach another run's worker.
        broker_key_prefix=f"{services.redis_prefix}broker:",
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        http_port=0,
        http_cors_origins="http://allowed.example",
        jwt_secret=TEST_SECRET,
        shutdown_grace=1.0,
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> str:
    from server.db.migrate import upgrade

    upgrade(settings.database_url)
    return settings.database_url


@pytest.fixture(scope="session")
def server(settings: Settings, migrated: str) -> Iterator[ServerHandle]:
    handle = start_in_thread(settings)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def phi_reads(server: ServerHandle, migrated: str) -> Iterator[PhiReadRecorder]:
    """Every data read of the session's channel, with its truth about PHI; at the end of the
    session each must be in the audit log exactly (tests/security/phi_reads.py)."""
    recorder = PhiReadRecorder(sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1))
    yield recorder
    report = recorder.verify(lambda: server.run(server.running.app.audit.flush()))
    assert not report.problems, f"data reads missing from the audit log or recorded wrongly: {report.problems[:5]}"


@pytest.fixture(scope="session")
def channel(server: ServerHandle, phi_reads: PhiReadRecorder) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield grpc.intercept_channel(ch, phi_reads)


@pytest.fixture(scope="session")
def dashboards(channel: grpc.Channel) -> dashboard_pb2_grpc.DashboardServiceStub:
    return dashboard_pb2_grpc.DashboardServiceStub(channel)


@pytest.fixture(scope="session")
def widgets(channel: grpc.Channel) -> widget_pb2_grpc.WidgetServiceStub:
    return widget_pb2_grpc.WidgetServiceStub(channel)


@pytest.fixture(scope="session")
def queries(channel: grpc.Channel) -> query_pb2_grpc.QueryServiceStub:
    return query_pb2_grpc.QueryServiceStub(channel)


@pytest.fixture(scope="session")
def exports(channel: grpc.Channel) -> export_pb2_grpc.ExportServiceStub:
    return export_pb2_grpc.ExportServiceStub(channel)


@pytest.fixture(scope="session")
def shares(channel: grpc.Channel) -> share_pb2_grpc.ShareServiceStub:
    return share_pb2_grpc.ShareServiceStub(channel)


Metadata = tuple[tuple[str, str], ...]
TokenFactory = Callable[..., Metadata]


@pytest.fixture(scope="session")
def auth(settings: Settings) -> TokenFactory:
    """auth(subject, role, *facilities, permissions=()) -> call metadata with a bearer token."""

    def make(subject: str, role: str, *facilities: str, permissions: tuple[str, ...] = (), **kw: int) -> Metadata:
        token = mint_token(
            settings, subject=subject, roles=[role], facilities=list(facilities), permissions=list(permissions), **kw
        )
        return (("authorization", f"Bearer {token}"),)

    return make


@pytest.fixture
def facility() -> str:
    """A facility of its own for each test, so tests never see each other's data."""
    return f"fac-{uuid.uuid4().hex[:10]}"
