"""From a GetWidgetDataRequest to what runs: the widget (as the caller may see it), its query
version, and the validated, bound parameter values.

Access: the caller needs read access to the widget's dashboard (NOT_FOUND otherwise, for the
widget, so the dashboard's id is not revealed). A caller limited to the published version
(Access.READ_PUBLISHED: public dashboards, public links) reads the widget as the published
snapshot holds it, and no other version; `dashboard_version` > 0 reads the widget from that
version's snapshot (other versions need VIEW). A widget deleted since a version was taken still
exists in that version.

Values, later wins:

    the query's parameter defaults                        (applied by bind())
  < the widget binding's `parameter_values`
  < dashboard filter defaults, then the request's `filter_values`  (through `filter_bindings`)
  < the request's `cross_filters`                                  (through `filter_bindings`)
  < the request's `parameter_values`

Values that come from configuration (binding, filters) for parameters the query version does not
declare are dropped, so a widget following the latest version keeps working when a parameter is
removed; the caller's own `parameter_values` must name declared parameters. A cross-filter never
filters the widget it came from (its `source_widget_id`): the selection highlights there instead.
Filter names must be declared by the dashboard (version) being read. bind() then validates
everything (INVALID_ARGUMENT naming `parameter_values["<name>"]`) before any cache lookup.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import common_pb2, dashboard_pb2, query_pb2, widget_pb2
from server.access.policy import Access, require_dashboard, visible_dashboards
from server.audit import facts as audit_facts
from server.auth.principal import Principal
from server.dashboards.access import dashboard_facts, decide, grants_column, load_dashboard
from server.dashboards.versions import load_snapshot
from server.dashboards.widget_convert import widget_from_row
from server.db.schema import dashboard_versions, dashboards, query_versions, widget_queries, widgets
from server.errors import FailedPrecondition, InvalidArgument, NotFound, ViolationCollector
from server.memo import Memo
from server.protojson import from_json
from server.queries.convert import query_from_rows
from server.queries.parameters import bind, canonical
from server.widgetdata.definitions import Definition
from server.widgetdata.request import CacheRequest

__all__ = ["KeptResolutions", "Resolved", "load_definition", "merge_values", "resolve", "resolve_kept"]

# Requests whose resolution of a kept definition is kept (KeptResolutions): small ones only.
RESOLUTIONS_KEPT = 2_048
RESOLVED_REQUEST_BYTES_KEPT = 1_024


@dataclass(frozen=True)
class Resolved:
    widget: widget_pb2.Widget
    widget_in_table: bool  # False: it exists only in the snapshot read
    dashboard_id: str
    query: query_pb2.Query
    refresh_time: datetime | None  # the view's refresh time (MATERIALIZED_VIEW queries)
    values: dict[str, common_pb2.ParameterValue]  # merged; what the executor binds
    bound: dict[str, object]  # bind(query.parameters, values)
    # The cache requests made of it, by (masking level, generation, max_age, force_refresh): a
    # kept resolution serves every hot read of its request (service.py).
    cache_requests: dict[tuple[int, int, float, bool], CacheRequest] = field(
        default_factory=dict, compare=False, repr=False
    )

    @functools.cached_property
    def parameters(self) -> str:
        """The bound values' canonical text, for cache keys."""
        return canonical(self.bound)


def _present(value: common_pb2.ParameterValue) -> bool:
    return value.WhichOneof("kind") is not None


