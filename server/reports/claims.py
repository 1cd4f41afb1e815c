"""What beat runs for reports: claiming the due times of active subscriptions.

A due time is claimed by inserting its delivery, unique per (subscription, due time), in the
transaction that moves the subscription's next_run_at past `now` under its row lock (SKIP LOCKED,
so overlapping ticks never wait on each other). However many ticks, beats or workers see a due
time, and whether or not one of them died on the way, it yields one delivery. A subscription
whose beat was down over several due times gets one delivery, for the latest one missed.

Deliveries left open (the broker lost the task, a worker died with it) are handed out again; the
delivery task itself is safe to run twice (server/reports/deliver.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from dashboard.v1 import report_pb2
from server.db.engine import Database
from server.db.schema import report_deliveries, report_subscriptions
from server.reports.convert import ACTIVE
from server.reports.schedule import next_due

__all__ = ["STALE_AFTER", "claim_due", "open_deliveries"]

SCHEDULE = report_pb2.DELIVERY_TRIGGER_SCHEDULE
# An open delivery untouched this long is handed to a worker again.
STALE_AFTER = timedelta(minutes=10)


async def claim_due(db: Database, now: datetime, batch: int) -> list[str]:
    """Claims up to `batch` due subscriptions at `now` (the beat's clock); returns the deliveries made."""
    subs = report_subscriptions
    made: list[str] = []
    async with db.transaction() as conn:
        rows = (
            await conn.execute(
                select(subs.c.id, subs.c.facility_id, subs.c.cron, subs.c.time_zone, subs.c.next_run_at)
                .where(subs.c.state == ACTIVE, subs.c.next_run_at <= now)
                .order_by(subs.c.next_run_at)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            delivery = await conn.execute(
                insert(report_deliveries)
                .values(subscription_id=row.id, facility_id=row.facility_id, trigger=SCHEDULE, due_at=row.next_run_at)
                .on_conflict_do_nothing(
                    index_elements=["subscription_id", "due_at"], index_where=report_deliveries.c.trigger == SCHEDULE
                )
                .returning(report_deliveries.c.id)
            )
            made += [str(i) for i in delivery.scalars()]
            await conn.execute(
                update(subs)
                .where(subs.c.id == row.id)
                .values(
                    next_run_at=next_due(row.cron, row.time_zone, max(now, row.next_run_at)),
                    last_run_at=row.next_run_at,
                )
            )
    return made


async def open_deliveries(db: Database, batch: int) -> list[str]:
    """Deliveries still open and untouched for STALE_AFTER (by the database's clock)."""
    table = report_deliveries
    async with db.read() as conn:
        rows = await conn.execute(
            select(table.c.id)
            .where(table.c.ended_at.is_(None), table.c.updated_at < func.now() - STALE_AFTER)
            .order_by(table.c.created_at)
            .limit(batch)
        )
        found: list[uuid.UUID] = list(rows.scalars())
        return [str(i) for i in found]
