"""The portable dashboard document: built from a dashboard and its queries, and checked on its
own (what needs no database). Widgets refer to queries and to their own dashboard by keys local
to the document, so nothing in it names a database id of the facility it came from (a
drill-through to another dashboard excepted: that one is checked where it is imported)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from dashboard.v1 import dashboard_pb2, query_pb2, widget_pb2
from server.dashboards.service import check_filters, check_time_zone
from server.errors import FieldViolation, ViolationCollector
from server.widgets.grid import overlaps
from server.widgets.service import check_fields

SCHEMA_VERSION = "tessera.dashboard/v1"
DOC = "document"

# The dashboard fields a document carries; the rest (ids, owner, versions, times) belong to one
# database.
DASHBOARD_FIELDS = ("title", "description", "tags", "metadata", "visibility", "layout", "filters")
# Query fields that are not part of its definition.
_QUERY_LOCAL = (
    "id",
    "facility_id",
    "owner_id",
    "version",
    "view_name",
    "refresh_time",
    "etag",
    "create_time",
    "update_time",
)
_WIDGET_LOCAL = ("id", "dashboard_id", "type", "etag", "create_time", "update_time")


@dataclass(frozen=True)
class UsedQuery:
    """A query version some widget reads: its id and the version the document holds."""

    query_id: str
    version: int


def used_queries(widgets: Iterable[widget_pb2.Widget], latest: Mapping[str, int]) -> list[UsedQuery]:
    """The query versions the widgets read, in order of first use: a pinned widget its version,
    the others the query's latest (`latest` maps query id -> latest version)."""
    found: dict[UsedQuery, None] = {}
    for widget in widgets:
        if widget.query.query_id:
            version = widget.query.query_version or latest[widget.query.query_id]
            found.setdefault(UsedQuery(widget.query.query_id, version), None)
    return list(found)


def portable_query(query: query_pb2.Query) -> query_pb2.Query:
    out = query_pb2.Query()
    out.CopyFrom(query)
    for name in _QUERY_LOCAL:
        out.ClearField(name)
    return out


def build_document(
    dashboard: dashboard_pb2.Dashboard,
    queries: Mapping[UsedQuery, query_pb2.Query],
    latest: Mapping[str, int],
) -> dashboard_pb2.DashboardDocument:
    """The document of `dashboard` (with its widgets, in grid order); `queries` holds every
    version `used_queries` named."""
    doc = dashboard_pb2.DashboardDocument(schema_version=SCHEMA_VERSION)
    for name in DASHBOARD_FIELDS:
        if name in ("tags", "filters"):
            getattr(doc.dashboard, name).extend(getattr(dashboard, name))
        elif name in ("metadata", "layout"):
            if dashboard.HasField(name):
                getattr(doc.dashboard, name).CopyFrom(getattr(dashboard, name))
        else:
            setattr(doc.dashboard, name, getattr(dashboard, name))
    keys: dict[UsedQuery, str] = {}
    for used in used_queries(dashboard.widgets, latest):
        keys[used] = f"q{len(keys) + 1}"
        doc.queries.add(key=keys[used], query=portable_query(queries[used]))
    for i, widget in enumerate(dashboard.widgets, start=1):
        entry = doc.widgets.add(key=f"w{i}")
        entry.widget.CopyFrom(widget)
        for name in _WIDGET_LOCAL:
            entry.widget.ClearField(name)
        binding = entry.widget.query
        if binding.query_id:
            used = UsedQuery(binding.query_id, binding.query_version or latest[binding.query_id])
            entry.query_key = keys[used]
            entry.pin_query_version = binding.query_version > 0
            binding.ClearField("query_id")
            binding.ClearField("query_version")
        if widget.HasField("drill_through"):
            drill = widget.drill_through
            entry.widget.ClearField("drill_through")
            entry.drill_through.column_to_filter.update(drill.column_to_filter)
            if drill.target_dashboard_id == dashboard.id:
                entry.drill_through.to_this_dashboard = True
            else:
                entry.drill_through.target_dashboard_id = drill.target_dashboard_id
    return doc


def moved(violations: Iterable[FieldViolation], old: str, new: str) -> list[FieldViolation]:
    """Violations of a nested message re-rooted at its place in the document."""
    return [
        FieldViolation(new + v.field[len(old) :] if v.field.startswith(old) else v.field, v.description, v.reason)
        for v in violations
    ]


