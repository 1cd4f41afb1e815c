"""The five services with keyword arguments and Python values (sync). Each method is one rpc,
or one documented composition of rpcs (pagination, batches, create-watch-download).

Parameter and filter values are Python values (`tessera_client.values.parameter_value`):
`{"min_age": 65, "units": ["ICU", "ER"], "day": date(2026, 1, 5)}`.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import field_mask_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from tessera_client import rpcs
from tessera_client.errors import JobFailedError
from tessera_client.jobs import EXPORT, MATERIALIZATION, Download, JobKind
from tessera_client.rpcs import Req, Resp
from tessera_client.values import ParameterInput, duration, parameter_map

__all__ = ["Dashboards", "ExportResult", "Exports", "Queries", "Shares", "Widgets"]

Values = Mapping[str, ParameterInput] | None
BATCH_LIMIT = 100  # the most items BatchGetWidgetData and BatchCreateExports take at once


def _mask(fields: Sequence[str]) -> field_mask_pb2.FieldMask | None:
    return field_mask_pb2.FieldMask(paths=list(fields)) if fields else None


def _check(job: Any, check: bool) -> Any:
    if check and job.state != c.JOB_STATE_SUCCEEDED:
        raise JobFailedError(job)
    return job


class Caller(Protocol):
    """What the services need of a client (tessera_client.client.Client is one)."""

    def call(self, rpc: rpcs.Unary[Req, Resp], request: Req) -> Resp: ...

    def pages(self, rpc: rpcs.Unary[Req, Resp], request: Req, items: str) -> Iterator[Any]: ...

    def follow(
        self,
        kind: JobKind[Any],
        job_id: str,
        *,
        on_progress: Callable[[Any], None] | None = None,
        start: Any = None,
        timeout: float | None = None,
    ) -> Any: ...

    def download(
        self,
        export_id: str,
        destination: str | os.PathLike[str],
        *,
        chunk_size: int = 0,
        on_bytes: Callable[[int, int], None] | None = None,
    ) -> Download: ...


class _Service:
    def __init__(self, client: Caller) -> None:
        self._client = client

    def _follow(
        self,
        kind: Any,
        job: Any,
        on_progress: Callable[[Any], None] | None,
        timeout: float | None,
        check: bool,
    ) -> Any:
        """A job followed to its end (from its snapshot's revision when given one rather than an
        id); JobFailedError unless it SUCCEEDED when `check` is set."""
        job_id, start = (job, None) if isinstance(job, str) else (job.id, job)
        final = self._client.follow(kind, job_id, on_progress=on_progress, start=start, timeout=timeout)
        return _check(final, check)


class Dashboards(_Service):
    def create(self, dashboard: d.Dashboard | None = None, *, request_id: str = "", **fields: Any) -> d.Dashboard:
        """Creates a dashboard from a Dashboard message or its fields (title=..., tags=[...],
        filters=[...]); `facility_id` may be left out when the caller has one facility."""
        board = dashboard if dashboard is not None else d.Dashboard(**fields)
        return self._client.call(
            rpcs.CREATE_DASHBOARD, d.CreateDashboardRequest(dashboard=board, request_id=request_id)
        )

    def get(self, dashboard_id: str) -> d.Dashboard:
        return self._client.call(rpcs.GET_DASHBOARD, d.GetDashboardRequest(id=dashboard_id))

    def list(
        self,
        *,
        tags: Sequence[str] = (),
        owner_id: str = "",
        published: bool | None = None,
        facility_id: str = "",
        title_contains: str = "",
        order_by: str = "",
        page_size: int = 0,
        favorites_first: bool = False,
    ) -> Iterator[d.Dashboard]:
        """Every dashboard the caller may see that matches, across pages (widgets not included);
        with `favorites_first`, the caller's favorites lead (each group in `order_by`)."""
        request = d.ListDashboardsRequest(
            tags=tags,
            owner_id=owner_id,
            facility_id=facility_id,
            title_contains=title_contains,
            order_by=order_by,
            page_size=page_size,
            favorites_first=favorites_first,
        )
        if published is not None:
            request.published = published
        return self._client.pages(rpcs.LIST_DASHBOARDS, request, "dashboards")

    def update(self, dashboard: d.Dashboard, fields: Sequence[str] = ()) -> d.Dashboard:
        """Writes the `fields` of `dashboard` (every writable field when empty). Its `etag`, when
        set, refuses a stale write with AbortedError."""
        request = d.UpdateDashboardRequest(dashboard=dashboard, update_mask=_mask(fields))
        return self._client.call(rpcs.UPDATE_DASHBOARD, request)

    def delete(self, dashboard_id: str, *, etag: str = "") -> None:
        self._client.call(rpcs.DELETE_DASHBOARD, d.DeleteDashboardRequest(id=dashboard_id, etag=etag))

    def publish(self, dashboard_id: str, *, version: int = 0, etag: str = "") -> d.Dashboard:
        request = d.PublishDashboardRequest(id=dashboard_id, version=version, etag=etag)
        return self._client.call(rpcs.PUBLISH_DASHBOARD, request)

    def versions(self, dashboard_id: str, *, page_size: int = 0) -> Iterator[d.DashboardVersion]:
        """Newest first, without snapshots (see `version`)."""
        request = d.ListDashboardVersionsRequest(dashboard_id=dashboard_id, page_size=page_size)
        return self._client.pages(rpcs.LIST_DASHBOARD_VERSIONS, request, "versions")

    def version(self, dashboard_id: str, version: int) -> d.DashboardVersion:
        request = d.GetDashboardVersionRequest(dashboard_id=dashboard_id, version=version)
        return self._client.call(rpcs.GET_DASHBOARD_VERSION, request)

    def restore(self, dashboard_id: str, version: int, *, etag: str = "") -> d.Dashboard:
        request = d.RestoreDashboardVersionRequest(dashboard_id=dashboard_id, version=version, etag=etag)
        return self._client.call(rpcs.RESTORE_DASHBOARD_VERSION, request)

    # --- portability ---------------------------------------------------------------------

    def export_document(self, dashboard_id: str) -> d.DashboardDocument:
        """The dashboard's portable document (json_format.MessageToJson gives its file form)."""
        return self._client.call(rpcs.EXPORT_DASHBOARD_DOCUMENT, d.ExportDashboardDocumentRequest(id=dashboard_id))

    def import_document(
        self,
        document: d.DashboardDocument,
        *,
        facility_id: str = "",
        validate_only: bool = False,
        query_mode: d.QueryImportMode = d.QUERY_IMPORT_MODE_CREATE,
        query_mappings: Mapping[str, str] | None = None,
        title: str = "",
        request_id: str = "",
        title_conflict: d.TitleConflictPolicy = d.TITLE_CONFLICT_POLICY_REFUSE,
        dashboard_mappings: Mapping[str, str] | None = None,
    ) -> d.ImportDashboardResponse:
        """Imports a document as a new dashboard; InvalidArgumentError lists every conflict by field
        (nothing is changed). `query_mappings`: document query key -> an existing query's id;
        `dashboard_mappings`: a drill-through target of the document -> a dashboard of the target
        facility; `title_conflict`: what a title already taken there does (refuse, rename, keep)."""
        request = d.ImportDashboardRequest(
            facility_id=facility_id,
            document=document,
            validate_only=validate_only,
            query_mode=query_mode,
            query_mappings=dict(query_mappings or {}),
            title=title,
            request_id=request_id,
            title_conflict=title_conflict,
            dashboard_mappings=dict(dashboard_mappings or {}),
        )
        return self._client.call(rpcs.IMPORT_DASHBOARD, request)

    def clone(
        self,
        dashboard_id: str,
        *,
        facility_id: str = "",
        title: str = "",
        query_mode: d.QueryImportMode = d.QUERY_IMPORT_MODE_CREATE,
        request_id: str = "",
        title_conflict: d.TitleConflictPolicy = d.TITLE_CONFLICT_POLICY_REFUSE,
        dashboard_mappings: Mapping[str, str] | None = None,
    ) -> d.ImportDashboardResponse:
        """Copies a dashboard into its facility (same queries) or another one the caller administers.
        Within its facility the copy needs a new `title` or a `title_conflict` other than refuse;
        across facilities, `dashboard_mappings` names where each drill-through to another
        dashboard should lead there."""
        request = d.CloneDashboardRequest(
            id=dashboard_id,
            facility_id=facility_id,
            title=title,
            query_mode=query_mode,
            request_id=request_id,
            title_conflict=title_conflict,
            dashboard_mappings=dict(dashboard_mappings or {}),
        )
        return self._client.call(rpcs.CLONE_DASHBOARD, request)

    def clone_many(
        self,
        dashboards: Sequence[str | d.CloneDashboardRequest],
        *,
        facility_id: str = "",
        query_mode: d.QueryImportMode = d.QUERY_IMPORT_MODE_CREATE,
        title_conflict: d.TitleConflictPolicy = d.TITLE_CONFLICT_POLICY_REFUSE,
        dashboard_mappings: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> builtins.list[d.ImportDashboardResponse]:
        """Copies several dashboards in one call, all or nothing (BatchCloneDashboards): ids get
        the keyword options, CloneDashboardRequest items go as they are. InvalidArgumentError
        names each problem at `requests[i].*`; a drill-through between two dashboards copied into
        the same facility opens the copy. Returns the copies in the order given."""
        items = [
            item
            if isinstance(item, d.CloneDashboardRequest)
            else d.CloneDashboardRequest(
                id=item,
                facility_id=facility_id,
                query_mode=query_mode,
                title_conflict=title_conflict,
                dashboard_mappings=dict(dashboard_mappings or {}),
            )
            for item in dashboards
        ]
        request = d.BatchCloneDashboardsRequest(requests=items, request_id=request_id)
        return list(self._client.call(rpcs.BATCH_CLONE_DASHBOARDS, request).clones)


class Widgets(_Service):
    def create(self, widget: w.Widget | None = None, *, request_id: str = "", **fields: Any) -> w.Widget:
        """Creates a widget from a Widget message or its fields (dashboard_id=..., title=...,
        position=GridPosition(...), one config: kpi=/line=/area=/bar=/table=/heatmap=/map=)."""
        item = widget if widget is not None else w.Widget(**fields)
        return self._client.call(rpcs.CREATE_WIDGET, w.CreateWidgetRequest(widget=item, request_id=request_id))

    def get(self, widget_id: str) -> w.Widget:
        return self._client.call(rpcs.GET_WIDGET, w.GetWidgetRequest(id=widget_id))

    def list(self, dashboard_id: str, *, page_size: int = 0) -> Iterator[w.Widget]:
        request = w.ListWidgetsRequest(dashboard_id=dashboard_id, page_size=page_size)
        return self._client.pages(rpcs.LIST_WIDGETS, request, "widgets")

    def update(self, widget: w.Widget, fields: Sequence[str] = ()) -> w.Widget:
        return self._client.call(rpcs.UPDATE_WIDGET, w.UpdateWidgetRequest(widget=widget, update_mask=_mask(fields)))

    def delete(self, widget_id: str, *, etag: str = "") -> None:
        self._client.call(rpcs.DELETE_WIDGET, w.DeleteWidgetRequest(id=widget_id, etag=etag))

    @staticmethod
    def data_request(
        widget_id: str,
        *,
        parameters: Values = None,
        filters: Values = None,
        cross_filters: Sequence[w.CrossFilterValue] = (),
        dashboard_version: int = 0,
        max_age: float | None = None,
        force_refresh: bool = False,
    ) -> w.GetWidgetDataRequest:
        request = w.GetWidgetDataRequest(
            widget_id=widget_id,
            dashboard_version=dashboard_version,
            parameter_values=parameter_map(parameters),
            filter_values=parameter_map(filters),
            cross_filters=cross_filters,
            force_refresh=force_refresh,
        )
        if max_age is not None:
            request.max_age.CopyFrom(duration(max_age))
        return request

    def data(
        self,
        widget_id: str,
        *,
        parameters: Values = None,
        filters: Values = None,
        cross_filters: Sequence[w.CrossFilterValue] = (),
        dashboard_version: int = 0,
        max_age: float | None = None,
        force_refresh: bool = False,
    ) -> w.WidgetData:
        """A widget's data; `source` says whether it came from memory, the database, a fresh
        computation or a stale entry being refreshed. `max_age` in seconds."""
        request = self.data_request(
            widget_id,
            parameters=parameters,
            filters=filters,
            cross_filters=cross_filters,
            dashboard_version=dashboard_version,
            max_age=max_age,
            force_refresh=force_refresh,
        )
        return self._client.call(rpcs.GET_WIDGET_DATA, request)

    def batch_data(self, requests: Iterable[w.GetWidgetDataRequest | str]) -> builtins.list[w.WidgetData]:
        """The data of many widgets of one dashboard, in request order, in as few calls as the
        server's batch limit allows. Items are requests or widget ids."""
        items = [r if isinstance(r, w.GetWidgetDataRequest) else w.GetWidgetDataRequest(widget_id=r) for r in requests]
        out: list[w.WidgetData] = []
        for start in range(0, len(items), BATCH_LIMIT):
            batch = w.BatchGetWidgetDataRequest(requests=items[start : start + BATCH_LIMIT])
            out.extend(self._client.call(rpcs.BATCH_GET_WIDGET_DATA, batch).data)
        return out

    def dashboard_data(
        self, dashboard_id: str, *, filters: Values = None, force_refresh: bool = False
    ) -> dict[str, w.WidgetData]:
        """The data of every widget of a dashboard that shows a query, by widget id."""
        ids = [widget.id for widget in self.list(dashboard_id) if widget.query.query_id]
        requests = [self.data_request(i, filters=filters, force_refresh=force_refresh) for i in ids]
        return {data.widget_id: data for data in self.batch_data(requests)}

    def materialize(
        self, dashboard_id: str, *, dashboard_version: int = 0, filters: Values = None, request_id: str = ""
    ) -> w.MaterializationJob:
        """Starts a materialization job (see `materialize_and_wait`)."""
        request = w.MaterializeDashboardRequest(
            dashboard_id=dashboard_id,
            dashboard_version=dashboard_version,
            filter_values=parameter_map(filters),
            request_id=request_id,
        )
        return self._client.call(rpcs.MATERIALIZE_DASHBOARD, request)

    def job(self, job_id: str) -> w.MaterializationJob:
        return self._client.call(rpcs.GET_MATERIALIZATION_JOB, w.GetMaterializationJobRequest(id=job_id))

    def wait_job(
        self,
        job: str | w.MaterializationJob,
        *,
        on_progress: Callable[[w.MaterializationJob], None] | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> w.MaterializationJob:
        """Follows the job's watch stream (resuming after drops) to its end; JobFailedError when
        it did not succeed and `check` is set. Given a job snapshot rather than an id, reports
        it first and watches from its revision."""
        return self._follow(MATERIALIZATION, job, on_progress, timeout, check)  # type: ignore[no-any-return]

    def materialize_and_wait(
        self,
        dashboard_id: str,
        *,
        dashboard_version: int = 0,
        filters: Values = None,
        on_progress: Callable[[w.MaterializationJob], None] | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> w.MaterializationJob:
        job = self.materialize(dashboard_id, dashboard_version=dashboard_version, filters=filters)
        return self.wait_job(job, on_progress=on_progress, timeout=timeout, check=check)


class Queries(_Service):
    def create(self, query: q.Query | None = None, *, request_id: str = "", **fields: Any) -> q.Query:
        """Creates a query from a Query message or its fields (name=..., sql=..., parameters=[...])."""
        item = query if query is not None else q.Query(**fields)
        return self._client.call(rpcs.CREATE_QUERY, q.CreateQueryRequest(query=item, request_id=request_id))

    def get(self, query_id: str) -> q.Query:
        return self._client.call(rpcs.GET_QUERY, q.GetQueryRequest(id=query_id))

    def list(
        self,
        *,
        name_contains: str = "",
        kind: q.QueryKind = q.QUERY_KIND_UNSPECIFIED,
        tags: Sequence[str] = (),
        template: bool | None = None,
        page_size: int = 0,
    ) -> Iterator[q.Query]:
        request = q.ListQueriesRequest(name_contains=name_contains, kind=kind, tags=tags, page_size=page_size)
        if template is not None:
            request.template = template
        return self._client.pages(rpcs.LIST_QUERIES, request, "queries")

    def update(self, query: q.Query, fields: Sequence[str] = ()) -> q.Query:
        return self._client.call(rpcs.UPDATE_QUERY, q.UpdateQueryRequest(query=query, update_mask=_mask(fields)))

    def delete(self, query_id: str, *, force: bool = False, etag: str = "") -> None:
        self._client.call(rpcs.DELETE_QUERY, q.DeleteQueryRequest(id=query_id, force=force, etag=etag))

    def versions(self, query_id: str, *, page_size: int = 0) -> Iterator[q.QueryVersion]:
        request = q.ListQueryVersionsRequest(query_id=query_id, page_size=page_size)
        return self._client.pages(rpcs.LIST_QUERY_VERSIONS, request, "versions")

    def version(self, query_id: str, version: int) -> q.QueryVersion:
        return self._client.call(rpcs.GET_QUERY_VERSION, q.GetQueryVersionRequest(query_id=query_id, version=version))

    def run(
        self,
        query_id: str,
        *,
        parameters: Values = None,
        version: int = 0,
        row_limit: int = 0,
        facility_id: str = "",
    ) -> q.RunQueryResponse:
        request = q.RunQueryRequest(
            id=query_id,
            version=version,
            parameter_values=parameter_map(parameters),
            row_limit=row_limit,
            facility_id=facility_id,
        )
        return self._client.call(rpcs.RUN_QUERY, request)

    def validate(self, sql: str, parameters: Sequence[q.ParameterSpec] = ()) -> q.ValidateQueryResponse:
        return self._client.call(rpcs.VALIDATE_QUERY, q.ValidateQueryRequest(sql=sql, parameters=parameters))

    def refresh_view(self, query_id: str) -> q.Query:
        return self._client.call(rpcs.REFRESH_MATERIALIZED_VIEW, q.RefreshMaterializedViewRequest(id=query_id))


@dataclass(frozen=True)
class ExportResult:
    """A finished export and where its verified file is."""

    job: e.ExportJob
    path: Path
    file: e.ExportFile


class Exports(_Service):
    @staticmethod
    def request(
        dashboard_id: str,
        *,
        format: e.ExportFormat = e.EXPORT_FORMAT_PDF,
        options: e.ExportOptions | None = None,
        dashboard_version: int = 0,
        filters: Values = None,
        request_id: str = "",
        widget_id: str = "",
    ) -> e.CreateExportRequest:
        """`widget_id` names the widget whose data a CSV or XLSX export holds."""
        return e.CreateExportRequest(
            dashboard_id=dashboard_id,
            format=format,
            options=options,
            dashboard_version=dashboard_version,
            filter_values=parameter_map(filters),
            request_id=request_id,
            widget_id=widget_id,
        )

    def create(
        self,
        dashboard_id: str,
        *,
        format: e.ExportFormat = e.EXPORT_FORMAT_PDF,
        options: e.ExportOptions | None = None,
        dashboard_version: int = 0,
        filters: Values = None,
        request_id: str = "",
        widget_id: str = "",
    ) -> e.ExportJob:
        """Starts an export of the published version (or `dashboard_version`); CSV and XLSX
        export the data of `widget_id`."""
        request = self.request(
            dashboard_id,
            format=format,
            options=options,
            dashboard_version=dashboard_version,
            filters=filters,
            request_id=request_id,
            widget_id=widget_id,
        )
        return self._client.call(rpcs.CREATE_EXPORT, request)

    @staticmethod
    def query_request(
        query_id: str,
        *,
        format: e.ExportFormat = e.EXPORT_FORMAT_CSV,
        parameters: Values = None,
        query_version: int = 0,
        request_id: str = "",
    ) -> e.CreateExportRequest:
        """A CSV or XLSX of a saved query's run (the latest version unless `query_version`)."""
        source = e.QueryExportSource(
            query_id=query_id, query_version=query_version, parameter_values=parameter_map(parameters)
        )
        return e.CreateExportRequest(format=format, query=source, request_id=request_id)

    def create_query_export(
        self,
        query_id: str,
        *,
        format: e.ExportFormat = e.EXPORT_FORMAT_CSV,
        parameters: Values = None,
        query_version: int = 0,
        request_id: str = "",
    ) -> e.ExportJob:
        """Starts a CSV or XLSX export of a saved query's run, masked for the caller (who must be
        allowed to run the query)."""
        request = self.query_request(
            query_id, format=format, parameters=parameters, query_version=query_version, request_id=request_id
        )
        return self._client.call(rpcs.CREATE_EXPORT, request)

    def batch_create(self, requests: Sequence[e.CreateExportRequest]) -> builtins.list[e.ExportJob]:
        """Starts several exports in one call: all or none (at most 100)."""
        if len(requests) > BATCH_LIMIT:
            raise ValueError(f"requests: at most {BATCH_LIMIT} exports per batch, got {len(requests)}")
        return list(
            self._client.call(rpcs.BATCH_CREATE_EXPORTS, e.BatchCreateExportsRequest(requests=requests)).exports
        )

    def get(self, export_id: str) -> e.ExportJob:
        return self._client.call(rpcs.GET_EXPORT, e.GetExportRequest(id=export_id))

    def list(
        self, *, dashboard_id: str = "", state: c.JobState = c.JOB_STATE_UNSPECIFIED, page_size: int = 0
    ) -> Iterator[e.ExportJob]:
        """Newest first; the caller's own exports when no dashboard is given."""
        request = e.ListExportsRequest(dashboard_id=dashboard_id, state=state, page_size=page_size)
        return self._client.pages(rpcs.LIST_EXPORTS, request, "exports")

    def cancel(self, export_id: str) -> e.ExportJob:
        return self._client.call(rpcs.CANCEL_EXPORT, e.CancelExportRequest(id=export_id))

    def wait(
        self,
        export: str | e.ExportJob,
        *,
        on_progress: Callable[[e.ExportJob], None] | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> e.ExportJob:
        """Follows WatchExport (resuming after drops) to the end; JobFailedError unless SUCCEEDED
        and `check`. Given a snapshot rather than an id, reports it first and watches after it."""
        return self._follow(EXPORT, export, on_progress, timeout, check)  # type: ignore[no-any-return]

    def download(
        self,
        export_id: str,
        destination: str | os.PathLike[str],
        *,
        on_bytes: Callable[[int, int], None] | None = None,
        chunk_size: int = 0,
    ) -> Download:
        return self._client.download(export_id, destination, chunk_size=chunk_size, on_bytes=on_bytes)

    def export(
        self,
        dashboard_id: str,
        destination: str | os.PathLike[str],
        *,
        format: e.ExportFormat = e.EXPORT_FORMAT_PDF,
        options: e.ExportOptions | None = None,
        dashboard_version: int = 0,
        filters: Values = None,
        on_progress: Callable[[e.ExportJob], None] | None = None,
        on_bytes: Callable[[int, int], None] | None = None,
        timeout: float | None = None,
        widget_id: str = "",
    ) -> ExportResult:
        """Creates an export, follows it to the end and downloads the verified file to
        `destination` (a path, or a directory for the server's suggested file name). CSV and
        XLSX export the data of `widget_id`."""
        job = self.create(
            dashboard_id,
            format=format,
            options=options,
            dashboard_version=dashboard_version,
            filters=filters,
            widget_id=widget_id,
        )
        final = self.wait(job, on_progress=on_progress, timeout=timeout)
        download = self.download(final.id, destination, on_bytes=on_bytes)
        return ExportResult(final, download.path, download.file)

    def export_query(
        self,
        query_id: str,
        destination: str | os.PathLike[str],
        *,
        format: e.ExportFormat = e.EXPORT_FORMAT_CSV,
        parameters: Values = None,
        query_version: int = 0,
        on_progress: Callable[[e.ExportJob], None] | None = None,
        on_bytes: Callable[[int, int], None] | None = None,
        timeout: float | None = None,
    ) -> ExportResult:
        """`export` for a saved query's run: creates the CSV/XLSX export, follows it to the end and
        downloads the verified file to `destination`."""
        job = self.create_query_export(query_id, format=format, parameters=parameters, query_version=query_version)
        final = self.wait(job, on_progress=on_progress, timeout=timeout)
        download = self.download(final.id, destination, on_bytes=on_bytes)
        return ExportResult(final, download.path, download.file)

    def export_many(
        self,
        requests: Sequence[e.CreateExportRequest],
        directory: str | os.PathLike[str],
        *,
        on_progress: Callable[[e.ExportJob], None] | None = None,
        timeout: float | None = None,
    ) -> builtins.list[ExportResult]:
        """Batch export: creates every export in one call, waits for each, downloads each into
        `directory` under the server's suggested name. In request order."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        jobs = self.batch_create(requests)
        results: list[ExportResult] = []
        for job in jobs:
            final = self.wait(job, on_progress=on_progress, timeout=timeout)
            download = self.download(final.id, target)
            results.append(ExportResult(final, download.path, download.file))
        return results


class Shares(_Service):
    def share(
        self, dashboard_id: str, *, level: s.ShareLevel, user_id: str | None = None, role: s.Role | None = None
    ) -> s.Share:
        """Grants VIEW / EDIT / MANAGE (share_pb2.SHARE_LEVEL_*) to a user or to a role
        (share_pb2.ROLE_*); sharing again changes the level."""
        request = s.ShareDashboardRequest(dashboard_id=dashboard_id, level=level)
        _grantee(request, user_id, role)
        return self._client.call(rpcs.SHARE_DASHBOARD, request)

    def unshare(self, dashboard_id: str, *, user_id: str | None = None, role: s.Role | None = None) -> None:
        request = s.UnshareDashboardRequest(dashboard_id=dashboard_id)
        _grantee(request, user_id, role)
        self._client.call(rpcs.UNSHARE_DASHBOARD, request)

    def list(self, dashboard_id: str, *, page_size: int = 0) -> Iterator[s.Share]:
        request = s.ListSharesRequest(dashboard_id=dashboard_id, page_size=page_size)
        return self._client.pages(rpcs.LIST_SHARES, request, "shares")

    def create_link(self, dashboard_id: str, *, ttl_seconds: float | None = None) -> s.PublicLink:
        """A public link to the published version; its `token` is shown only in this answer."""
        request = s.CreatePublicLinkRequest(dashboard_id=dashboard_id)
        if ttl_seconds is not None:
            request.ttl.CopyFrom(duration(ttl_seconds))
        return self._client.call(rpcs.CREATE_PUBLIC_LINK, request)

    def links(self, dashboard_id: str, *, page_size: int = 0) -> Iterator[s.PublicLink]:
        request = s.ListPublicLinksRequest(dashboard_id=dashboard_id, page_size=page_size)
        return self._client.pages(rpcs.LIST_PUBLIC_LINKS, request, "links")

    def revoke_link(self, link_id: str) -> s.PublicLink:
        return self._client.call(rpcs.REVOKE_PUBLIC_LINK, s.RevokePublicLinkRequest(id=link_id))

    def audit_events(
        self,
        *,
        actor: str = "",
        facility_id: str = "",
        resource_id: str = "",
        phi_unmasked_only: bool = False,
        page_size: int = 0,
    ) -> Iterator[s.AuditEvent]:
        """Audit events, newest first (admins only)."""
        request = s.ListAuditEventsRequest(
            actor=actor,
            facility_id=facility_id,
            resource_id=resource_id,
            phi_unmasked_only=phi_unmasked_only,
            page_size=page_size,
        )
        return self._client.pages(rpcs.LIST_AUDIT_EVENTS, request, "events")


def _grantee(request: Any, user_id: str | None, role: s.Role | None) -> None:
    if (user_id is None) == (role is None):
        raise ValueError("give exactly one of user_id and role")
    if user_id is not None:
        request.user_id = user_id
    else:
        request.role = role
