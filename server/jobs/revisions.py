"""Revisioned job rows with a resumable event stream: the mechanics shared by materialization and
export jobs.

The row is the truth. Every change runs in one transaction that locks the row, applies the change
to a working copy of the job message and writes it back with `revision = revision + 1`; AFTER the
commit the new snapshot is appended to the bounded stream `{prefix}{stream}:{id}` (XADD MAXLEN ~ N,
fields `rev` and `job`). Publishing after commit means a watcher that sees revision r in the
stream always finds at least r in the row.

A watch reads the row, sends the snapshot (or, when resuming, the missed revisions still in the
stream), then blocks on the stream. Revisions <= the last one sent are skipped (no duplicates);
a revision beyond last+1 (a trimmed stream, a lost XADD, Redis down for a while) makes it re-read
the row and send that snapshot (no gaps: every snapshot is the whole job). While idle it sends
heartbeats and re-reads the row each time (so an XADD lost to a crash between commit and publish
costs at most one heartbeat interval); a row found ahead is bridged from the stream, as a resume
is. Redis unavailable: it polls the row instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import redis.exceptions
from google.protobuf import timestamp_pb2
from sqlalchemy import Table, func, select, update

from dashboard.v1 import common_pb2
from server.config import Settings
from server.db.engine import Database
from server.errors import NotFound, Unavailable
from server.redis_client import RedisClient

__all__ = ["TERMINAL", "JobKind", "JobMessage", "RevisionStore"]

log = logging.getLogger("tessera.jobs")

TERMINAL = frozenset({common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED})
_REDIS_ERRORS = (redis.exceptions.RedisError, OSError)
# XREAD BLOCK stays well under the client's socket timeout (5 s in server.app).
_BLOCK_MAX_SECONDS = 2.0
# After a Redis failure a watch polls the row for this long before trying Redis again.
_REDIS_RETRY_SECONDS = 2.0


class JobMessage(Protocol):
    """What every job message has (MaterializationJob, ExportJob)."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> int: ...
    @property
    def revision(self) -> int: ...
    @property
    def progress(self) -> common_pb2.JobProgress: ...
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


M = TypeVar("M", bound=JobMessage)
E = TypeVar("E")


@dataclass(frozen=True)
class JobKind(Generic[M, E]):
    """How one kind of job maps to its table, its message and its watch events."""

    table: Table
    resource_type: str  # for NotFound
    stream: str  # stream key infix
    parse: Callable[[bytes], M]
    from_row: Callable[[Any], M]
    # The columns a change writes (revision and ended_at are the store's).
    to_values: Callable[[M], dict[str, Any]]
    event: Callable[[M], E]
    heartbeat: Callable[[common_pb2.Heartbeat], E]


def _entries(answer: Any) -> list[tuple[str, int, bytes]]:
    """(entry id, revision, snapshot bytes) from an XREAD answer ([(stream, [(id, fields)])])."""
    out: list[tuple[str, int, bytes]] = []
    for _, entries in answer or []:
        for entry_id, fields in entries or []:
            ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            out.append((ident, int(fields[b"rev"]), bytes(fields[b"job"])))
    return out


