"""Widget rows <-> dashboard.v1.Widget. The typed columns hold what the database filters and
checks (type, grid position, query, refresh interval); `spec` holds the rest as proto JSON."""

from __future__ import annotations

from typing import Any

from google.protobuf import duration_pb2

from dashboard.v1 import widget_pb2
from server.protojson import etag, from_json, to_json, ts

# Which `config` member makes which WidgetType.
CONFIG_TYPES: dict[str, int] = {
    "kpi": widget_pb2.WIDGET_TYPE_KPI,
    "line": widget_pb2.WIDGET_TYPE_LINE,
    "area": widget_pb2.WIDGET_TYPE_AREA,
    "bar": widget_pb2.WIDGET_TYPE_BAR,
    "table": widget_pb2.WIDGET_TYPE_TABLE,
    "heatmap": widget_pb2.WIDGET_TYPE_HEATMAP,
    "map": widget_pb2.WIDGET_TYPE_MAP,
}
# Fields kept in columns or derived, so never stored in `spec`.
_OUTSIDE_SPEC = ("id", "dashboard_id", "type", "position", "refresh_interval", "etag", "create_time", "update_time")
DEFAULT_REFRESH_SECONDS = 300


def widget_type(widget: widget_pb2.Widget) -> int:
    member = widget.WhichOneof("config")
    return CONFIG_TYPES[member] if member else widget_pb2.WIDGET_TYPE_UNSPECIFIED


def spec_of(widget: widget_pb2.Widget) -> dict[str, Any]:
    spec = widget_pb2.Widget()
    spec.CopyFrom(widget)
    for name in _OUTSIDE_SPEC:
        spec.ClearField(name)
    return to_json(spec)


def columns_of(widget: widget_pb2.Widget, default_refresh: int = DEFAULT_REFRESH_SECONDS) -> dict[str, Any]:
    """The row values for a (validated) widget, except id, dashboard_id and facility_id."""
    refresh = default_refresh
    if widget.HasField("refresh_interval"):
        interval = widget.refresh_interval
        # The column holds whole seconds. Round a fraction up, never down: truncating would make
        # the workers run the query more often than the author asked, and the ceiling of an
        # interval inside the accepted 10 s .. 1 day range stays inside it.
        refresh = interval.seconds + (1 if interval.nanos > 0 else 0)
    query = widget.query if widget.HasField("query") else None
    return {
        "title": widget.title,
        "type": widget_type(widget),
        "x": widget.position.x,
        "y": widget.position.y,
        "width": widget.position.width,
        "height": widget.position.height,
        "query_id": query.query_id if query and query.query_id else None,
        "query_version": query.query_version if query and query.query_version else None,
        "refresh_interval_seconds": refresh,
        "spec": spec_of(widget),
    }


def widget_from_row(row: Any) -> widget_pb2.Widget:
    """The widget a row holds. The typed columns are authoritative: what they hold overrides
    any copy of the same field left in `spec`."""
    widget = from_json(row.spec, widget_pb2.Widget())
    widget.id = str(row.id)
    widget.dashboard_id = str(row.dashboard_id)
    widget.title = row.title
    widget.type = row.type
    if row.query_id is not None or widget.HasField("query"):
        widget.query.query_id = str(row.query_id) if row.query_id is not None else ""
        widget.query.query_version = row.query_version or 0
    widget.position.CopyFrom(widget_pb2.GridPosition(x=row.x, y=row.y, width=row.width, height=row.height))
    widget.refresh_interval.CopyFrom(duration_pb2.Duration(seconds=row.refresh_interval_seconds))
    widget.etag = etag(row.id, row.revision, row.updated_at.isoformat())
    created, updated = ts(row.created_at), ts(row.updated_at)
    if created is not None:
        widget.create_time.CopyFrom(created)
    if updated is not None:
        widget.update_time.CopyFrom(updated)
    return widget