def check_document(doc: dashboard_pb2.DashboardDocument, mapped_keys: Iterable[str] = ()) -> list[FieldViolation]:
    """Every problem of the document that needs no database, each at its field's path."""
    problems = ViolationCollector()
    if doc.schema_version != SCHEMA_VERSION:
        problems.add(
            f"{DOC}.schema_version",
            f"unsupported schema version {doc.schema_version!r}; this server reads {SCHEMA_VERSION!r}",
            "UNSUPPORTED_SCHEMA_VERSION",
        )
    board = doc.dashboard
    if not board.title.strip():
        problems.add(f"{DOC}.dashboard.title", "a title is required", "REQUIRED")
    inner = ViolationCollector()
    check_filters(board.filters, "dashboard.filters", inner)
    check_time_zone(board.layout, inner)
    problems.violations += moved(inner.violations, "dashboard.", f"{DOC}.dashboard.")

    query_keys = _unique_keys([q.key for q in doc.queries], f"{DOC}.queries", problems)
    _unique_keys([w.key for w in doc.widgets], f"{DOC}.widgets", problems)
    for key in sorted(set(mapped_keys) - query_keys):
        problems.add(f'query_mappings["{key}"]', f"the document has no query {key!r}", "UNKNOWN_QUERY_KEY")

    filters = {f.name for f in board.filters}
    for i, entry in enumerate(doc.widgets):
        _check_widget(entry, f"{DOC}.widgets[{i}]", query_keys, filters, problems)
    for i, entry in enumerate(doc.widgets):
        for j in range(i):
            if overlaps(entry.widget.position, doc.widgets[j].widget.position):
                problems.add(
                    f"{DOC}.widgets[{i}].widget.position",
                    f"overlaps {DOC}.widgets[{j}] ({doc.widgets[j].key!r})",
                    "WIDGET_OVERLAP",
                )
    return problems.violations


def _unique_keys(keys: Sequence[str], path: str, problems: ViolationCollector) -> set[str]:
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if not key:
            problems.add(f"{path}[{i}].key", "a key is required", "REQUIRED")
        elif key in seen:
            problems.add(f"{path}[{i}].key", f"duplicate key {key!r}", "DUPLICATE_KEY")
        seen.add(key)
    return seen


def _check_widget(
    entry: dashboard_pb2.DocumentWidget,
    at: str,
    query_keys: set[str],
    filters: set[str],
    problems: ViolationCollector,
) -> None:
    widget = entry.widget
    inner = ViolationCollector()
    check_fields(widget, ("title", "position", "config", "refresh_interval"), inner)
    problems.violations += moved(inner.violations, "widget.", f"{at}.widget.")
    if widget.query.query_id or widget.query.query_version:
        problems.add(f"{at}.widget.query.query_id", "a document names queries by query_key", "DATABASE_ID")
    if entry.query_key and entry.query_key not in query_keys:
        problems.add(f"{at}.query_key", f"the document has no query {entry.query_key!r}", "UNKNOWN_QUERY_KEY")
    if entry.pin_query_version and not entry.query_key:
        problems.add(f"{at}.pin_query_version", "only a widget with a query_key can pin it", "REQUIRED")
    for param, name in sorted(widget.query.filter_bindings.items()):
        if name not in filters:
            problems.add(
                f'{at}.widget.query.filter_bindings["{param}"]',
                f"the dashboard declares no filter {name!r}",
                "UNKNOWN_FILTER",
            )
    for i, cross in enumerate(widget.cross_filters):
        if cross.filter_name not in filters:
            problems.add(
                f"{at}.widget.cross_filters[{i}].filter_name",
                f"the dashboard declares no filter {cross.filter_name!r}",
                "UNKNOWN_FILTER",
            )
    if widget.HasField("drill_through"):
        problems.add(
            f"{at}.widget.drill_through", "a document's drill-through is the widget's drill_through", "MISPLACED"
        )
    if not entry.HasField("drill_through"):
        return
    drill = entry.drill_through
    if drill.to_this_dashboard:
        if drill.target_dashboard_id:
            problems.add(
                f"{at}.drill_through.target_dashboard_id",
                "a drill-through to this dashboard names no other target",
                "INAPPLICABLE",
            )
        for column, name in sorted(drill.column_to_filter.items()):
            if name not in filters:
                problems.add(
                    f'{at}.drill_through.column_to_filter["{column}"]',
                    f"the dashboard declares no filter {name!r}",
                    "UNKNOWN_FILTER",
                )
    elif not drill.target_dashboard_id:
        problems.add(f"{at}.drill_through.target_dashboard_id", "a drill-through needs a target", "REQUIRED")
    else:
        try:
            uuid.UUID(drill.target_dashboard_id)
        except ValueError:
            problems.add(f"{at}.drill_through.target_dashboard_id", "must be a UUID", "INVALID_UUID")
