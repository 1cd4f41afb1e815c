"""Every rpc of the five services, typed: request and response classes, whether it streams, and
how safe it is to retry (`Idempotency`). `Client.call(rpc, request)` and `Client.stream(rpc,
request)` take these, so a request of the wrong type is a type error. A unit test checks this
table against the service descriptors, so it cannot drift from the protos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf import empty_pb2
from google.protobuf.message import Message

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
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from tessera_client.retry import Idempotency

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

DASHBOARD_SERVICE = "dashboard.v1.DashboardService"
WIDGET_SERVICE = "dashboard.v1.WidgetService"
QUERY_SERVICE = "dashboard.v1.QueryService"
EXPORT_SERVICE = "dashboard.v1.ExportService"
SHARE_SERVICE = "dashboard.v1.ShareService"
# Their rpcs are in tessera_client/report_rpcs.py, alert_rpcs.py and search_rpcs.py (not in ALL, the
# five original services' table).
REPORT_SERVICE = "dashboard.v1.ReportService"
ALERT_SERVICE = "dashboard.v1.AlertService"
SEARCH_SERVICE = "dashboard.v1.SearchService"

# The generated stub class of each service (they accept sync and grpc.aio channels alike).
STUBS: dict[str, Any] = {
    DASHBOARD_SERVICE: dashboard_pb2_grpc.DashboardServiceStub,
    WIDGET_SERVICE: widget_pb2_grpc.WidgetServiceStub,
    QUERY_SERVICE: query_pb2_grpc.QueryServiceStub,
    EXPORT_SERVICE: export_pb2_grpc.ExportServiceStub,
    SHARE_SERVICE: share_pb2_grpc.ShareServiceStub,
    REPORT_SERVICE: report_pb2_grpc.ReportServiceStub,
    ALERT_SERVICE: alert_pb2_grpc.AlertServiceStub,
    SEARCH_SERVICE: search_pb2_grpc.SearchServiceStub,
}

SAFE, KEYED, IDEMPOTENT, UNSAFE = Idempotency.SAFE, Idempotency.KEYED, Idempotency.IDEMPOTENT, Idempotency.UNSAFE


@dataclass(frozen=True)
class Rpc(Generic[Req, Resp]):
    service: str
    method: str
    request_type: type[Req]
    response_type: type[Resp]
    idempotency: Idempotency

    @property
    def full_name(self) -> str:
        return f"/{self.service}/{self.method}"


@dataclass(frozen=True)
class Unary(Rpc[Req, Resp]):
    pass


@dataclass(frozen=True)
class ServerStream(Rpc[Req, Resp]):
    pass


# --- DashboardService --------------------------------------------------------------------------
CREATE_DASHBOARD = Unary(DASHBOARD_SERVICE, "CreateDashboard", d.CreateDashboardRequest, d.Dashboard, KEYED)
GET_DASHBOARD = Unary(DASHBOARD_SERVICE, "GetDashboard", d.GetDashboardRequest, d.Dashboard, SAFE)
LIST_DASHBOARDS = Unary(DASHBOARD_SERVICE, "ListDashboards", d.ListDashboardsRequest, d.ListDashboardsResponse, SAFE)
UPDATE_DASHBOARD = Unary(DASHBOARD_SERVICE, "UpdateDashboard", d.UpdateDashboardRequest, d.Dashboard, UNSAFE)
DELETE_DASHBOARD = Unary(DASHBOARD_SERVICE, "DeleteDashboard", d.DeleteDashboardRequest, empty_pb2.Empty, UNSAFE)
PUBLISH_DASHBOARD = Unary(DASHBOARD_SERVICE, "PublishDashboard", d.PublishDashboardRequest, d.Dashboard, UNSAFE)
LIST_DASHBOARD_VERSIONS = Unary(
    DASHBOARD_SERVICE,
    "ListDashboardVersions",
    d.ListDashboardVersionsRequest,
    d.ListDashboardVersionsResponse,
    SAFE,
)
GET_DASHBOARD_VERSION = Unary(
    DASHBOARD_SERVICE, "GetDashboardVersion", d.GetDashboardVersionRequest, d.DashboardVersion, SAFE
)
RESTORE_DASHBOARD_VERSION = Unary(
    DASHBOARD_SERVICE, "RestoreDashboardVersion", d.RestoreDashboardVersionRequest, d.Dashboard, UNSAFE
)
# Portability: an export only reads (POST for its body); import and clone create, keyed by request_id.
EXPORT_DASHBOARD_DOCUMENT = Unary(
    DASHBOARD_SERVICE, "ExportDashboardDocument", d.ExportDashboardDocumentRequest, d.DashboardDocument, SAFE
)
IMPORT_DASHBOARD = Unary(
    DASHBOARD_SERVICE, "ImportDashboard", d.ImportDashboardRequest, d.ImportDashboardResponse, KEYED
)
CLONE_DASHBOARD = Unary(DASHBOARD_SERVICE, "CloneDashboard", d.CloneDashboardRequest, d.ImportDashboardResponse, KEYED)
# A batch's own request_id keys it (its items carry none).
BATCH_CLONE_DASHBOARDS = Unary(
    DASHBOARD_SERVICE,
    "BatchCloneDashboards",
    d.BatchCloneDashboardsRequest,
    d.BatchCloneDashboardsResponse,
    KEYED,
)

# --- WidgetService -----------------------------------------------------------------------------
CREATE_WIDGET = Unary(WIDGET_SERVICE, "CreateWidget", w.CreateWidgetRequest, w.Widget, KEYED)
GET_WIDGET = Unary(WIDGET_SERVICE, "GetWidget", w.GetWidgetRequest, w.Widget, SAFE)
LIST_WIDGETS = Unary(WIDGET_SERVICE, "ListWidgets", w.ListWidgetsRequest, w.ListWidgetsResponse, SAFE)
UPDATE_WIDGET = Unary(WIDGET_SERVICE, "UpdateWidget", w.UpdateWidgetRequest, w.Widget, UNSAFE)
DELETE_WIDGET = Unary(WIDGET_SERVICE, "DeleteWidget", w.DeleteWidgetRequest, empty_pb2.Empty, UNSAFE)
GET_WIDGET_DATA = Unary(WIDGET_SERVICE, "GetWidgetData", w.GetWidgetDataRequest, w.WidgetData, SAFE)
BATCH_GET_WIDGET_DATA = Unary(
    WIDGET_SERVICE, "BatchGetWidgetData", w.BatchGetWidgetDataRequest, w.BatchGetWidgetDataResponse, SAFE
)
MATERIALIZE_DASHBOARD = Unary(
    WIDGET_SERVICE, "MaterializeDashboard", w.MaterializeDashboardRequest, w.MaterializationJob, KEYED
)
GET_MATERIALIZATION_JOB = Unary(
    WIDGET_SERVICE, "GetMaterializationJob", w.GetMaterializationJobRequest, w.MaterializationJob, SAFE
)
WATCH_MATERIALIZATION_JOB = ServerStream(
    WIDGET_SERVICE,
    "WatchMaterializationJob",
    w.WatchMaterializationJobRequest,
    w.WatchMaterializationJobResponse,
    SAFE,
)

# --- QueryService ------------------------------------------------------------------------------
CREATE_QUERY = Unary(QUERY_SERVICE, "CreateQuery", q.CreateQueryRequest, q.Query, KEYED)
GET_QUERY = Unary(QUERY_SERVICE, "GetQuery", q.GetQueryRequest, q.Query, SAFE)
LIST_QUERIES = Unary(QUERY_SERVICE, "ListQueries", q.ListQueriesRequest, q.ListQueriesResponse, SAFE)
UPDATE_QUERY = Unary(QUERY_SERVICE, "UpdateQuery", q.UpdateQueryRequest, q.Query, UNSAFE)
DELETE_QUERY = Unary(QUERY_SERVICE, "DeleteQuery", q.DeleteQueryRequest, empty_pb2.Empty, UNSAFE)
LIST_QUERY_VERSIONS = Unary(
    QUERY_SERVICE, "ListQueryVersions", q.ListQueryVersionsRequest, q.ListQueryVersionsResponse, SAFE
)
GET_QUERY_VERSION = Unary(QUERY_SERVICE, "GetQueryVersion", q.GetQueryVersionRequest, q.QueryVersion, SAFE)
RUN_QUERY = Unary(QUERY_SERVICE, "RunQuery", q.RunQueryRequest, q.RunQueryResponse, SAFE)
VALIDATE_QUERY = Unary(QUERY_SERVICE, "ValidateQuery", q.ValidateQueryRequest, q.ValidateQueryResponse, SAFE)
REFRESH_MATERIALIZED_VIEW = Unary(
    QUERY_SERVICE, "RefreshMaterializedView", q.RefreshMaterializedViewRequest, q.Query, IDEMPOTENT
)

# --- ExportService -----------------------------------------------------------------------------
CREATE_EXPORT = Unary(EXPORT_SERVICE, "CreateExport", e.CreateExportRequest, e.ExportJob, KEYED)
BATCH_CREATE_EXPORTS = Unary(
    EXPORT_SERVICE, "BatchCreateExports", e.BatchCreateExportsRequest, e.BatchCreateExportsResponse, KEYED
)
GET_EXPORT = Unary(EXPORT_SERVICE, "GetExport", e.GetExportRequest, e.ExportJob, SAFE)
LIST_EXPORTS = Unary(EXPORT_SERVICE, "ListExports", e.ListExportsRequest, e.ListExportsResponse, SAFE)
CANCEL_EXPORT = Unary(EXPORT_SERVICE, "CancelExport", e.CancelExportRequest, e.ExportJob, IDEMPOTENT)
WATCH_EXPORT = ServerStream(EXPORT_SERVICE, "WatchExport", e.WatchExportRequest, e.WatchExportResponse, SAFE)
DOWNLOAD_EXPORT = ServerStream(
    EXPORT_SERVICE, "DownloadExport", e.DownloadExportRequest, e.DownloadExportResponse, SAFE
)

# --- ShareService ------------------------------------------------------------------------------
SHARE_DASHBOARD = Unary(SHARE_SERVICE, "ShareDashboard", s.ShareDashboardRequest, s.Share, IDEMPOTENT)
UNSHARE_DASHBOARD = Unary(SHARE_SERVICE, "UnshareDashboard", s.UnshareDashboardRequest, empty_pb2.Empty, UNSAFE)
LIST_SHARES = Unary(SHARE_SERVICE, "ListShares", s.ListSharesRequest, s.ListSharesResponse, SAFE)
CREATE_PUBLIC_LINK = Unary(SHARE_SERVICE, "CreatePublicLink", s.CreatePublicLinkRequest, s.PublicLink, UNSAFE)
LIST_PUBLIC_LINKS = Unary(SHARE_SERVICE, "ListPublicLinks", s.ListPublicLinksRequest, s.ListPublicLinksResponse, SAFE)
REVOKE_PUBLIC_LINK = Unary(SHARE_SERVICE, "RevokePublicLink", s.RevokePublicLinkRequest, s.PublicLink, IDEMPOTENT)
LIST_AUDIT_EVENTS = Unary(SHARE_SERVICE, "ListAuditEvents", s.ListAuditEventsRequest, s.ListAuditEventsResponse, SAFE)

ALL: tuple[Rpc[Any, Any], ...] = tuple(value for value in list(globals().values()) if isinstance(value, Rpc))


def with_request_ids(rpc: Rpc[Req, Resp], request: Req, new_id: Any) -> Req:
    """For a KEYED rpc: a copy of `request` whose empty `request_id`s (its own, or those of the
    items of a batch) are filled with `new_id()`, so every retry sends the same ids. Requests
    that already carry ids are returned unchanged."""
    if rpc.idempotency is not Idempotency.KEYED:
        return request
    fields = request.DESCRIPTOR.fields_by_name
    keyed: Any = type(request)()
    keyed.CopyFrom(request)
    if "request_id" in fields:
        if keyed.request_id:
            return request
        keyed.request_id = new_id()
        return keyed  # type: ignore[no-any-return]
    if "requests" in fields:
        missing = [item for item in keyed.requests if not item.request_id]
        if not missing:
            return request
        for item in missing:
            item.request_id = new_id()
        return keyed  # type: ignore[no-any-return]
    return request
