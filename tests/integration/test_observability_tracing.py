"""OpenTelemetry: with tracing on, an rpc that enqueues a materialization and the Celery task that
runs it share one trace, through the traceparent carried in the task's message headers. A real
server and a real Celery worker (in this process, solo pool, so one in-memory exporter sees both
sides; they still talk only through the broker)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from celery.contrib.testing.worker import start_worker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from server.broker.names import TASK_MATERIALIZE_DASHBOARD
from server.config import Settings
from tests.harness.server import start_in_thread
from tests.integration.test_jobs import Kit, broker_url_for, jobs_settings, wait_terminal
from workers import runtime
from workers.celery_app import make_worker_app

RPC = "/dashboard.v1.WidgetService/MaterializeDashboard"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter on the process's provider (installed here when there is none: the
    server then uses it, as it would an embedding application's)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later spans (none, with tracing off elsewhere) are dropped


@pytest.fixture
def quiet_logging() -> Iterator[None]:
    # The embedded worker sets up the worker's logging in this process; put pytest's back after.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_rpc_span_and_task_span_share_a_trace(
    settings: Settings,
    migrated: str,
    auth: Any,
    facility: str,
    spans: InMemorySpanExporter,
    quiet_logging: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    traced = jobs_settings(settings, broker_url_for(settings.redis_url), tracing="console")
    monkeypatch.setattr(runtime, "settings", traced)  # the in-process worker's settings
    server = start_in_thread(traced)
    worker_app = make_worker_app(traced)
    try:
        with (
            start_worker(worker_app, pool="solo", perform_ping_check=False, queues=["materialize"]),
            grpc.insecure_channel(server.address) as channel,
        ):
            kit = Kit(
                query_pb2_grpc.QueryServiceStub(channel),
                dashboard_pb2_grpc.DashboardServiceStub(channel),
                widget_pb2_grpc.WidgetServiceStub(channel),
                auth("tara", "editor", facility),
                facility,
            )
            board = kit.board()
            kit.widget(board, kit.query("SELECT 1 AS one"))
            job = kit.materialize(board)
            assert wait_terminal(kit.widgets, kit.md, job.id).state == c.JOB_STATE_SUCCEEDED
    finally:
        server.stop()
        worker_app.close()
        CeleryInstrumentor().uninstrument()

    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    rpc = one(finished, RPC, SpanKind.SERVER)
    publish = one(finished, f"apply_async/{TASK_MATERIALIZE_DASHBOARD}", SpanKind.PRODUCER)
    run = one(finished, f"run/{TASK_MATERIALIZE_DASHBOARD}", SpanKind.CONSUMER)
    assert rpc.context is not None and publish.context is not None and run.context is not None
    # One trace: rpc -> publish (in the rpc's context) -> run (from the message's traceparent).
    assert publish.context.trace_id == rpc.context.trace_id == run.context.trace_id
    assert publish.parent is not None and publish.parent.span_id == rpc.context.span_id
    assert run.parent is not None and run.parent.span_id == publish.context.span_id
    assert run.parent.is_remote  # it came through the broker, not this process's context
    assert run.attributes is not None and run.attributes.get("celery.task_name") == TASK_MATERIALIZE_DASHBOARD


def one(spans: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind == kind]
    assert len(found) == 1, f"{name}: {[(s.name, s.kind) for s in spans]}"
    return found[0]


def test_an_http_call_gets_its_span_in_the_callers_trace(
    settings: Settings, migrated: str, auth: Any, facility: str, spans: InMemorySpanExporter
) -> None:
    """The HTTP face traces like the gRPC port: one server span per request, continuing the
    caller's `traceparent`, named by route and carrying the rpc it ran."""
    import httpx

    server = start_in_thread(settings.model_copy(update={"tracing": "console"}))
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        headers = {**dict(auth("tia", "editor", facility)), "traceparent": f"00-{trace_id}-{parent}-01"}
        created = httpx.post(
            f"http://127.0.0.1:{server.running.http_port}/api/v1/dashboard/dashboards",
            json={"facilityId": facility, "title": "Traced"},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 200, created.text
    finally:
        server.stop()
    span = one(list(spans.get_finished_spans()), "POST /api/v1/dashboard/dashboards", SpanKind.SERVER)
    assert span.context is not None and format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == parent
    assert span.attributes is not None
    assert span.attributes.get("rpc.method") == "CreateDashboard"
    assert span.attributes.get("rpc.service") == "dashboard.v1.DashboardService"
