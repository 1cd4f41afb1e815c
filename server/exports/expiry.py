"""Expiring exports: the files of exports past their expiry are deleted (downloads already refuse
them); the job rows stay, without a file."""

from __future__ import annotations

from sqlalchemy import func, select, update

from server.db.engine import Database
from server.db.schema import export_jobs
from server.exports.storage import ExportStorage

__all__ = ["expire_files"]


async def expire_files(db: Database, storage: ExportStorage, batch: int) -> int:
    """Deletes expired files `batch` rows at a time (SKIP LOCKED: overlapping runs share the work);
    returns how many."""
    removed = 0
    while True:
        async with db.transaction() as conn:
            rows = (
                await conn.execute(
                    select(export_jobs.c.id, export_jobs.c.storage_url)
                    .where(export_jobs.c.storage_url.is_not(None), export_jobs.c.expire_at < func.now())
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await storage.adelete(row.storage_url)
            if rows:
                await conn.execute(
                    update(export_jobs).where(export_jobs.c.id.in_([row.id for row in rows])).values(storage_url=None)
                )
        removed += len(rows)
        if len(rows) < batch:
            return removed
