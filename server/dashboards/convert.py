"""Dashboard rows <-> dashboard.v1.Dashboard, in one place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import struct_pb2

from dashboard.v1 import dashboard_pb2, widget_pb2
from server.protojson import etag, from_json, from_json_text, set_time, to_json

GRID_COLUMNS = 12
DEFAULT_ROW_HEIGHT = 80
DEFAULT_GAP = 16


def layout_json(layout: dashboard_pb2.GridLayout) -> dict[str, int | str]:
    out: dict[str, int | str] = {
        "row_height": layout.row_height or DEFAULT_ROW_HEIGHT,
        "gap": layout.gap or DEFAULT_GAP,
    }
    if layout.time_zone:
        out["time_zone"] = layout.time_zone
    return out


def filters_json(filters: Iterable[dashboard_pb2.DashboardFilter]) -> list[dict[str, Any]]:
    return [to_json(f) for f in filters]


def metadata_json(metadata: struct_pb2.Struct) -> dict[str, Any]:
    return to_json(metadata)


def dashboard_etag(row: Any) -> str:
    return etag(row.id, row.version, row.published_version, row.updated_at.isoformat())


def dashboard_from_row(row: Any, widgets: Iterable[widget_pb2.Widget] = ()) -> dashboard_pb2.Dashboard:
    # A list converts 50 of these per call: fields set directly, JSON parsed only when present.
    layout = row.layout or {}
    dashboard = dashboard_pb2.Dashboard(
        id=str(row.id),
        facility_id=row.facility_id,
        owner_id=row.owner_id,
        title=row.title,
        description=row.description,
        tags=row.tags,
        visibility=row.visibility,
        layout=dashboard_pb2.GridLayout(
            columns=GRID_COLUMNS,
            row_height=layout.get("row_height", DEFAULT_ROW_HEIGHT),
            gap=layout.get("gap", DEFAULT_GAP),
            time_zone=layout.get("time_zone", ""),
        ),
        widgets=widgets,
        version=row.version,
        published_version=row.published_version or 0,
        etag=dashboard_etag(row),
    )
    if row.filters:
        dashboard.filters.extend(from_json(f, dashboard_pb2.DashboardFilter()) for f in row.filters)
    if row.metadata:
        dashboard.metadata.update(row.metadata)
    set_time(dashboard.publish_time, row.publish_time)
    set_time(dashboard.create_time, row.created_at)
    set_time(dashboard.update_time, row.updated_at)
    return dashboard


def header_from_text(snapshot_text: str) -> dashboard_pb2.Dashboard:
    """A published snapshot without its widgets (what a list shows), from its jsonb text, parsed
    once per distinct text: json_format costs more than the rest of a list row."""
    return from_json_text(snapshot_text, dashboard_pb2.Dashboard)
