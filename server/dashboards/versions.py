"""Immutable dashboard versions: every change writes the dashboard and its widgets as a new
snapshot; publish points at one; restore writes an old one as the newest."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Uuid, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import dashboard_pb2, widget_pb2
from server.dashboards.convert import dashboard_from_row
from server.dashboards.widget_convert import WIDGET_ROW_COLUMNS, WidgetRow, widget_from_content
from server.db.compiled import Statement
from server.db.schema import dashboard_versions, dashboards, widgets
from server.errors import NotFound
from server.memo import Memo
from server.protojson import from_json, to_json

# Parsed snapshots kept by this process. A version is never changed once written (nothing
# updates dashboard_versions), so (dashboard, version) names one snapshot forever and needs no
# invalidation. Callers decide access before they load one, as they do without the memo. It
# spares an export's widgets (each resolved on its own) a read and a JSON parse of the whole
# dashboard apiece.
SNAPSHOT_MEMO_SIZE = 128
_snapshots: Memo[tuple[uuid.UUID, int], bytes] = Memo(SNAPSHOT_MEMO_SIZE)


async def load_snapshot(conn: AsyncConnection, dashboard_id: uuid.UUID, version: int) -> dashboard_pb2.Dashboard:
    """The dashboard as version `version` recorded it (NOT_FOUND `dashboard_version` otherwise).
    A new message each call: callers may change what they get."""
    known = known_snapshot(dashboard_id, version)
    if known is not None:
        return known
    snapshot = await _read_snapshot(conn, dashboard_id, version)
    _snapshots.put((uuid.UUID(str(dashboard_id)), version), snapshot.SerializeToString())
    return snapshot


def known_snapshot(dashboard_id: uuid.UUID, version: int) -> dashboard_pb2.Dashboard | None:
    """The snapshot when this process has it (a new message each call), else None."""
    known = _snapshots.get((uuid.UUID(str(dashboard_id)), version))
    return dashboard_pb2.Dashboard.FromString(known) if known is not None else None


async def _read_snapshot(conn: AsyncConnection, dashboard_id: uuid.UUID, version: int) -> dashboard_pb2.Dashboard:
    stored = (
        await conn.execute(
            select(dashboard_versions.c.snapshot).where(
                dashboard_versions.c.dashboard_id == dashboard_id, dashboard_versions.c.version == version
            )
        )
    ).scalar_one_or_none()
    if stored is None:
        raise NotFound("dashboard_version", f"{dashboard_id}@{version}")
    return from_json(stored, dashboard_pb2.Dashboard())


# A dashboard's widgets in grid order (compiled once: GetDashboard reads this on every call).
_CURRENT_WIDGETS = Statement(
    select(*WIDGET_ROW_COLUMNS)
    .where(widgets.c.dashboard_id == bindparam("dashboard_id", type_=Uuid()))
    .order_by(widgets.c.y, widgets.c.x, widgets.c.id)
)


async def current_widgets(conn: AsyncConnection, dashboard_id: uuid.UUID) -> list[widget_pb2.Widget]:
    rows = await _CURRENT_WIDGETS.rows(conn, {"dashboard_id": dashboard_id})
    return [widget_from_content(WidgetRow(*row)) for row in rows]


async def record_version(
    conn: AsyncConnection,
    dashboard_id: uuid.UUID,
    *,
    reason: int,
    author: str,
    restored_from: int | None = None,
    bump: bool = True,
) -> Any:
    """Writes the dashboard's current state as a version (bumping the version number unless
    this is the first one) and returns the updated dashboard row. Call inside the
    transaction that made the change, holding the dashboard's row lock."""
    if bump:
        row = (
            await conn.execute(
                update(dashboards)
                .where(dashboards.c.id == dashboard_id)
                .values(version=dashboards.c.version + 1)
                .returning(*dashboards.c)
            )
        ).one()
    else:
        row = (await conn.execute(select(dashboards).where(dashboards.c.id == dashboard_id))).one()
    snapshot = dashboard_from_row(row, await current_widgets(conn, dashboard_id))
    # Publishing state is not part of what a version *is*.
    for field in ("etag", "published_version", "publish_time"):
        snapshot.ClearField(field)
    await conn.execute(
        insert(dashboard_versions).values(
            dashboard_id=dashboard_id,
            version=row.version,
            snapshot=to_json(snapshot),
            reason=reason,
            restored_from=restored_from,
            author_id=author,
        )
    )
    return row


def version_from_row(row: Any, *, published_version: int | None, with_snapshot: bool) -> dashboard_pb2.DashboardVersion:
    version = dashboard_pb2.DashboardVersion(
        dashboard_id=str(row.dashboard_id),
        version=row.version,
        reason=row.reason,
        restored_from=row.restored_from or 0,
        author_id=row.author_id,
        published=published_version == row.version,
    )
    version.create_time.FromDatetime(row.created_at)
    if with_snapshot:
        from_json(row.snapshot, version.snapshot)
        version.snapshot.version = row.version
    return version
