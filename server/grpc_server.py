"""The grpc.aio server: interceptors, the five services, health and reflection, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from dashboard.v1 import (
    alert_pb2_grpc,
    dashboard_pb2_grpc,
    export_pb2_grpc,
    query_pb2_grpc,
    report_pb2_grpc,
    search_pb2_grpc,
    share_pb2_grpc,
    widget_pb2_grpc,
)
from server import tls, tracing
from server.api.alerts import AlertServicer
from server.api.audit import AuditInterceptor
from server.api.dashboards import DashboardServicer
from server.api.exports import ExportServicer
from server.api.interceptors import (
    AccessLogInterceptor,
    AuthInterceptor,
    ErrorMappingInterceptor,
    ValidationInterceptor,
    _Wrapping,
)
from server.api.queries import QueryServicer
from server.api.rate_buckets import RedisBuckets
from server.api.rate_limit import RateLimit
from server.api.reports import ReportServicer
from server.api.search import SearchServicer
from server.api.shares import ShareServicer
from server.api.shedding import LoadShedding, Saturation
from server.api.widgets import SerializedResponses, WidgetServicer
from server.app import App, build_app
from server.broker.probe import BrokerProbe
from server.broker.queue_metrics import QueueDepthCollector
from server.config import Settings
from server.health import SERVICE_NAMES, HealthMonitor
from server.http.serve import HttpServer, build_api, start_http
from server.logs import access_lines
from server.metrics import Exporter, start_exporter

log = logging.getLogger("tessera.server")

__all__ = ["SERVICE_NAMES", "RunningServer", "serve", "start_server"]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    app: App
    health: HealthServicer
    monitor: HealthMonitor
    # The bound port of the Prometheus endpoint; None when disabled (or its port was taken).
    metrics_port: int | None = None
    _exporter: Exporter | None = None
    # The bound port of the HTTP/JSON face; None when disabled.
    http_port: int | None = None
    _http: HttpServer | None = None

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first (load balancers drain), then finish in-flight rpcs, then close."""
        await self.monitor.stop()
        grace = self.app.settings.shutdown_grace if grace is None else grace
        await asyncio.gather(self.server.stop(grace), self._http.stop(grace) if self._http else asyncio.sleep(0))
        if self._exporter is not None:
            await asyncio.to_thread(self._exporter.stop)
            self._exporter = None
        await self.app.close()


def pipeline(app: App) -> list[_Wrapping]:
    """The steps every call passes, outermost first: the one list both transports wrap their
    calls in (gRPC as server interceptors, HTTP around each rpc's behaviour)."""
    return [
        AccessLogInterceptor(app.metrics),
        ErrorMappingInterceptor(),
        # Overload answered at once, before anything else costs (server/api/shedding.py).
        LoadShedding(
            app.settings.max_in_flight_rpcs,
            app.settings.shed_retry_after_seconds,
            app.metrics.rpcs_in_flight,
            # Not built when off: every unary call would ask it for nothing.
            Saturation(app.settings.shed_min_idle, app.settings.shed_interval_ms / 1000)
            if app.settings.shed_min_idle > 0
            else None,
            app.metrics.rpcs_shed,
            app.metrics.shed_share,
        ),
        # Audit outside authentication: refused calls are recorded too.
        AuditInterceptor(app.audit),
        AuthInterceptor(app.authenticator),
        # Per principal, so after authentication; refusals still pass the audit step above.
        RateLimit(rate_buckets(app), app.metrics.rate_limited),
        ValidationInterceptor(app.metrics),
    ]


def rate_buckets(app: App) -> RedisBuckets | None:
    """The shared per-principal buckets, or None when rate limits are off."""
    rate = app.settings.rate_limit_per_principal
    if rate <= 0:
        return None
    burst = app.settings.rate_limit_burst or max(1, math.ceil(rate * 2))
    return RedisBuckets(app.redis, app.settings.redis_prefix, rate, burst, app.metrics.rate_limit_fallbacks)


class _GenericHandlersOnly:
    """The server as the generated add_*_to_server functions see it: they add each service as a
    generic handler and also register each of its methods. For every call it accepts, grpc.aio's
    accept loop (grpc 1.85) waits on one pending future per registered method, an asyncio.wait
    over some 75 futures, which was about a tenth of a cache hit's CPU. The generic handlers alone
    serve the same methods, found by name."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, object]) -> None:
        """Not registered (see the class)."""


def servicers(app: App) -> dict[str, object]:
    """The services' servicers by full service name."""
    return {
        "dashboard.v1.DashboardService": DashboardServicer(app.dashboards, app.portability),
        "dashboard.v1.WidgetService": WidgetServicer(app.widgets, app.widget_data, app.materialization),
        "dashboard.v1.QueryService": QueryServicer(app.queries),
        "dashboard.v1.ExportService": ExportServicer(app.exports),
        "dashboard.v1.ShareService": ShareServicer(app.shares, app.audit),
        "dashboard.v1.ReportService": ReportServicer(app.reports),
        "dashboard.v1.AlertService": AlertServicer(app.alerts),
        "dashboard.v1.SearchService": SearchServicer(app.search),
    }


