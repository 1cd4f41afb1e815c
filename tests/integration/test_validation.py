"""Every buf.validate rule is enforced before any handler runs, with the violated field named
in a google.rpc.BadRequest, on every service (even the ones not built yet)."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import duration_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from tests.harness.rpc import expect_failure

ID = str(uuid.uuid4())
POS = w.GridPosition(x=0, y=0, width=4, height=2)
KPI = w.KpiConfig(value_column="v")


def widget(**kw) -> w.Widget:
    base = {"dashboard_id": ID, "title": "t", "position": POS, "kpi": KPI}
    base.update(kw)
    return w.Widget(**base)


# (service fixture, method, request, violated field)
CASES = [
    ("dashboards", "GetDashboard", d.GetDashboardRequest(id="not-a-uuid"), "id"),
    ("dashboards", "GetDashboard", d.GetDashboardRequest(), "id"),
    ("dashboards", "CreateDashboard", d.CreateDashboardRequest(), "dashboard"),
    (
        "dashboards",
        "CreateDashboard",
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="x" * 201)),
        "dashboard.title",
    ),
    (
        "dashboards",
        "CreateDashboard",
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="t", description="x" * 4001)),
        "dashboard.description",
    ),
    (
        "dashboards",
        "CreateDashboard",
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="t", tags=["Bad Tag"])),
        "dashboard.tags[0]",
    ),
    (
        "dashboards",
        "CreateDashboard",
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="t", tags=["a", "a"])),
        "dashboard.tags",
    ),
    (
        "dashboards",
        "CreateDashboard",
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="t", tags=[f"t{i}" for i in range(33)])),
        "dashboard.tags",
    ),
    (
        "dashboards",
        "CreateDashboard",
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="t", visibility=7)),
        "dashboard.visibility",
    ),
    (
        "dashboards",
        "CreateDashboard",
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="t", layout=d.GridLayout(row_height=5000))),
        "dashboard.layout.row_height",
    ),
    (
        "dashboards",
        "CreateDashboard",
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="t", filters=[d.DashboardFilter(name="Bad-Name")])),
        "dashboard.filters[0].name",
    ),
    (
        "dashboards",
        "CreateDashboard",
        d.CreateDashboardRequest(dashboard=d.Dashboard(title="t"), request_id="nope"),
        "request_id",
    ),
    ("dashboards", "CreateDashboard", d.CreateDashboardRequest(dashboard=d.Dashboard(title="")), "dashboard.title"),
    ("dashboards", "ListDashboards", d.ListDashboardsRequest(page_size=1001), "page_size"),
    ("dashboards", "ListDashboards", d.ListDashboardsRequest(page_size=-1), "page_size"),
    ("dashboards", "ListDashboards", d.ListDashboardsRequest(order_by="owner_id; drop table"), "order_by"),
    ("dashboards", "UpdateDashboard", d.UpdateDashboardRequest(dashboard=d.Dashboard(id="x", title="t")), "dashboard"),
    ("dashboards", "PublishDashboard", d.PublishDashboardRequest(id=ID, version=-1), "version"),
    ("dashboards", "GetDashboardVersion", d.GetDashboardVersionRequest(dashboard_id=ID, version=0), "version"),
    (
        "dashboards",
        "RestoreDashboardVersion",
        d.RestoreDashboardVersionRequest(dashboard_id="x", version=1),
        "dashboard_id",
    ),
    ("widgets", "CreateWidget", w.CreateWidgetRequest(widget=widget(dashboard_id="")), "widget"),
    (
        "widgets",
        "CreateWidget",
        w.CreateWidgetRequest(widget=widget(position=w.GridPosition(x=10, y=0, width=4, height=1))),
        "widget.position",
    ),
    (
        "widgets",
        "CreateWidget",
        w.CreateWidgetRequest(widget=widget(position=w.GridPosition(x=12, y=0, width=1, height=1))),
        "widget.position.x",
    ),
    (
        "widgets",
        "CreateWidget",
        w.CreateWidgetRequest(widget=widget(position=w.GridPosition(x=0, y=0, width=0, height=1))),
        "widget.position.width",
    ),
    (
        "widgets",
        "CreateWidget",
        w.CreateWidgetRequest(widget=widget(position=w.GridPosition(x=0, y=0, width=2, height=25))),
        "widget.position.height",
    ),
    ("widgets", "CreateWidget", w.CreateWidgetRequest(widget=widget(kpi=w.KpiConfig())), "widget.kpi.value_column"),
    (
        "widgets",
        "CreateWidget",
        w.CreateWidgetRequest(widget=widget(line=w.LineChartConfig(x_column="x"))),
        "widget.line.y_columns",
    ),
    (
        "widgets",
        "CreateWidget",
        w.CreateWidgetRequest(widget=widget(kpi=w.KpiConfig(value_column="v", thresholds=[w.Threshold(color="red")]))),
        "widget.kpi.thresholds[0].color",
    ),
    (
        "widgets",
        "CreateWidget",
        w.CreateWidgetRequest(widget=widget(refresh_interval=duration_pb2.Duration(seconds=5))),
        "widget.refresh_interval",
    ),
    (
        "widgets",
        "CreateWidget",
        w.CreateWidgetRequest(widget=widget(query=w.QueryBinding(query_id="not-uuid"))),
        "widget.query.query_id",
    ),
    (
        "widgets",
        "CreateWidget",
        w.CreateWidgetRequest(
            widget=widget(bar=w.BarChartConfig(category_column="c", value_columns=["v"], orientation=9))
        ),
        "widget.bar.orientation",
    ),
    ("widgets", "GetWidgetData", w.GetWidgetDataRequest(widget_id="x"), "widget_id"),
    (
        "widgets",
        "GetWidgetData",
        w.GetWidgetDataRequest(widget_id=ID, parameter_values={"Bad Key": c.ParameterValue(int_value=1)}),
        'parameter_values["Bad Key"]',
    ),
    (
        "widgets",
        "GetWidgetData",
        w.GetWidgetDataRequest(widget_id=ID, parameter_values={"p": c.ParameterValue()}),
        'parameter_values["p"].kind',
    ),
    (
        "widgets",
        "WatchMaterializationJob",
        w.WatchMaterializationJobRequest(id=ID, since_revision=-1),
        "since_revision",
    ),
    (
        "queries",
        "CreateQuery",
        q.CreateQueryRequest(query=q.Query(name="n", sql="select 1", parameters=[q.ParameterSpec(name="p")])),
        "query.parameters[0].type",
    ),
    (
        "queries",
        "CreateQuery",
        q.CreateQueryRequest(query=q.Query(name="n", sql="select 1", options=q.QueryOptions(row_limit=-1))),
        "query.options.row_limit",
    ),
    ("queries", "RunQuery", q.RunQueryRequest(id="x"), "id"),
    ("exports", "CreateExport", e.CreateExportRequest(dashboard_id=ID), "format"),
    (
        "exports",
        "CreateExport",
        e.CreateExportRequest(dashboard_id=ID, format=e.EXPORT_FORMAT_PNG, options=e.ExportOptions(scale_factor=5)),
        "options.scale_factor",
    ),
    (
        "exports",
        "CreateExport",
        e.CreateExportRequest(
            dashboard_id=ID, format=e.EXPORT_FORMAT_PDF, options=e.ExportOptions(margins=e.Margins(top_mm=101))
        ),
        "options.margins.top_mm",
    ),
    ("exports", "BatchCreateExports", e.BatchCreateExportsRequest(), "requests"),
    ("exports", "DownloadExport", e.DownloadExportRequest(id=ID, chunk_size=8 * 1024 * 1024), "chunk_size"),
    ("shares", "ShareDashboard", s.ShareDashboardRequest(dashboard_id=ID, user_id="u"), "level"),
    ("shares", "ShareDashboard", s.ShareDashboardRequest(dashboard_id=ID, level=s.SHARE_LEVEL_VIEW), "grantee"),
    (
        "shares",
        "CreatePublicLink",
        s.CreatePublicLinkRequest(dashboard_id=ID, ttl=duration_pb2.Duration(seconds=400 * 86400)),
        "ttl",
    ),
]


@pytest.mark.parametrize(
    ("service", "method", "request_message", "field"), CASES, ids=[f"{m}:{f}" for _, m, _, f in CASES]
)
def test_rule_violation_names_the_field(request, auth, service, method, request_message, field):
    stub = request.getfixturevalue(service)
    md = auth("admin", "admin", "validation-facility")
    call = getattr(stub, method)
    if method.startswith(("Watch", "Download")):
        expect_failure(lambda: list(call(request_message, metadata=md)), grpc.StatusCode.INVALID_ARGUMENT, field=field)
    else:
        expect_failure(lambda: call(request_message, metadata=md), grpc.StatusCode.INVALID_ARGUMENT, field=field)


def test_all_violations_are_reported_at_once(dashboards, auth):
    failure = expect_failure(
        lambda: dashboards.CreateDashboard(
            d.CreateDashboardRequest(dashboard=d.Dashboard(title="x" * 300, tags=["BAD"]), request_id="bad"),
            metadata=auth("a", "admin", "f"),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {"dashboard.title", "dashboard.tags[0]", "request_id"} <= set(failure.fields)
