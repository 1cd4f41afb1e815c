"""The standard health service reflects the dependencies (PostgreSQL, Redis, the broker, whether a
worker answers), each service by what it needs (server/health.py), and shutdown drains
gracefully with every entry NOT_SERVING. Real services and a real worker started and stopped;
each server here has a broker database of its own, so no other test's worker answers its roll call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.broker.app import make_celery
from server.config import Settings
from server.grpc_server import SERVICE_NAMES, start_server
from server.health import DEPENDENCY_PREFIX
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import broker_url_for, jobs_settings, worker_env
from workers.testing import WorkerProcess

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
EXPORTS = "dashboard.v1.ExportService"
DASHBOARDS = "dashboard.v1.DashboardService"
WIDGETS = "dashboard.v1.WidgetService"
POSTGRES, REDIS, BROKER, WORKERS = (DEPENDENCY_PREFIX + n for n in ("postgres", "redis", "broker", "workers"))
MATERIALIZE_WORKERS, EXPORT_WORKERS = (DEPENDENCY_PREFIX + "workers." + q for q in ("materialize", "exports"))
EVERY_ENTRY = (
    "",
    *SERVICE_NAMES,
    *(DEPENDENCY_PREFIX + n for n in ("postgres", "redis", "broker", "workers")),
    *(DEPENDENCY_PREFIX + "workers." + q for q in ("materialize", "exports", "maintenance")),
)


def fast_health(settings: Settings, **extra: object) -> Settings:
    """A broker database of its own, and checks every 0.2 s with short waits (a roll call: 0.5 s)."""
    return jobs_settings(
        settings,
        broker_url_for(settings.redis_url),
        health_interval_seconds=0.2,
        health_probe_timeout_seconds=0.5,
        **extra,
    )


@pytest.fixture(scope="module")
def health_settings(settings: Settings, migrated: str) -> Settings:
    return fast_health(settings)


@pytest.fixture(scope="module")
def health_server(health_settings: Settings) -> Iterator[ServerHandle]:
    handle = start_in_thread(health_settings)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def health(health_server: ServerHandle) -> Iterator[health_pb2_grpc.HealthStub]:
    with grpc.insecure_channel(health_server.address) as ch:
        yield health_pb2_grpc.HealthStub(ch)


def statuses(stub: health_pb2_grpc.HealthStub, *names: str) -> dict[str, int]:
    return {n: int(stub.Check(health_pb2.HealthCheckRequest(service=n), timeout=5).status) for n in names}


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_every_entry_answers_and_unknown_names_are_not_found(health: health_pb2_grpc.HealthStub) -> None:
    answered = statuses(health, *EVERY_ENTRY)
    assert set(answered.values()) <= {SERVING, NOT_SERVING}
    with pytest.raises(grpc.RpcError) as err:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.slow
def test_a_worker_coming_and_going_turns_exports_on_and_off(
    health: health_pb2_grpc.HealthStub, health_settings: Settings
) -> None:
    # No worker: exports cannot run, everything else serves.
    eventually(lambda: statuses(health, WORKERS)[WORKERS] == NOT_SERVING, "no worker")
    before = statuses(health, "", DASHBOARDS, WIDGETS, EXPORTS, POSTGRES, REDIS, BROKER)
    assert before == {
        "": SERVING,
        DASHBOARDS: SERVING,
        WIDGETS: SERVING,
        EXPORTS: NOT_SERVING,
        POSTGRES: SERVING,
        REDIS: SERVING,
        BROKER: SERVING,
    }

    # A worker that consumes only `materialize`: it answers, but still nobody runs exports.
    worker = WorkerProcess(worker_env(health_settings), queues="materialize", concurrency=1).start()
    client = make_celery(health_settings)
    control = client.control
    try:
        eventually(lambda: statuses(health, WORKERS)[WORKERS] == SERVING, "the worker to answer")
        assert statuses(health, EXPORTS, MATERIALIZE_WORKERS, EXPORT_WORKERS) == {
            EXPORTS: NOT_SERVING,
            MATERIALIZE_WORKERS: SERVING,
            EXPORT_WORKERS: NOT_SERVING,
        }
        # It starts consuming `exports` (remote control, as an operator would): exports serve.
        assert control.add_consumer("exports", reply=True, timeout=5, limit=1)
        eventually(lambda: statuses(health, EXPORTS)[EXPORTS] == SERVING, "ExportService to serve")
        assert statuses(health, EXPORT_WORKERS)[EXPORT_WORKERS] == SERVING
        # And stops again: exports do not, while the worker still answers.
        assert control.cancel_consumer("exports", reply=True, timeout=5, limit=1)
        eventually(lambda: statuses(health, EXPORTS)[EXPORTS] == NOT_SERVING, "ExportService to stop serving")
        assert statuses(health, WORKERS)[WORKERS] == SERVING
    finally:
        worker.stop()
        client.close()
    eventually(lambda: statuses(health, WORKERS)[WORKERS] == NOT_SERVING, "no worker again")
    assert statuses(health, "", DASHBOARDS, EXPORTS) == {"": SERVING, DASHBOARDS: SERVING, EXPORTS: NOT_SERVING}


def _statuses_of_fresh_server(settings: Settings, names: tuple[str, ...]) -> dict[str, int]:
    async def scenario() -> dict[str, int]:
        running = await start_server(settings)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                return {n: int((await stub.Check(health_pb2.HealthCheckRequest(service=n))).status) for n in names}
        finally:
            await running.stop(grace=0.5)

    return asyncio.run(scenario())


def test_redis_down_degrades_but_keeps_serving(settings: Settings, migrated: str) -> None:
    # The broker stays up (a database of the real Redis) so only the cache's Redis is missing.
    broken = fast_health(settings, redis_url="redis://127.0.0.1:1/0")
    answered = _statuses_of_fresh_server(broken, ("", WIDGETS, REDIS, POSTGRES, BROKER))
    assert answered == {"": SERVING, WIDGETS: SERVING, REDIS: NOT_SERVING, POSTGRES: SERVING, BROKER: SERVING}


def test_broker_down_stops_exports_only(settings: Settings, migrated: str) -> None:
    broken = jobs_settings(settings, "redis://127.0.0.1:1/0", health_probe_timeout_seconds=0.3)
    answered = _statuses_of_fresh_server(broken, ("", DASHBOARDS, WIDGETS, EXPORTS, BROKER, WORKERS, REDIS))
    assert answered == {
        "": SERVING,
        DASHBOARDS: SERVING,
        WIDGETS: SERVING,
        EXPORTS: NOT_SERVING,
        BROKER: NOT_SERVING,
        WORKERS: NOT_SERVING,
        REDIS: SERVING,
    }


def test_postgres_down_is_not_serving(settings: Settings, migrated: str) -> None:
    broken = fast_health(settings, database_url="postgresql+psycopg://postgres@127.0.0.1:1/none")
    answered = _statuses_of_fresh_server(broken, ("", *SERVICE_NAMES, POSTGRES))
    assert set(answered.values()) == {NOT_SERVING}


def test_shutdown_turns_every_entry_not_serving_and_stops_listening(settings: Settings, migrated: str) -> None:
    async def scenario() -> tuple[dict[str, int], dict[str, int], bool]:
        running = await start_server(fast_health(settings))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            watches = {n: health.Watch(health_pb2.HealthCheckRequest(service=n)) for n in EVERY_ENTRY}
            first = {n: int((await w.read()).status) for n, w in watches.items()}
            stopping = asyncio.create_task(running.stop(grace=0.5))
            last: dict[str, int] = {}
            for name, watch in watches.items():
                status = first[name]
                while status != NOT_SERVING:  # a Watch sends each change; shutdown is the last
                    status = int((await watch.read()).status)
                last[name] = status
            await stopping
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch2:
                await asyncio.wait_for(ch2.channel_ready(), timeout=1)
            still_listening = True
        except (TimeoutError, grpc.RpcError):
            still_listening = False
        return first, last, still_listening

    first, last, listening = asyncio.run(scenario())
    assert first[""] == SERVING and first[DASHBOARDS] == SERVING
    assert last == dict.fromkeys(EVERY_ENTRY, NOT_SERVING)
    assert not listening