def merge_values(
    query: query_pb2.Query,
    widget: widget_pb2.Widget,
    filters: Iterable[dashboard_pb2.DashboardFilter],
    request: widget_pb2.GetWidgetDataRequest,
) -> dict[str, common_pb2.ParameterValue]:
    """The merged parameter values (see the module docstring). Raises InvalidArgument for filter
    names the dashboard does not declare."""
    declared = {p.name for p in query.parameters}
    binding = widget.query
    merged: dict[str, common_pb2.ParameterValue] = {}

    def configured(name: str, value: common_pb2.ParameterValue) -> None:
        if name in declared and _present(value):
            merged[name] = value

    for name, value in binding.parameter_values.items():
        configured(name, value)

    problems = ViolationCollector()
    filter_values: dict[str, common_pb2.ParameterValue] = {}
    known: set[str] = set()
    for dashboard_filter in filters:
        known.add(dashboard_filter.name)
        if dashboard_filter.HasField("default_value") and _present(dashboard_filter.default_value):
            filter_values[dashboard_filter.name] = dashboard_filter.default_value
    for name, value in request.filter_values.items():
        if name in known:
            filter_values[name] = value
        else:
            problems.add(f'filter_values["{name}"]', f"the dashboard declares no filter {name!r}", "UNKNOWN_FILTER")
    cross: dict[str, common_pb2.ParameterValue] = {}
    for i, selection in enumerate(request.cross_filters):
        if selection.filter_name not in known:
            problems.add(
                f"cross_filters[{i}].filter_name",
                f"the dashboard declares no filter {selection.filter_name!r}",
                "UNKNOWN_FILTER",
            )
        elif selection.source_widget_id.lower() != widget.id.lower():
            cross[selection.filter_name] = selection.value
    if problems.violations:
        first = problems.violations[0]
        raise InvalidArgument(
            f"{first.field}: {first.description}",
            violations=problems.violations,
            reason="UNKNOWN_FILTER",
        )

    for layer in (filter_values, cross):
        for parameter, filter_name in binding.filter_bindings.items():
            if filter_name in layer:
                configured(parameter, layer[filter_name])

    for name, value in request.parameter_values.items():
        merged[name] = value  # bind() refuses names the query does not declare
    return merged


async def _dashboard_in_snapshot(
    conn: AsyncConnection, principal: Principal, widget_id: uuid.UUID, version: int
) -> Any:
    """The dashboard of a widget deleted since: a snapshot the caller may read (the asked-for
    version, else the published one) that still holds it. None when there is none."""
    snapshot_version = dashboard_versions.c.version == (version if version else dashboards.c.published_version)
    return (
        await conn.execute(
            select(dashboards.c.id)
            .join(
                dashboard_versions,
                and_(dashboard_versions.c.dashboard_id == dashboards.c.id, snapshot_version),
            )
            .where(
                visible_dashboards(principal),
                dashboard_versions.c.snapshot["widgets"].contains([{"id": str(widget_id)}]),
            )
            .limit(1)
        )
    ).scalar_one_or_none()


# The current widget row with, in the same round trip, its dashboard and shares (what the policy
# needs) and the query it binds (head and the pinned, else the latest, version). Columns of the
# dashboard and the query are prefixed; the widget's keep their names (widget_from_row reads them).
_DASHBOARD_PREFIX = "dashboard__"
_QUERY_PREFIX = "query__"
_VERSION_COLUMNS = ("sql", "parameters", "options", "sensitive_columns")
_WIDGET_WITH_CONTEXT = (
    select(
        widgets,
        *(c.label(_DASHBOARD_PREFIX + c.name) for c in dashboards.c),
        grants_column().label(_DASHBOARD_PREFIX + "grants"),
        *(c.label(_QUERY_PREFIX + c.name) for c in widget_queries.c),
        query_versions.c.version.label(_QUERY_PREFIX + "pinned_version"),
        *(query_versions.c[name].label(_QUERY_PREFIX + name) for name in _VERSION_COLUMNS),
    )
    .select_from(
        widgets.join(dashboards, dashboards.c.id == widgets.c.dashboard_id)
        .outerjoin(widget_queries, widget_queries.c.id == widgets.c.query_id)
        .outerjoin(
            query_versions,
            and_(
                query_versions.c.query_id == widget_queries.c.id,
                # As _load_query: the binding's version, 0/NULL meaning the query's latest.
                query_versions.c.version
                == func.coalesce(func.nullif(widgets.c.query_version, 0), widget_queries.c.version),
            ),
        )
    )
    .where(widgets.c.id == bindparam("widget_id"))
)


def _prefixed(row: Row[Any], prefix: str) -> SimpleNamespace:
    """The columns of `row` named `prefix...`, without the prefix."""
    return SimpleNamespace(**{k[len(prefix) :]: v for k, v in row._mapping.items() if k.startswith(prefix)})


async def _load_widget(
    conn: AsyncConnection, widget_id: uuid.UUID
) -> tuple[Any, SimpleNamespace, SimpleNamespace | None] | None:
    """(widget row, its dashboard, the query its row binds, None when none exists) for a widget
    of the widgets table; None for any other id."""
    row = (await conn.execute(_WIDGET_WITH_CONTEXT, {"widget_id": widget_id})).first()
    if row is None:
        return None
    query = _prefixed(row, _QUERY_PREFIX)
    return row, _prefixed(row, _DASHBOARD_PREFIX), query if query.id is not None else None


