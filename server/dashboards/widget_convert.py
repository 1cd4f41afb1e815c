"""Widget rows <-> dashboard.v1.Widget. The typed columns hold what the database filters and
checks (type, grid position, query, refresh interval); `spec` holds the rest as proto JSON."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from google.protobuf import duration_pb2
from sqlalchemy import Text, cast

from dashboard.v1 import widget_pb2
from server.db.schema import widgets
from server.memo import Memo
from server.protojson import etag, from_json, from_json_text, set_time, to_json

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


# What widget_from_row reads, with `spec` as its jsonb text (what it reads fastest); not the
# search document nor the refresh schedule, which a widget's message never shows.
SPEC_AS_TEXT = cast(widgets.c.spec, Text).label("spec")
WIDGET_ROW_COLUMNS = (
    widgets.c.id,
    widgets.c.dashboard_id,
    widgets.c.title,
    widgets.c.type,
    widgets.c.x,
    widgets.c.y,
    widgets.c.width,
    widgets.c.height,
    widgets.c.query_id,
    widgets.c.query_version,
    widgets.c.refresh_interval_seconds,
    widgets.c.revision,
    widgets.c.created_at,
    widgets.c.updated_at,
    SPEC_AS_TEXT,
)


class WidgetRow(NamedTuple):
    """A widgets row as WIDGET_ROW_COLUMNS reads it."""

    id: uuid.UUID
    dashboard_id: uuid.UUID
    title: str
    type: int
    x: int
    y: int
    width: int
    height: int
    query_id: uuid.UUID | None
    query_version: int | None
    refresh_interval_seconds: int
    revision: int
    created_at: datetime
    updated_at: datetime
    spec: str


# Serialized messages of widget rows seen, by the row's whole content (a changed row is another
# key, so nothing kept is ever stale): a dashboard read again costs 50 lookups, not conversions.
# The key holds the spec's text as the message does, so the memo holds about twice what it counts.
ROW_MESSAGES = 8192
ROW_MESSAGE_BYTES = 8 << 20
_messages: Memo[tuple[Any, ...], bytes] = Memo(ROW_MESSAGES, weigh=len, max_weight=ROW_MESSAGE_BYTES)


def widget_from_content(row: WidgetRow) -> widget_pb2.Widget:
    """widget_from_row of a WidgetRow, kept by content (a new message each call)."""
    known = _messages.get(row)
    if known is None:
        known = widget_from_row(row).SerializeToString()
        _messages.put(row, known)
    return widget_pb2.Widget.FromString(known)


def _spec_message(spec: str | dict[str, Any] | None) -> widget_pb2.Widget:
    if isinstance(spec, str):
        # Parsed once per distinct spec text: a dashboard's 50 widgets read by the C parser.
        return from_json_text(spec, widget_pb2.Widget)
    return from_json(spec, widget_pb2.Widget())


def widget_from_row(row: Any) -> widget_pb2.Widget:
    """The widget a row holds (its `spec` as a dict, or as text: SPEC_AS_TEXT). The typed columns
    are authoritative: what they hold overrides any copy of the same field left in `spec`."""
    widget = _spec_message(row.spec)
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
    set_time(widget.create_time, row.created_at)
    set_time(widget.update_time, row.updated_at)
    return widget