async def start_server(settings: Settings, app: App | None = None, *, reuse_port: bool = False) -> RunningServer:
    """`reuse_port`: share the ports with the other processes of one server (server/processes.py);
    otherwise a port clash fails loudly rather than silently sharing the port."""
    app = app or build_app(settings)
    # Spans outermost, so they cover the other interceptors and the access log sees the trace id.
    traced = [tracing.server_interceptor()] if tracing.configure(settings, "tessera-server") else []
    steps = pipeline(app)
    server = grpc.aio.server(
        interceptors=[*traced, *steps, SerializedResponses()],
        options=[
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        ],
    )
    services = servicers(app)
    # The generated functions call only the two methods it has.
    generic = cast("grpc.aio.Server", _GenericHandlersOnly(server))
    dashboard_pb2_grpc.add_DashboardServiceServicer_to_server(services["dashboard.v1.DashboardService"], generic)
    widget_pb2_grpc.add_WidgetServiceServicer_to_server(services["dashboard.v1.WidgetService"], generic)
    query_pb2_grpc.add_QueryServiceServicer_to_server(services["dashboard.v1.QueryService"], generic)
    export_pb2_grpc.add_ExportServiceServicer_to_server(services["dashboard.v1.ExportService"], generic)
    share_pb2_grpc.add_ShareServiceServicer_to_server(services["dashboard.v1.ShareService"], generic)
    report_pb2_grpc.add_ReportServiceServicer_to_server(services["dashboard.v1.ReportService"], generic)
    alert_pb2_grpc.add_AlertServiceServicer_to_server(services["dashboard.v1.AlertService"], generic)
    search_pb2_grpc.add_SearchServiceServicer_to_server(services["dashboard.v1.SearchService"], generic)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, generic)
    # As reflection.enable_server_reflection adds it to a grpc.aio server (which `generic` is not).
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(  # type: ignore[no-untyped-call]
        reflection.aio.ReflectionServicer(
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
        ),
        generic,
    )
    address = f"{settings.host}:{settings.port}"
    credentials = tls.server_credentials(settings)
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    app.widget_data.start()  # tier 0 and kept definitions follow their changes from here on
    await server.start()
    http = None
    if settings.http_port >= 0:
        api = build_api(
            steps,
            services,
            max_body_bytes=settings.max_message_bytes,
            cors_origins=settings.http_cors_origins,
            audit=app.audit,
            metrics=app.metrics,
        )
        http = await start_http(
            api,
            settings.host,
            settings.http_port,
            settings.shutdown_grace,
            tls=tls.tls_files(settings),
            traced=bool(traced),
            reuse_port=reuse_port,
            max_concurrent_streams=settings.max_concurrent_streams,
        )
    monitor = HealthMonitor(app, health)
    await monitor.start()
    # Queue depth from the server too: it is the figure to watch when no worker runs.
    app.metrics.registry.register(QueueDepthCollector(BrokerProbe(settings)))
    exporter = start_exporter(app.metrics, settings.metrics_port, settings.host)
    running = RunningServer(
        server=server,
        port=port,
        app=app,
        health=health,
        monitor=monitor,
        metrics_port=exporter.port if exporter else None,
        _exporter=exporter,
        http_port=http.port if http else None,
        _http=http,
    )
    log.info("serving", extra={"address": f"{settings.host}:{port}", "tls": _tls_mode(settings)})
    return running


def _tls_mode(settings: Settings) -> str:
    if settings.tls_cert_file is None:
        return "terminated by proxy" if settings.tls_terminated_by_proxy else "off"
    return "mtls" if settings.tls_client_ca_file is not None else "tls"


def freeze_startup_heap() -> None:
    """What start-up made (modules, descriptors, tables, pools, the server) lives as long as the
    process: moved out of the collector's sight, so a full collection no longer walks it. Not
    frozen, a full collection of a started server walked about 210,000 objects for 130 ms,
    stalling every call in flight; the collector runs one whenever enough new objects survive
    (caches filling, say)."""
    gc.collect()
    gc.freeze()


async def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully."""
    running = await start_server(settings, reuse_port=reuse_port)
    freeze_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace})
    await running.stop()
    access_lines.write_pending()  # the lines of the calls that ended during the grace period