async def _load_query(
    conn: AsyncConnection, binding: widget_pb2.QueryBinding, facility_id: str
) -> tuple[Any, SimpleNamespace]:
    """(head row, version row) of the bound query, which must be in the dashboard's facility;
    one round trip."""
    try:
        query_id = uuid.UUID(binding.query_id)
    except ValueError:
        query_id = None
    found = None
    if query_id is not None:
        version = query_versions.c.version == (binding.query_version or widget_queries.c.version)
        found = (
            await conn.execute(
                select(
                    widget_queries,
                    query_versions.c.version.label("pinned_version"),
                    query_versions.c.sql,
                    query_versions.c.parameters,
                    query_versions.c.options,
                    query_versions.c.sensitive_columns,
                )
                .select_from(
                    widget_queries.outerjoin(
                        query_versions, and_(query_versions.c.query_id == widget_queries.c.id, version)
                    )
                )
                .where(widget_queries.c.id == query_id)
            )
        ).first()
    return _checked(found, binding, facility_id)


def _checked(found: Any, binding: widget_pb2.QueryBinding, facility_id: str) -> tuple[Any, SimpleNamespace]:
    """(head, version row) of a query found for `binding` (None: no such query), or why not."""
    if found is None or found.facility_id != facility_id:
        # One answer for "deleted" and "another facility's", like the widget checks at save time.
        raise FailedPrecondition(
            "the widget's query does not exist in the dashboard's facility",
            reason="QUERY_NOT_FOUND",
            metadata={"query_id": binding.query_id},
        )
    if found.pinned_version is None:
        raise FailedPrecondition(
            f"the widget pins version {binding.query_version} of its query, which does not exist",
            reason="QUERY_VERSION_NOT_FOUND",
            metadata={"query_id": binding.query_id, "query_version": str(binding.query_version)},
        )
    version_row = SimpleNamespace(version=found.pinned_version, **{n: getattr(found, n) for n in _VERSION_COLUMNS})
    return found, version_row


def _same_binding(binding: widget_pb2.QueryBinding, row: Any) -> bool:
    """Whether `binding` (the widget as read: current or from a snapshot) selects what the row's
    own columns selected in _load_widget."""
    return binding.query_id.lower() == str(row.query_id) and binding.query_version == (row.query_version or 0)


async def resolve(conn: AsyncConnection, principal: Principal, request: widget_pb2.GetWidgetDataRequest) -> Resolved:
    try:
        widget_id = uuid.UUID(request.widget_id)
    except ValueError:
        raise NotFound("widget", request.widget_id) from None
    loaded = await _load_widget(conn, widget_id)
    row: Any = None
    joined_query: Any = None
    board: Any
    try:
        if loaded is not None:
            row, board, joined_query = loaded
            access = decide(principal, board, Access.READ_PUBLISHED)
        else:
            dashboard_id = await _dashboard_in_snapshot(conn, principal, widget_id, request.dashboard_version)
            if dashboard_id is None:
                raise NotFound("widget", request.widget_id)
            board, access = await load_dashboard(conn, principal, str(dashboard_id), Access.READ_PUBLISHED)
    except NotFound:
        raise NotFound("widget", request.widget_id) from None
    dashboard_id = board.id

    version = request.dashboard_version
    if access is Access.READ_PUBLISHED:
        # Such a reader sees the published version and nothing else (as GetDashboardVersion).
        if version and version != board.published_version:
            raise NotFound("dashboard_version", f"{dashboard_id}@{version}")
        version = board.published_version

    widget: widget_pb2.Widget | None
    filters: Iterable[dashboard_pb2.DashboardFilter]
    if version:
        snapshot = await load_snapshot(conn, board.id, version)
        widget = next((w for w in snapshot.widgets if w.id.lower() == str(widget_id)), None)
        filters = snapshot.filters
    else:
        widget = widget_from_row(row) if row is not None else None
        filters = [from_json(f, dashboard_pb2.DashboardFilter()) for f in board.filters or []]
    if widget is None:
        raise NotFound("widget", request.widget_id)

    if not widget.HasField("query") or not widget.query.query_id:
        raise FailedPrecondition(
            "the widget has no query: it has no data to show",
            reason="WIDGET_HAS_NO_QUERY",
            metadata={"widget_id": request.widget_id},
        )
    if row is not None and _same_binding(widget.query, row):
        head, version_row = _checked(joined_query, widget.query, board.facility_id)  # loaded with the widget
    else:
        head, version_row = await _load_query(conn, widget.query, board.facility_id)
    query = query_from_rows(head, version_row)
    values = merge_values(query, widget, filters, request)
    bound = bind(query.parameters, values, "parameter_values")
    return Resolved(
        widget=widget,
        widget_in_table=row is not None,
        dashboard_id=str(board.id),
        query=query,
        refresh_time=head.refresh_time,
        values=values,
        bound=bound,
    )


