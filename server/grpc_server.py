"""The grpc.aio server: interceptors, the five services, health and reflection, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from dashboard.v1 import (
    dashboard_pb2,
    dashboard_pb2_grpc,
    export_pb2,
    export_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    share_pb2,
    share_pb2_grpc,
    widget_pb2,
    widget_pb2_grpc,
)
from server.api.audit import AuditInterceptor
from server.api.dashboards import DashboardServicer
from server.api.interceptors import (
    AccessLogInterceptor,
    AuthInterceptor,
    ErrorMappingInterceptor,
    ValidationInterceptor,
)
from server.api.queries import QueryServicer
from server.api.shares import ShareServicer
from server.api.unimplemented import unimplemented_methods
from server.api.widgets import WidgetServicer
from server.app import App, build_app
from server.config import Settings
from server.metrics import Exporter, start_exporter

log = logging.getLogger("tessera.server")

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (dashboard_pb2, "DashboardService"),
        (widget_pb2, "WidgetService"),
        (query_pb2, "QueryService"),
        (export_pb2, "ExportService"),
        (share_pb2, "ShareService"),
    )
)
HEALTH_INTERVAL_SECONDS = 5.0


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    app: App
    health: HealthServicer
    # The bound port of the Prometheus endpoint; None when disabled (or its port was taken).
    metrics_port: int | None = None
    _exporter: Exporter | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first (load balancers drain), then finish in-flight rpcs, then close."""
        await self.health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        await self.server.stop(self.app.settings.shutdown_grace if grace is None else grace)
        if self._exporter is not None:
            await asyncio.to_thread(self._exporter.stop)
            self._exporter = None
        await self.app.close()


async def check_dependencies(app: App) -> dict[str, bool]:
    results: dict[str, bool] = {}
    try:
        await asyncio.wait_for(app.db.ping(), timeout=3)
        results["postgres"] = True
    except Exception:  # any failure means not serving; the reason is logged
        log.warning("health: postgres unreachable", exc_info=True)
        results["postgres"] = False
    try:
        await asyncio.wait_for(app.redis.ping(), timeout=3)
        results["redis"] = True
    except Exception:
        log.warning("health: redis unreachable", exc_info=True)
        results["redis"] = False
    return results


DEPENDENCY_PREFIX = "tessera.dependency."


async def _update_health(app: App, health: HealthServicer) -> None:
    """The services serve while PostgreSQL answers. Redis is a cache and a broker: without it
    reads fall back to PostgreSQL, so its loss degrades rather than stops the server; each
    dependency also has its own entry ("tessera.dependency.redis") for probes that want detail."""
    checks = await check_dependencies(app)
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    for dependency, ok in checks.items():
        await health.set(DEPENDENCY_PREFIX + dependency, serving if ok else not_serving)
    status = serving if checks["postgres"] else not_serving
    for name in ("", *SERVICE_NAMES):
        await health.set(name, status)


async def _health_loop(app: App, health: HealthServicer) -> None:
    while True:
        await asyncio.sleep(HEALTH_INTERVAL_SECONDS)
        await _update_health(app, health)


async def start_server(settings: Settings, app: App | None = None) -> RunningServer:
    app = app or build_app(settings)
    server = grpc.aio.server(
        interceptors=[
            AccessLogInterceptor(app.metrics),
            ErrorMappingInterceptor(),
            # Audit outside authentication: refused calls are recorded too.
            AuditInterceptor(app.audit),
            AuthInterceptor(app.authenticator),
            ValidationInterceptor(),
        ],
        options=[
            # A port clash must fail loudly rather than silently share the port.
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ],
    )
    dashboard_pb2_grpc.add_DashboardServiceServicer_to_server(DashboardServicer(app.dashboards), server)
    widget_pb2_grpc.add_WidgetServiceServicer_to_server(WidgetServicer(app.widgets, app.widget_data, app.jobs), server)
    query_pb2_grpc.add_QueryServiceServicer_to_server(QueryServicer(app.queries), server)
    export_pb2_grpc.add_ExportServiceServicer_to_server(
        unimplemented_methods(
            export_pb2_grpc.ExportServiceServicer,
            export_pb2.DESCRIPTOR.services_by_name["ExportService"],
            "PDF and PNG exports",
        )(),
        server,
    )
    share_pb2_grpc.add_ShareServiceServicer_to_server(ShareServicer(app.shares, app.audit), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    await server.start()
    await _update_health(app, health)
    exporter = start_exporter(app.metrics, settings.metrics_port, settings.host)
    running = RunningServer(
        server=server,
        port=port,
        app=app,
        health=health,
        metrics_port=exporter.port if exporter else None,
        _exporter=exporter,
    )
    running._tasks.append(asyncio.create_task(_health_loop(app, health)))
    log.info("serving", extra={"address": f"{settings.host}:{port}"})
    return running


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully."""
    running = await start_server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace})
    await running.stop()
