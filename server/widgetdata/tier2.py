"""Tier 2 of the widget-data cache: `widget_data_cache` in PostgreSQL, the same frame bytes as
tier 1, upserted by every computation, so a Redis restart loses nothing (a tier-2 hit refills
tier 1)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import bindparam, delete, null, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.compiled import Statement
from server.db.engine import Database
from server.db.schema import widget_data_cache, widgets
from server.queries.masking import MASKING_LEVEL_MASKED
from server.widgetdata.entry import Entry
from server.widgetdata.request import CacheRequest

__all__ = ["DatabaseTier"]

log = logging.getLogger("tessera.widgetdata")


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class DatabaseTier:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    async def get(conn: AsyncConnection, key: str) -> Entry | None:
        row = (
            await conn.execute(
                select(
                    widget_data_cache.c.frame,
                    widget_data_cache.c.computed_at,
                    widget_data_cache.c.expires_at,
                    widget_data_cache.c.query_version,
                    widget_data_cache.c.masking_level,
                ).where(widget_data_cache.c.cache_key == key)
            )
        ).first()
        if row is None:
            return None
        return Entry(
            frame=bytes(row.frame),
            computed_at=row.computed_at.timestamp(),
            expires_at=row.expires_at.timestamp(),
            query_version=row.query_version,
            # The executor masks exactly at this level (key.masking_level), so the level says it.
            masked=row.masking_level == MASKING_LEVEL_MASKED,
        )

    @staticmethod
    async def put(conn: AsyncConnection, request: CacheRequest, entry: Entry, rows: int, *, savepoint: bool) -> bool:
        """Upserts the entry. The widget reference is informational (entries are shared by every
        widget binding the same values): NULL for a widget that lives only in a snapshot or was
        deleted meanwhile. Returns False when the row cannot be written because a foreign key
        failed (the query, or the widget, deleted meanwhile); with `savepoint` the transaction
        survives that, otherwise the caller retries in a new one."""
        params: dict[str, Any] = {
            "cache_key": request.key,
            "query_id": uuid.UUID(request.query_id),
            "query_version": entry.query_version,
            "facility_id": request.facility_id,
            "masking_level": request.masking_level,
            "frame": entry.frame,
            "row_count": rows,
            "computed_at": _ts(entry.computed_at),
            "expires_at": _ts(entry.expires_at),
        }
        statement, driver_statement = _UPSERT, _DRIVER_UPSERT
        if request.widget_id:
            statement, driver_statement = _UPSERT_FOR_WIDGET, _DRIVER_UPSERT_FOR_WIDGET
            params["widget_ref"] = uuid.UUID(request.widget_id)
        try:
            if savepoint:
                async with conn.begin_nested():
                    await conn.execute(statement, params)
            else:
                await driver_statement.execute(conn, params)
        except (IntegrityError, psycopg.errors.IntegrityError):
            return False
        return True

    async def put_within(self, conn: AsyncConnection, request: CacheRequest, entry: Entry, rows: int) -> None:
        """In the caller's transaction: with the widget reference, else (the widget is gone) without."""
        if not await self.put(conn, request, entry, rows, savepoint=True):
            await self.put(conn, replace(request, widget_id=None), entry, rows, savepoint=True)

    async def write(self, request: CacheRequest, entry: Entry, rows: int) -> None:
        """One statement on its own (autocommit: no BEGIN and COMMIT round trips, and nothing the
        caller reads back from a replica); a failure is logged, not raised: the caller still gets
        its data, and the next miss recomputes."""
        try:
            async with self._db.statements() as conn:
                written = await self.put(conn, request, entry, rows, savepoint=False)
                if not written and request.widget_id:
                    written = await self.put(conn, replace(request, widget_id=None), entry, rows, savepoint=False)
            if not written:
                log.info("widget data: not cached in tier 2, its query was deleted meanwhile")
        except (DBAPIError, psycopg.Error):
            log.warning("widget data: tier-2 write failed", exc_info=True)

    async def delete_query(self, query_id: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(delete(widget_data_cache).where(widget_data_cache.c.query_id == uuid.UUID(query_id)))


def _upsert_statement(for_widget: bool) -> Any:
    """Built once (the statement cache then skips compiling it per write)."""
    names = (
        "cache_key",
        "query_id",
        "query_version",
        "facility_id",
        "masking_level",
        "frame",
        "row_count",
        "computed_at",
        "expires_at",
    )
    values: dict[str, Any] = {name: bindparam(name, type_=widget_data_cache.c[name].type) for name in names}
    values["widget_id"] = (
        select(widgets.c.id).where(widgets.c.id == bindparam("widget_ref")).scalar_subquery() if for_widget else null()
    )
    insert = pg_insert(widget_data_cache).values(values)
    return insert.on_conflict_do_update(
        index_elements=[widget_data_cache.c.cache_key],
        set_={
            name: insert.excluded[name] for name in ("query_version", "frame", "row_count", "computed_at", "expires_at")
        },
        # Never let a slower, older computation overwrite a newer one.
        where=widget_data_cache.c.computed_at <= insert.excluded.computed_at,
    )


_UPSERT = _upsert_statement(for_widget=False)
_UPSERT_FOR_WIDGET = _upsert_statement(for_widget=True)
# Every computation's write, on a connection of its own, runs on the driver: through
# SQLAlchemy's execute it took 1.4 ms of a cold read, the statement itself about 0.3.
_DRIVER_UPSERT = Statement(_UPSERT)
_DRIVER_UPSERT_FOR_WIDGET = Statement(_UPSERT_FOR_WIDGET)
