"""Audit events: recorded in memory on the hot path, written in batches in the background.

`record()` never waits for the database: it appends to a buffer that a background task writes
every `interval` seconds, or at once when `batch_size` events are waiting. `flush()` writes
what is buffered now; `close()` stops the task and flushes, so a normal shutdown loses nothing.
A failed write is retried on the next flush (the events stay buffered, up to `max_buffer`).

Calls refused before authentication go through `record_refusal()`, which aggregates them per
source and window (server/audit/refusals.py) so that a flood of bad credentials cannot crowd
the buffer; each flush writes the summaries of windows that have ended, `close()` all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC
from typing import Any

from sqlalchemy import Select, insert, select

from dashboard.v1 import share_pb2
from server import pagination
from server.access.policy import require_audit_reader
from server.audit.event import AuditEvent
from server.audit.refusals import RefusalCounter, RefusalKey
from server.auth.principal import Principal
from server.db.engine import Database
from server.db.schema import audit_log

log = logging.getLogger("tessera.audit")

SUCCESS = share_pb2.AUDIT_OUTCOME_SUCCESS
DENIED = share_pb2.AUDIT_OUTCOME_DENIED
ERROR = share_pb2.AUDIT_OUTCOME_ERROR
DEFAULT_PAGE_SIZE = 100


def event_from_row(row: Any) -> share_pb2.AuditEvent:
    event = share_pb2.AuditEvent(
        id=row.id,
        actor=row.actor,
        facility_id=row.facility_id,
        method=row.method,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        resource_version=row.resource_version or 0,
        outcome=row.outcome,
        row_count=row.row_count or 0,
        phi_unmasked=row.phi_unmasked,
        correlation_id=row.correlation_id,
    )
    event.time.FromDatetime(row.at)
    return event


class AuditLog:
    def __init__(
        self,
        db: Database,
        *,
        interval: float = 0.5,
        batch_size: int = 100,
        max_buffer: int = 100_000,
        refusals: RefusalCounter | None = None,
    ) -> None:
        self._db = db
        self._refusals = refusals or RefusalCounter()
        self._interval = interval
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._pending: list[AuditEvent] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False

    def record(self, event: AuditEvent) -> None:
        """Buffers one event; never blocks. Starts the background writer on first use."""
        if len(self._pending) >= self._max_buffer:
            log.error("audit buffer full; dropping the oldest event", extra={"method": event.method})
            self._pending.pop(0)
        self._pending.append(event)
        if self._closed:
            return
        self._ensure_task()
        if len(self._pending) >= self._batch_size and self._wake is not None:
            self._wake.set()

    def record_refusal(self, key: RefusalKey, correlation_id: str) -> None:
        """Counts a call refused before anyone was identified; records what the counter lets through."""
        for event in self._refusals.observe(key, correlation_id):
            self.record(event)

    def _ensure_task(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a sync caller): the next flush() or close() writes it
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task = asyncio.create_task(self._run(), name="tessera-audit-writer")

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # kept buffered; retried next round
                log.exception("audit write failed; will retry")

    async def flush(self, *, all_refusals: bool = False) -> None:
        """Writes every buffered event now, with the refusal summaries of windows that have ended
        (`all_refusals`: of the current window too)."""
        self._pending.extend(self._refusals.drain(everything=all_refusals))
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while self._pending:
                batch = self._pending[: self._batch_size * 10]
                async with self._db.transaction() as conn:
                    await conn.execute(insert(audit_log), [e.row() for e in batch])
                del self._pending[: len(batch)]

    async def close(self) -> None:
        """Stops the background writer and writes what is left."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._lock = None  # a lock bound to a loop that may be gone
        try:
            await self.flush(all_refusals=True)
        except Exception:  # shutdown goes on (engines still get disposed); say what was lost
            log.exception("audit events could not be written on close", extra={"lost": len(self._pending)})
            raise

    @property
    def pending(self) -> int:
        return len(self._pending)

    # --- reading ---------------------------------------------------------------------------

    async def list_events(
        self, principal: Principal, request: share_pb2.ListAuditEventsRequest
    ) -> tuple[list[share_pb2.AuditEvent], str]:
        """Admins only; only events of the admin's facilities; newest first."""
        facilities = require_audit_reader(principal)
        start = request.start_time.ToDatetime().isoformat() if request.HasField("start_time") else ""
        end = request.end_time.ToDatetime().isoformat() if request.HasField("end_time") else ""
        filters_key = pagination.fingerprint(
            "audit", request.actor, request.facility_id, request.resource_id, start, end, request.phi_unmasked_only
        )
        cursor = pagination.decode(request.page_token, filters_key)
        size = pagination.page_size(request.page_size, DEFAULT_PAGE_SIZE)
        await self.flush()  # the caller sees everything recorded before it asked
        query: Select[Any] = select(audit_log).where(audit_log.c.facility_id.in_(sorted(facilities)))
        if request.actor:
            query = query.where(audit_log.c.actor == request.actor)
        if request.facility_id:
            query = query.where(audit_log.c.facility_id == request.facility_id)
        if request.resource_id:
            query = query.where(audit_log.c.resource_id == request.resource_id)
        if request.HasField("start_time"):
            query = query.where(audit_log.c.at >= request.start_time.ToDatetime(tzinfo=UTC))
        if request.HasField("end_time"):
            query = query.where(audit_log.c.at < request.end_time.ToDatetime(tzinfo=UTC))
        if request.phi_unmasked_only:
            query = query.where(audit_log.c.phi_unmasked.is_(True))
        if cursor is not None:
            query = query.where(audit_log.c.id < int(cursor.id))
        query = query.order_by(audit_log.c.id.desc()).limit(size + 1)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        page, more = rows[:size], len(rows) > size
        token = ""
        if more:
            token = pagination.encode(pagination.Cursor(page[-1].at.isoformat(), str(page[-1].id)), filters_key)
        return [event_from_row(r) for r in page], token


__all__ = ["DENIED", "ERROR", "SUCCESS", "AuditEvent", "AuditLog", "event_from_row"]