# --- kept definitions (server/widgetdata/definitions.py) ----------------------------------------


async def load_definition(conn: AsyncConnection, widget_id: uuid.UUID) -> Definition | None:
    """The current widget's definition as resolve() reads it (one statement); None when the id
    is not a current widget."""
    loaded = await _load_widget(conn, widget_id)
    if loaded is None:
        return None
    row, board, joined_query = loaded
    widget = widget_from_row(row)
    query: query_pb2.Query | None = None
    if joined_query is not None and widget.HasField("query") and _same_binding(widget.query, row):
        try:
            query = query_from_rows(*_checked(joined_query, widget.query, board.facility_id))
        except FailedPrecondition:
            query = None  # resolve() says why, every time
    return Definition(
        row=row,
        board=board,
        facts=dashboard_facts(board, board.grants),
        joined_query=joined_query,
        widget=widget,
        filters=tuple(from_json(f, dashboard_pb2.DashboardFilter()) for f in board.filters or []),
        query=query,
    )


class KeptResolutions:
    """What resolve_kept() merges and binds for a request, kept per kept definition: a pure
    function of the two (the definition never changes; a changed widget is a new one), and
    most of what a hot read's own work costs (about 40 of 100 µs). Never the access decision,
    which resolve_kept() makes on every read before asking here."""

    def __init__(self, size: int = RESOLUTIONS_KEPT) -> None:
        # By the definition's identity and the request's bytes; the definition is held too, so
        # an identity reused by a later object is told apart.
        self._memo: Memo[tuple[int, bytes], tuple[Definition, Resolved]] = Memo(size)

    def resolved(self, request: widget_pb2.GetWidgetDataRequest, kept: Definition, query: query_pb2.Query) -> Resolved:
        raw = request.SerializeToString(deterministic=True)
        key = (id(kept), raw)
        found = self._memo.get(key)
        if found is not None and found[0] is kept:
            return found[1]
        assert kept.joined_query is not None
        values = merge_values(query, kept.widget, kept.filters, request)
        resolved = Resolved(
            widget=kept.widget,
            widget_in_table=True,
            dashboard_id=kept.dashboard_id,
            query=query,
            refresh_time=kept.joined_query.refresh_time,
            values=values,
            bound=bind(query.parameters, values, "parameter_values"),
        )
        if len(raw) <= RESOLVED_REQUEST_BYTES_KEPT:
            self._memo.put(key, (kept, resolved))
        return resolved

    def clear(self) -> None:
        self._memo.clear()


def resolve_kept(
    principal: Principal,
    request: widget_pb2.GetWidgetDataRequest,
    kept: Definition,
    resolutions: KeptResolutions | None = None,
) -> Resolved | None:
    """resolve() of a current widget from its kept definition, the access decided now exactly as
    resolve() decides it; None for what only resolve() answers (a dashboard version, a reader
    limited to the published version, a widget whose query it must explain or load itself).
    `resolutions`: where the values of earlier reads of the definition are kept."""
    audit_facts.note_facility(kept.board.facility_id)  # as decide(): denials are recorded there too
    try:
        access = require_dashboard(principal, kept.facts, Access.READ_PUBLISHED)
    except NotFound:
        raise NotFound("widget", request.widget_id) from None
    query = kept.query
    if access is Access.READ_PUBLISHED or request.dashboard_version or query is None or kept.joined_query is None:
        return None
    return (resolutions or KeptResolutions(0)).resolved(request, kept, query)
