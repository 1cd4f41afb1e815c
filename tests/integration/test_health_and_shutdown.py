"""The standard health service reflects the dependencies; shutdown drains gracefully."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.grpc_server import SERVICE_NAMES, start_server


def test_health_serving_for_every_service(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", *SERVICE_NAMES):
        assert stub.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
    try:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        raise AssertionError("unknown service must be NOT_FOUND")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND


def _statuses(settings, names: tuple[str, ...]) -> list[int]:
    async def scenario() -> list[int]:
        running = await start_server(settings)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                return [int((await stub.Check(health_pb2.HealthCheckRequest(service=n))).status) for n in names]
        finally:
            await running.stop(grace=0.5)

    return asyncio.run(scenario())


def test_redis_down_degrades_but_keeps_serving(settings, migrated):
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    names = ("", "dashboard.v1.WidgetService", "tessera.dependency.redis", "tessera.dependency.postgres")
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert _statuses(broken, names) == [serving, serving, not_serving, serving]


def test_postgres_down_is_not_serving(settings, migrated):
    broken = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    names = ("", "dashboard.v1.DashboardService", "tessera.dependency.postgres")
    assert set(_statuses(broken, names)) == {health_pb2.HealthCheckResponse.NOT_SERVING}


def test_shutdown_turns_health_not_serving_and_stops_listening(settings, migrated):
    async def scenario() -> tuple[int, bool]:
        running = await start_server(settings)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(health_pb2.HealthCheckRequest())
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            stopping = asyncio.create_task(running.stop(grace=0.5))
            second = await watch.read()
            await stopping
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch2:
                await asyncio.wait_for(ch2.channel_ready(), timeout=1)
            still_listening = True
        except (TimeoutError, grpc.RpcError):
            still_listening = False
        return int(second.status), still_listening

    status, listening = asyncio.run(scenario())
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert not listening
