"""Health tells the truth within one check interval: against a PostgreSQL server of this test's
own, SIGKILLed and started again, the server's health turns NOT_SERVING within one interval of
the kill and SERVING within one interval of PostgreSQL answering again (server/health.py,
server/db/probe.py). Three trials; the flip latencies are printed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dashboard.v1 import dashboard_pb2, dashboard_pb2_grpc
from server.auth.tokens import mint_token
from server.config import Settings
from server.db.migrate import upgrade
from server.health import AUDIT_ENTRY
from tests.harness.killable_postgres import KillablePostgres, postgres_binaries, server_folder
from tests.harness.server import ServerHandle, start_in_thread

pytestmark = pytest.mark.skipif(postgres_binaries() is None, reason="needs Debian's PostgreSQL binaries")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
INTERVAL = 1.0
# One poll of ours, scheduling on a shared 2-core machine: what "within one interval" may add.
SLACK = 0.5
ENTRIES = ("", "dashboard.v1.DashboardService", "dashboard.v1.WidgetService", "tessera.dependency.postgres")


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[KillablePostgres]:
    with server_folder("tessera-killable-") as folder:
        server = KillablePostgres(folder).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def watched(settings: Settings, own_postgres: KillablePostgres) -> Iterator[ServerHandle]:
    handle = start_in_thread(
        settings.model_copy(
            update={
                "database_url": own_postgres.url,
                "health_interval_seconds": INTERVAL,
                "health_probe_timeout_seconds": 0.5,
                "metrics_port": -1,
            }
        )
    )
    yield handle
    handle.stop()


def _statuses(stub: health_pb2_grpc.HealthStub) -> set[int]:
    return {stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status for name in ENTRIES}


def _until(stub: health_pb2_grpc.HealthStub, status: int, limit: float) -> float:
    """Seconds until every entry shows `status`."""
    started = time.monotonic()
    while _statuses(stub) != {status}:
        assert time.monotonic() - started < limit, f"health not {status} after {limit} s"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.slow
def test_health_flips_within_one_interval_of_postgres_dying_and_coming_back(
    watched: ServerHandle, own_postgres: KillablePostgres
) -> None:
    down: list[float] = []
    up: list[float] = []
    with grpc.insecure_channel(watched.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        _until(stub, SERVING, 10 * INTERVAL)
        for _ in range(3):
            own_postgres.kill()
            down.append(_until(stub, NOT_SERVING, 30 * INTERVAL))
            time.sleep(INTERVAL * 1.5)  # a few checks fail while it is away
            own_postgres.start()  # returns once PostgreSQL answers
            up.append(_until(stub, SERVING, 30 * INTERVAL))
            time.sleep(INTERVAL * 1.5)
    figures = {
        "interval_s": INTERVAL,
        "not_serving_after_kill_s": [round(x, 2) for x in down],
        "serving_after_back_s": [round(x, 2) for x in up],
    }
    print(json.dumps({"health_flip": figures}))
    assert max(down) <= INTERVAL + SLACK, figures
    assert max(up) <= INTERVAL + SLACK, figures


@pytest.mark.slow
def test_the_audit_log_writes_again_within_a_check_of_postgres_coming_back(
    watched: ServerHandle, own_postgres: KillablePostgres
) -> None:
    """An rpc failing while PostgreSQL is away leaves its audit event buffered, and the writer
    backs off, doubling its wait. Once health sees PostgreSQL answer again, the writer tries at
    once: the events are written, and `tessera.audit` is SERVING again, within a check or two
    rather than at the end of a backoff grown through the outage (7.5 s after 8 s away)."""
    upgrade(own_postgres.url)  # the audit log's table, for the events to go to
    settings = watched.running.app.settings
    token = mint_token(settings, subject="audited", roles=["editor"], facilities=["north-general"])
    with grpc.insecure_channel(watched.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        dashboards = dashboard_pb2_grpc.DashboardServiceStub(channel)
        _until(health, SERVING, 10 * INTERVAL)
        own_postgres.kill()
        _until(health, NOT_SERVING, 30 * INTERVAL)
        with pytest.raises(grpc.RpcError) as failed:
            dashboards.ListDashboards(
                dashboard_pb2.ListDashboardsRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=10
            )
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        audit = health_pb2.HealthCheckRequest(service=AUDIT_ENTRY)
        deadline = time.monotonic() + 30 * INTERVAL
        while health.Check(audit, timeout=5).status != NOT_SERVING:  # its write failed
            assert time.monotonic() < deadline, "the audit event's write never failed"
            time.sleep(0.05)
        time.sleep(8)  # the writer's backoff grows: 0.5, 1, 2, 4 s
        own_postgres.start()
        back = time.monotonic()
        while health.Check(audit, timeout=5).status != SERVING:
            assert time.monotonic() - back < 2 * INTERVAL + SLACK, "the audit log waited out its backoff"
            time.sleep(0.05)
        _until(health, SERVING, 30 * INTERVAL)
