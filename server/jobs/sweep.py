"""Nothing lost when parts fail: jobs whose broker message was lost are queued again, and no job's
work runs twice at once.

* `requeue_lost`: a job still QUEUED `older_than` seconds after its last change had its message
  lost (a broker restart without persistence, a purged queue). It is given a new revision (so
  watchers see it, and the next sweep waits another `older_than`) and its task is sent again.
  If the first message was only late, two deliveries exist: see `exclusive`.
* `exclusive`: a task runs a job only while holding the job's PostgreSQL advisory lock (a session
  lock on a connection of its own): a second delivery finds it held and leaves the job to its
  holder, and a holder that dies (its connection with it) frees it at once for a redelivery to
  resume. With the runners' own rule (a terminal job is left alone, every transition only from a
  non-terminal state) a job's work never runs twice to completion and its terminal state is
  written once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, literal_column, select, text

from dashboard.v1 import common_pb2
from server.db.engine import Database
from server.jobs.revisions import RevisionStore

__all__ = ["exclusive", "requeue_lost"]

log = logging.getLogger("tessera.jobs")

QUEUED = common_pb2.JOB_STATE_QUEUED
REQUEUED_MESSAGE = "queued again: its task was not picked up in time"


def lock_id(job_id: str) -> int:
    """The job's advisory lock key: a signed 64-bit number from its id (namespaced, so it never
    meets the widget-data cache's advisory locks)."""
    digest = hashlib.sha256(f"tessera.job:{job_id.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@asynccontextmanager
async def exclusive(db: Database, job_id: str) -> AsyncIterator[bool]:
    """Yields whether this task holds the job; the lock is held until the block ends."""
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        key = lock_id(job_id)
        held = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
        if not held:
            log.info("jobs: %s is being run by another delivery of its task; leaving it", job_id)
        try:
            yield held
        finally:
            if held:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def _requeued(job: Any) -> bool:
    if job.state != QUEUED:
        return False  # a worker took it meanwhile
    job.progress.message = REQUEUED_MESSAGE
    return True


async def requeue_lost(
    db: Database, store: RevisionStore[Any, Any], send: Callable[[str], Awaitable[None]], older_than: float
) -> list[str]:
    """Sends again the task of every job of `store` QUEUED and unchanged for `older_than`
    seconds; returns their ids. A send that fails is retried by the next sweep."""
    table = store.kind.table
    age: Any = older_than * literal_column("interval '1 second'")
    async with db.read() as conn:
        found = await conn.execute(
            select(table.c.id)
            .where(table.c.state == QUEUED, table.c.updated_at < func.now() - age)
            .order_by(table.c.updated_at)
            .limit(500)
        )
        stuck = [str(row.id) for row in found]
    requeued: list[str] = []
    for job_id in stuck:
        if await store.change(job_id, _requeued) is None:
            continue
        try:
            await send(job_id)
        except Exception as exc:
            log.warning("jobs: could not queue %s again (a later sweep will): %r", job_id, exc)
            continue
        log.warning("jobs: %s was still QUEUED after %.0f s (its message was lost?); queued again", job_id, older_than)
        requeued.append(job_id)
    return requeued