class RevisionStore(Generic[M, E]):
    def __init__(self, kind: JobKind[M, E], db: Database, redis: RedisClient, settings: Settings) -> None:
        self.kind = kind
        self._db = db
        self._redis = redis
        self._prefix = settings.redis_prefix
        self._heartbeat = float(settings.job_heartbeat_seconds)
        self._poll = float(settings.job_poll_seconds)
        self._max_len = int(settings.job_stream_max_len)
        self._ttl = int(settings.job_stream_ttl_seconds)
        # One change at a time per job in this process, publish included: concurrent steps of one
        # job (a materialization's widgets run several at once) would otherwise publish out of
        # commit order, and a watcher would see revision r+1 before r and skip r.
        self._in_order: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @property
    def db(self) -> Database:
        return self._db

    def stream_key(self, job_id: str) -> str:
        return f"{self._prefix}{self.kind.stream}:{job_id.lower()}"

    # --- write ----------------------------------------------------------------------------------

    async def change(
        self,
        job_id: str,
        mutate: Callable[[M], bool],
        extra: Callable[[M], Mapping[str, Any]] | None = None,
    ) -> M | None:
        """Applies `mutate` under the row lock and commits it as the next revision, then
        publishes it. None when the job does not exist or `mutate` changed nothing. `extra`
        gives further columns to write with the change (computed from the changed job)."""
        lock = self._in_order.get(job_id)
        if lock is None:
            lock = self._in_order[job_id] = asyncio.Lock()
        async with lock:
            return await self._change(job_id, mutate, extra)

    async def _change(
        self,
        job_id: str,
        mutate: Callable[[M], bool],
        extra: Callable[[M], Mapping[str, Any]] | None,
    ) -> M | None:
        table = self.kind.table
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(select(table).where(table.c.id == uuid.UUID(job_id)).with_for_update())
            ).one_or_none()
            if row is None:
                return None
            job = self.kind.from_row(row)
            if not mutate(job):
                return None
            values = self.kind.to_values(job)
            if extra is not None:
                values.update(extra(job))
            values["revision"] = table.c.revision + 1
            if job.state in TERMINAL and row.ended_at is None:
                values["ended_at"] = func.now()
            updated = (
                await conn.execute(update(table).where(table.c.id == row.id).values(**values).returning(table))
            ).one()
        changed = self.kind.from_row(updated)
        # One line per progress event (a worker's log lines carry the rpc's correlation id).
        log.info(
            "job progress",
            extra={
                "job_kind": self.kind.stream,
                "job_id": changed.id,
                "revision": changed.revision,
                "state": common_pb2.JobState.Name(changed.state),
                "percent": changed.progress.percent,
                "step": changed.progress.message,
            },
        )
        await self.publish(changed)
        return changed

    async def enqueue(
        self, job: M, send: Callable[[str], Awaitable[None]], fail: Callable[[M], bool], what: str
    ) -> None:
        """Hands a committed job to its queue. When the broker refuses, the job could never run:
        it is failed with `fail` (a mutation) and the caller gets UNAVAILABLE to retry."""
        try:
            await send(job.id)
        except Exception as exc:
            log.warning("jobs: could not enqueue %s %s: %r", what, job.id, exc)
            await self.change(job.id, fail)
            raise Unavailable(f"the {what} queue is unavailable; retry", reason="BROKER_UNAVAILABLE") from exc

    async def publish(self, job: M) -> None:
        """Appends the snapshot to the job's stream. A failure is logged, not raised: watchers
        recover from the row (gap detection, heartbeat re-reads, polling)."""
        key = self.stream_key(job.id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(
                    key,
                    {"rev": str(job.revision), "job": job.SerializeToString()},
                    maxlen=self._max_len,
                    approximate=True,
                )
                pipe.expire(key, self._ttl)
                await pipe.execute()
        except _REDIS_ERRORS as exc:
            log.warning("jobs: could not publish revision %d of %s: %r", job.revision, job.id, exc)

    # --- read -----------------------------------------------------------------------------------

    async def row(self, job_id: str) -> Any:
        try:
            ident = uuid.UUID(job_id)
        except ValueError:
            return None
        table = self.kind.table
        async with self._db.read() as conn:
            return (await conn.execute(select(table).where(table.c.id == ident))).one_or_none()

    async def get(self, job_id: str) -> M:
        row = await self.row(job_id)
        if row is None:
            raise NotFound(self.kind.resource_type, job_id)
        return self.kind.from_row(row)

    def _beat(self, revision: int) -> E:
        now = timestamp_pb2.Timestamp()
        now.FromDatetime(datetime.now(UTC))
        return self.kind.heartbeat(common_pb2.Heartbeat(time=now, revision=revision))

    async def watch(self, job_id: str, since_revision: int) -> AsyncIterator[E]:
        """The watch stream (see the module docstring). Access is the caller's business."""
        event = self.kind.event
        job = await self.get(job_id)
        key = self.stream_key(job.id)
        last = since_revision
        if since_revision < job.revision:
            for caught_up in await self._catch_up(key, since_revision, job):
                yield event(caught_up)
                last = caught_up.revision
                if caught_up.state in TERMINAL:
                    return
        elif job.state in TERMINAL:
            return  # the caller already has the final revision
        cursor = "0-0"
        redis_retry_at = 0.0
        next_beat = time.monotonic() + self._heartbeat
        while True:
            wait = max(0.0, next_beat - time.monotonic())
            fresh: list[M] = []
            if time.monotonic() >= redis_retry_at:
                try:
                    block_ms = max(1, round(min(wait, _BLOCK_MAX_SECONDS) * 1000))
                    answer = await self._redis.xread({key: cursor}, count=100, block=block_ms)
                except _REDIS_ERRORS as exc:
                    log.warning("jobs: watch of %s polls the row, Redis failed: %r", job_id, exc)
                    redis_retry_at = time.monotonic() + _REDIS_RETRY_SECONDS
                    answer = []
                for entry_id, revision, payload in _entries(answer):
                    cursor = entry_id
                    if revision <= last:
                        continue
                    expected = fresh[-1].revision + 1 if fresh else last + 1
                    if revision == expected:
                        fresh.append(self.kind.parse(payload))
                    else:
                        # A gap: the row holds at least this revision (published after commit).
                        fresh.append(await self.get(job_id))
                        break
            else:
                await asyncio.sleep(min(self._poll, wait) if wait > 0 else 0)
                current = await self.get(job_id)
                if current.revision > last:
                    fresh.append(current)
            for snapshot in fresh:
                if snapshot.revision <= last:
                    continue
                yield event(snapshot)
                last = snapshot.revision
                next_beat = time.monotonic() + self._heartbeat
                if snapshot.state in TERMINAL:
                    return
            if time.monotonic() >= next_beat:
                current = await self.get(job_id)
                if current.revision > last:
                    # Committed since the stream was last read: the revisions in between are
                    # sent from the stream, in order; the row's snapshot stands in only for what
                    # the stream lacks (an XADD lost to a crash). Sending the row's alone skipped
                    # every revision committed just before it.
                    for snapshot in await self._catch_up(key, last, current):
                        yield event(snapshot)
                        last = snapshot.revision
                        if snapshot.state in TERMINAL:
                            return
                else:
                    yield self._beat(last)
                next_beat = time.monotonic() + self._heartbeat

    async def _catch_up(self, key: str, since_revision: int, current: M) -> list[M]:
        """What a watch sends first: the snapshot (since 0); for a resume, every revision after
        `since_revision` that the stream still holds contiguously, completed by the row's
        snapshot when the stream ends early; just the row's snapshot when the stream cannot
        bridge the gap."""
        if since_revision == 0:
            return [current]
        try:
            entries = await self._redis.xrange(key, "-", "+")
        except _REDIS_ERRORS as exc:
            log.warning("jobs: resume from the row, Redis failed: %r", exc)
            return [current]
        missed: list[M] = []
        expected = since_revision + 1
        for _, revision, payload in _entries([(key, entries)]):
            if revision < expected:
                continue
            if revision != expected:
                break
            missed.append(self.kind.parse(payload))
            expected += 1
        if not missed:
            return [current]
        if missed[-1].revision < current.revision:
            missed.append(current)
        return missed
