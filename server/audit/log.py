"""Audit events: recorded in memory on the hot path, written in batches in the background.

`record()` never waits for the database: it makes the event storable (server/audit/event.py)
and appends it to a buffer that a background task writes every `interval` seconds, or at once
when `batch_size` events are waiting. `flush()` writes what is buffered now; `close()` stops
the task and flushes, so a normal shutdown loses nothing.

Nothing a caller sends can stall the log, and nothing is dropped silently:
- The database unreachable: the events stay buffered; retries back off from `interval` to
  `max_backoff` seconds, with one log line when writing stops and one when it resumes.
- A batch the database refuses: split in halves until the refused event stands alone; that
  one goes to the dead-letter file (server/audit/dead_letter.py), the others are written.
- The buffer full (`max_buffer`, the database away for long): new events go to the dead-letter
  file. So does whatever is left when the server stops and the database does not answer.
`health()` says whether events are being written and whether the dead-letter file holds any.

Calls refused before authentication go through `record_refusal()`, which aggregates them per
source and window (server/audit/refusals.py) so that a flood of bad credentials cannot crowd
the buffer; each flush writes the summaries of windows that have ended, `close()` all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import share_pb2
from server import pagination
from server.access.policy import require_audit_reader
from server.audit.dead_letter import DeadLetterFile
from server.audit.event import AuditEvent
from server.audit.refusals import RefusalCounter, RefusalKey
from server.auth.principal import Principal
from server.db.engine import Database
from server.db.errors import is_unavailable
from server.db.schema import audit_log
from server.metrics import Metrics

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


@dataclass(frozen=True)
class AuditHealth:
    writing: bool  # the last write reached the database (or nothing needed writing)
    pending: int
    dead_letters: bool  # the dead-letter file holds events an operator must look at

    @property
    def ok(self) -> bool:
        return self.writing and not self.dead_letters


# How long closing waits for a write in progress before cancelling it.
CLOSE_WAIT_SECONDS = 5.0


class AuditLog:
    def __init__(
        self,
        db: Database,
        *,
        interval: float = 0.5,
        batch_size: int = 100,
        max_buffer: int = 100_000,
        max_backoff: float = 30.0,
        refusals: RefusalCounter | None = None,
        dead_letter: DeadLetterFile | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._refusals = refusals or RefusalCounter()
        self._interval = interval
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._max_backoff = max(max_backoff, interval)
        self._dead_letter = dead_letter or DeadLetterFile("var/audit-dead-letter.jsonl")
        self._metrics = metrics
        self._pending: list[AuditEvent] = []
        # How many of the buffer's first events a flush is writing now: they stay buffered until
        # written (a failure keeps them), but they are not what the next batch waits for.
        self._writing = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False
        self._failing_since: float | None = None  # monotonic time of the first failed write in a row

    def record(self, event: AuditEvent) -> None:
        """Buffers one event (made storable first); never blocks on the database."""
        event = event.storable()
        if len(self._pending) >= self._max_buffer:
            # The front of the buffer may be in the middle of a write: keep it, set this one aside.
            self._to_dead_letter([event], "the audit buffer is full (the database has not taken events for long)")
            return
        self._pending.append(event)
        self._gauge()
        if self._closed:
            return
        self._ensure_task()
        # Not while writes fail: the writer retries on its backoff, which arrivals must not cut
        # short (each woke it for another attempt at once, as fast as events came in).
        if (
            len(self._pending) - self._writing >= self._batch_size
            and self._failing_since is None
            and self._wake is not None
        ):
            self._wake.set()

    def retry_now(self) -> None:
        """The database answers again (health saw it): a writer backing off from failed writes
        tries at once, rather than at the end of a backoff grown during the outage (up to
        `max_backoff`), so the events buffered meanwhile are written within a health check."""
        if self._failing_since is not None and self._wake is not None:
            self._wake.set()

    def record_refusal(self, key: RefusalKey, correlation_id: str) -> None:
        """Counts a call refused before anyone was identified; records what the counter lets through."""
        for event in self._refusals.observe(key, correlation_id):
            self.record(event)

    def health(self) -> AuditHealth:
        return AuditHealth(self._failing_since is None, len(self._pending), self._dead_letter.holds_events())

    @property
    def dead_letter(self) -> DeadLetterFile:
        return self._dead_letter

    def _ensure_task(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a sync caller): the next flush() or close() writes it
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        # A context of its own: not the first recording rpc's (its caller, its correlation id).
        self._task = asyncio.create_task(self._run(), name="tessera-audit-writer", context=contextvars.Context())

    async def _run(self) -> None:
        assert self._wake is not None
        delay = self._interval
        while not self._closed:
            # Not asyncio.wait_for: on Python 3.11 a cancellation landing just as the event
            # is set is dropped by it, and the writer went on to wait for the lock that close()
            # holds while it waits for the writer: the server never stopped.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            if self._closed:
                return  # close() writes what is left
            self._wake.clear()
            try:
                await self.flush()
                delay = self._interval
            except Exception:  # logged by _failed; kept buffered and retried after a backoff
                delay = min(delay * 2, self._max_backoff)

    async def flush(self, *, all_refusals: bool = False) -> None:
        """Writes every buffered event now, with the refusal summaries of windows that have ended
        (`all_refusals`: of the current window too). Raises when the database is unavailable; the
        events not yet written stay buffered."""
        self._pending.extend(e.storable() for e in self._refusals.drain(everything=all_refusals))
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # What is buffered now, not what arrives meanwhile: draining until empty wrote a busy
            # server's events a few at a time, a transaction and a COPY each (0.3 ms of the
            # server's CPU per event at 1,300 cached reads a second, against 0.01 in batches).
            left = self._writing = len(self._pending)
            try:
                while left > 0:
                    size = min(left, self._batch_size * 10)
                    await self._settle(size)
                    left = self._writing = left - size
            except Exception as exc:
                self._failed(exc)
                raise
            finally:
                self._writing = 0
                self._gauge()
            if self._failing_since is not None:
                log.warning("audit writes resumed after %.1f s", time.monotonic() - self._failing_since)
                self._failing_since = None

    async def _settle(self, size: int) -> None:
        """Writes the first `size` buffered events, removing each from the buffer as soon as it is
        written or dead-lettered, so that a failure part-way never writes an event twice."""
        batch = self._pending[:size]
        try:
            # Not counted: no copy in memory follows the audit log, so reads need not wait for it.
            async with self._db.transaction(counted=False) as conn:
                await _copy_rows(conn, batch)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            self._count_failure("rejected")
            if size == 1:
                self._to_dead_letter(batch, f"the database refused the event: {_short(exc)}")
                del self._pending[:1]
                return
            half = size // 2
            await self._settle(half)
            await self._settle(size - half)
            return
        del self._pending[:size]

    def _failed(self, exc: BaseException) -> None:
        self._count_failure("unavailable")
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("audit writes failing; events stay buffered and are retried: %s", _short(exc))

    def _count_failure(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.audit_write_failures.labels(kind=kind).inc()

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.audit_pending.set(len(self._pending))

    def _to_dead_letter(self, events: list[AuditEvent], why: str) -> None:
        try:
            count = self._dead_letter.append(events, why)
        except OSError as exc:
            # The last place left: the log itself (audit rows hold ids and flags, never PHI).
            for event in events:
                log.error("audit event lost to the database and the dead-letter file: %r", event.row())
            log.error("audit dead-letter file %s cannot be written: %r", self._dead_letter.path, exc)
            raise
        if self._metrics is not None:
            self._metrics.audit_dead_letters.inc(count)
        log.error("audit events written to the dead-letter file %s: %d (%s)", self._dead_letter.path, count, why)

    async def close(self) -> None:
        """Stops the background writer and writes what is left (to the dead-letter file when the
        database does not answer)."""
        self._closed = True
        if self._task is not None:
            # Not in the middle of a write: a COPY cancelled half-way leaves its connection busy.
            # Bounded: a flush against a database that does not answer may hang for long.
            held = False
            if self._lock is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                        held = await self._lock.acquire()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            if held and self._lock is not None:
                self._lock.release()
        self._lock = None  # a lock bound to a loop that may be gone
        try:
            await self.flush(all_refusals=True)
        except Exception as exc:
            left, self._pending = self._pending, []
            self._gauge()
            self._to_dead_letter(left, f"the server stopped while the database was unavailable: {_short(exc)}")

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


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}"


__all__ = ["DENIED", "ERROR", "SUCCESS", "AuditEvent", "AuditHealth", "AuditLog", "event_from_row"]


# The columns a batch is copied into, in AuditEvent.row()'s names.
_COPY_COLUMNS = (
    "at",
    "actor",
    "method",
    "outcome",
    "facility_id",
    "resource_type",
    "resource_id",
    "resource_version",
    "row_count",
    "phi_unmasked",
    "correlation_id",
    "details",
)
_COPY = f"COPY {audit_log.name} ({', '.join(_COPY_COLUMNS)}) FROM STDIN"


async def _copy_rows(conn: AsyncConnection, events: list[AuditEvent]) -> None:
    """The events as rows through COPY, in the connection's transaction: a fraction of what an
    INSERT per row costs the server process, which writes one event per rpc."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    async with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
        for event in events:
            row = event.row()
            row["details"] = Jsonb(row["details"])
            await copy.write_row([row[name] for name in _COPY_COLUMNS])
