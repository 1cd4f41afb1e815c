"""OpenTelemetry tracing, off unless `Settings.tracing` names an exporter.

When on: a span per rpc (the grpc.aio server interceptor, outermost, so it also covers the
other interceptors; over HTTP the ASGI middleware, named by route and rpc) and a span per
Celery task, with the trace context carried in the task's message headers (W3C traceparent)
from the process that enqueued it; so an rpc that enqueues a materialization or an export and
the task that runs it share one trace. Log lines written inside a span carry its `trace_id`
(server/logs.py).

The tracer provider is process-wide. One that is already installed (by an embedding
application, or a test with an in-memory exporter) is used as it is; otherwise one is built with
the configured exporter: "otlp" (endpoint, headers and protocol from the standard
OTEL_EXPORTER_OTLP_* variables) or "console". In a prefork worker each child configures its own
after the fork (exporters hold sockets and threads that must not cross it).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from server.config import Settings

__all__ = ["configure", "enabled", "http_middleware", "name_http_span", "server_interceptor"]

log = logging.getLogger("tessera.tracing")

_lock = threading.Lock()


def enabled(settings: Settings) -> bool:
    return settings.tracing != "off"


def _exporter(kind: str) -> SpanExporter:
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return ConsoleSpanExporter()


def configure(settings: Settings, service: str) -> bool:
    """Turns tracing on in this process when the settings ask for it (idempotent); True when on."""
    if not enabled(settings):
        return False
    with _lock:
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
            provider = TracerProvider(resource=Resource.create(attributes))
            provider.add_span_processor(BatchSpanProcessor(_exporter(settings.tracing)))
            trace.set_tracer_provider(provider)
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    log.info("tracing on", extra={"exporter": settings.tracing, "service": service})
    return True


def server_interceptor() -> grpc.aio.ServerInterceptor:
    """Spans for rpcs, continuing the caller's trace when its metadata carries one."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor()  # type: ignore[no-untyped-call]
    return interceptor


def http_middleware(app: Any) -> Any:
    """Spans for requests to the HTTP face (an ASGI app), continuing the caller's trace from its
    `traceparent` header; one span per request (no per-message receive/send spans)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app, exclude_spans=["receive", "send"])


def name_http_span(verb: str, template: str, rpc: str) -> None:
    """Names the current HTTP span by its route (not the path, whose ids would make every span
    name unique) and the rpc it carries, as the gRPC span names it."""
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{verb} {template}")
        service, _, method = rpc.strip("/").partition("/")
        span.set_attributes(
            {"http.route": template, "rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        )


def shutdown() -> None:
    """Flushes buffered spans (a worker child about to exit)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(timeout_millis=5000)
