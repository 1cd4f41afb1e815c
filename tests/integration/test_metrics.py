"""The Prometheus endpoint after real traffic: rpc latency histograms and error counts by method
and code, and widget-data cache hits and misses by tier. The server here has its own metrics
registry, so the figures count only this test's calls."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.config import Settings
from tests.harness.rpc import expect_failure
from tests.harness.server import ServerHandle, start_in_thread

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
DASHBOARDS = "/dashboard.v1.DashboardService/"
GET_WIDGET_DATA = "/dashboard.v1.WidgetService/GetWidgetData"


@pytest.fixture(scope="module")
def metered(settings: Settings, migrated: str) -> Iterator[ServerHandle]:
    handle = start_in_thread(settings.model_copy(update={"metrics_port": 0}))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def channel_(metered: ServerHandle) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(metered.address) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def scrape(handle: ServerHandle) -> Samples:
    port = handle.running.metrics_port
    assert isinstance(port, int) and port > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_move_with_real_traffic(metered: ServerHandle, channel_: grpc.Channel, auth: Any) -> None:
    facility = f"fac-{uuid.uuid4().hex[:10]}"
    md = auth("mia", "editor", facility)
    dashboards = dashboard_pb2_grpc.DashboardServiceStub(channel_)
    widgets = widget_pb2_grpc.WidgetServiceStub(channel_)
    queries = query_pb2_grpc.QueryServiceStub(channel_)
    before = scrape(metered)

    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Metered")), metadata=md
    )
    for _ in range(3):
        dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=md)
    for _ in range(2):
        expect_failure(
            lambda: dashboards.GetDashboard(d.GetDashboardRequest(id=str(uuid.uuid4())), metadata=md),
            grpc.StatusCode.NOT_FOUND,
        )
    query = queries.CreateQuery(
        q.CreateQueryRequest(query=q.Query(facility_id=facility, name="metered", sql="SELECT 1 AS one")), metadata=md
    )
    widget = widgets.CreateWidget(
        w.CreateWidgetRequest(
            widget=w.Widget(
                dashboard_id=board.id,
                title="w",
                position=w.GridPosition(x=0, y=0, width=4, height=2),
                table=w.TableConfig(),
                query=w.QueryBinding(query_id=query.id),
            )
        ),
        metadata=md,
    )
    first = widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=md, timeout=30)
    second = widgets.GetWidgetData(w.GetWidgetDataRequest(widget_id=widget.id), metadata=md, timeout=30)
    assert (first.source, second.source) == (w.DATA_SOURCE_COMPUTED, w.DATA_SOURCE_MEMORY)

    after = scrape(metered)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    get = DASHBOARDS + "GetDashboard"
    # Latency histogram: one observation per call, by method and code, with its buckets.
    assert moved("tessera_rpc_duration_seconds_count", method=get, code="OK") == 3
    assert moved("tessera_rpc_duration_seconds_count", method=get, code="NOT_FOUND") == 2
    assert moved("tessera_rpc_duration_seconds_count", method=DASHBOARDS + "CreateDashboard", code="OK") == 1
    assert moved("tessera_rpc_duration_seconds_count", method=GET_WIDGET_DATA, code="OK") == 2
    assert value(after, "tessera_rpc_duration_seconds_sum", method=get, code="OK") > 0
    buckets = {
        dict(labels)["le"]: v
        for (name, labels), v in after.items()
        if name == "tessera_rpc_duration_seconds_bucket"
        and dict(labels).get("method") == get
        and dict(labels).get("code") == "OK"
    }
    assert len(buckets) > 5 and buckets["+Inf"] == value(
        after, "tessera_rpc_duration_seconds_count", method=get, code="OK"
    )
    # Error counter: NOT_FOUND counted, OK never.
    assert moved("tessera_rpc_errors_total", method=get, code="NOT_FOUND") == 2
    assert ("tessera_rpc_errors_total", frozenset({("method", get), ("code", "OK")})) not in after

    # Cache: the first read missed both tiers and computed, the second hit memory.
    assert moved("tessera_widget_cache_misses_total", tier="memory") == 1
    assert moved("tessera_widget_cache_misses_total", tier="database") == 1
    assert moved("tessera_widget_cache_hits_total", tier="memory") == 1
    assert moved("tessera_widget_data_served_total", source="computed") == 1
    assert moved("tessera_widget_data_served_total", source="memory") == 1
    # The data source's share: the one execution's round trip, within that call's own duration.
    get_data = "/dashboard.v1.WidgetService/GetWidgetData"
    assert moved("tessera_query_source_seconds_count") == 1
    assert (
        0
        < moved("tessera_query_source_seconds_sum")
        < moved("tessera_rpc_duration_seconds_sum", method=get_data, code="OK")
    )


def test_metrics_can_be_disabled(settings: Settings, migrated: str) -> None:
    handle = start_in_thread(settings.model_copy(update={"metrics_port": -1}))
    try:
        assert handle.running.metrics_port is None
    finally:
        handle.stop()
