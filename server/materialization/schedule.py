"""What beat runs for materialization: claiming the widgets that are due, and refreshing the
managed materialized views (whose new refresh time changes their widgets' cache keys)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy import func, literal_column, or_, select, update

from dashboard.v1 import query_pb2
from server.db.engine import Database
from server.db.schema import widget_queries, widgets
from server.errors import TesseraError
from server.materialization.materializer import Materializer
from server.queries.views import ViewBuilder
from server.widgetdata.cache import WidgetDataCache

__all__ = ["Refreshed", "ViewRefresh", "claim_due_widgets", "refresh_views", "refresh_widgets", "widget_facility"]

log = logging.getLogger("tessera.materialization")


async def widget_facility(db: Database, widget_id: str) -> str | None:
    """The facility of a widget, None when it is gone."""
    async with db.read() as conn:
        facility: str | None = (
            await conn.execute(select(widgets.c.facility_id).where(widgets.c.id == uuid.UUID(widget_id)))
        ).scalar_one_or_none()
    return facility


async def claim_due_widgets(db: Database, batch: int) -> list[str]:
    """Claims up to `batch` widgets whose next_refresh_at is NULL or past, moving it to now + their
    refresh interval in the same statement (SKIP LOCKED, so overlapping runs never claim a widget
    twice); returns their ids, the longest overdue first."""
    due = (
        select(widgets.c.id)
        .where(
            widgets.c.query_id.is_not(None),
            or_(widgets.c.next_refresh_at.is_(None), widgets.c.next_refresh_at <= func.now()),
        )
        .order_by(widgets.c.next_refresh_at.asc().nulls_first())
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    async with db.transaction() as conn:
        claimed = await conn.execute(
            update(widgets)
            .where(widgets.c.id.in_(due.scalar_subquery()))
            .values(
                next_refresh_at=func.now() + widgets.c.refresh_interval_seconds * literal_column("interval '1 second'")
            )
            .returning(widgets.c.id)
        )
        return [str(i) for i in claimed.scalars()]


@dataclass
class Refreshed:
    """What became of a chunk of widgets: `transient` failed on a dependency (worth a retry);
    `failed` failed the same way every time (the next due run tries again)."""

    ok: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # widget id -> reason
    transient: dict[str, BaseException] = field(default_factory=dict)


async def refresh_widgets(
    db: Database,
    materializer: Materializer,
    widget_ids: list[str],
    *,
    concurrency: int,
    transient: tuple[type[BaseException], ...],
) -> Refreshed:
    """Warms each widget's current data, `concurrency` at a time (the SQL waits on PostgreSQL,
    so one process keeps several in flight; the bound keeps within its connection pools)."""
    gate = asyncio.Semaphore(max(1, concurrency))
    out = Refreshed()

    async def one(widget_id: str) -> None:
        async with gate:
            try:
                facility = await widget_facility(db, widget_id)
                if facility is None:
                    out.gone.append(widget_id)
                    return
                await materializer.warm(facility, widget_id)
            except transient as exc:
                out.transient[widget_id] = exc
            except TesseraError as exc:
                log.warning("materialize widget %s failed: %s", widget_id, exc.reason)
                out.failed[widget_id] = exc.reason
            else:
                out.ok.append(widget_id)

    await asyncio.gather(*(one(widget_id) for widget_id in widget_ids))
    return out


@dataclass(frozen=True)
class ViewRefresh:
    refreshed: int
    failed: int


async def refresh_views(db: Database, views: ViewBuilder, cache: WidgetDataCache) -> ViewRefresh:
    """REFRESH ... CONCURRENTLY every MATERIALIZED_VIEW query's view, record its refresh_time
    (which changes its cache keys) and invalidate its entries (which also reaches tier 2 and a
    Redis that missed the key change). One broken view does not stop the others."""
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(widget_queries.c.id, widget_queries.c.view_name, widget_queries.c.facility_id).where(
                    widget_queries.c.kind == query_pb2.QUERY_KIND_MATERIALIZED_VIEW,
                    widget_queries.c.view_name.is_not(None),
                )
            )
        ).all()
    refreshed = failed = 0
    for view in rows:
        try:
            await views.refresh(view.view_name, view.facility_id)
        except TesseraError as exc:
            log.warning("refresh of view %s failed: %s", view.view_name, exc.reason)
            failed += 1
            continue
        async with db.transaction() as conn:
            await conn.execute(
                update(widget_queries).where(widget_queries.c.id == view.id).values(refresh_time=func.now())
            )
        await cache.invalidate(str(view.id))
        refreshed += 1
    return ViewRefresh(refreshed, failed)
