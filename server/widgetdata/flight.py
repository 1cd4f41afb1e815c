"""Single-flight for the widget-data cache: a missing entry is computed once per key across all
processes, in two layers.

* In the process: one task per key; every concurrent request for the key awaits it (shielded, so
  a caller that goes away never cancels the others' computation).
* Across processes: a Redis lock `SET {prefix}wd:{<query id>}:lock:{key} <token> NX PX <lease>`
  (for a miss in a script that also reads the key's entry: one round trip).
  The holder renews the lease every lease/3 while it computes; one script then puts its result
  into tier 1 and releases the lock (compare-and-delete), while tier 2 is written at the same
  time (in the server, just after the answer: WRITES_BEHIND). A holder that dies stops renewing,
  so its lock expires within one lease and a waiter takes over (at once when the holder was a
  process of this machine that is gone: holder.py).
  Waiters poll tier 1 (and the lock, and the holder's failure note) in one MGET with
  a short backoff, and return the holder's result. A holder that fails leaves a short note of the
  error so that its waiters fail with it rather than re-running, one by one, a query that fails.
  Waiters get errors in a shareable form (server/queries/disclosure.py), since the query ran with
  someone else's principal.

When Redis is unavailable the cross-process layer is a PostgreSQL transaction-level advisory lock
on the key instead (`pg_advisory_xact_lock`): the holder re-reads tier 2 under it and computes
only when it is still missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from google.rpc import code_pb2
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dashboard.v1 import widget_pb2
from server.db.engine import Database
from server.errors import TesseraError, Unavailable
from server.queries import disclosure
from server.widgetdata.counters import stats
from server.widgetdata.entry import Entry, Freshness
from server.widgetdata.holder import known_dead, new_token
from server.widgetdata.key import advisory_lock_id, data_key, error_key, lock_key
from server.widgetdata.request import CacheRequest, Compute
from server.widgetdata.tier1 import REDIS_ERRORS, RedisTier
from server.widgetdata.tier2 import DatabaseTier

__all__ = ["FAILURE_NOTE_MS", "WRITES_BEHIND", "ConcurrentFailure", "SingleFlight"]

log = logging.getLogger("tessera.widgetdata")

COMPUTED = widget_pb2.DATA_SOURCE_COMPUTED
DATABASE = widget_pb2.DATA_SOURCE_DATABASE
POLL_MIN_SECONDS = 0.005
POLL_MAX_SECONDS = 0.05
# How long a holder's failure note answers its waiters.
FAILURE_NOTE_MS = 5000
# Tier-2 writes left running behind their responses at most: past it a holder's caller waits for
# its own write, so a PostgreSQL that falls behind slows the computations instead of filling memory.
WRITES_BEHIND = 32
# How long after its response a tier-2 write behind it starts: past the answer's send.
WRITE_BEHIND_DELAY_SECONDS = 0.002

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# The lock, and when it was taken the key's entry in the same round trip: a holder that finished
# between the caller's lookup and this lock left its result there.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {1, redis.call('GET', KEYS[2])}
end
return {0}
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
# The holder's result into tier 1, then its lock released if still its own (in this order: a
# waiter that finds the lock gone reads the result), then the key announced on the channel: one
# round trip (a script's PUBLISH reaches every node of a cluster too).
_STORE_AND_RELEASE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then
    redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""

Classify = Callable[[Entry, CacheRequest, float], Freshness]
# The channel and the message that tell every process that the key has a new entry (their
# tier-0 copies of it go).
Announcement = Callable[[CacheRequest], tuple[str, str]]


class _RedisDown(Exception):
    """Redis failed before anything was computed: take the PostgreSQL path."""


class ConcurrentFailure(TesseraError):
    """The error a concurrent holder's computation of the same key ended with."""

    def __init__(self, code_name: str, message: str, *, reason: str, metadata: dict[str, str]) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.code_name = code_name if _known_code(code_name) else "UNAVAILABLE"


def _known_code(name: str) -> bool:
    try:
        code_pb2.Code.Value(name)
    except ValueError:
        return False
    return True


def _shareable(exc: TesseraError) -> ConcurrentFailure:
    """The error as the waiters may see it (server/queries/disclosure.py decides)."""
    message, metadata = disclosure.for_waiter(exc)
    return ConcurrentFailure(exc.code_name, message, reason=exc.reason, metadata=metadata)


def _failure_note(token: str, exc: TesseraError) -> bytes:
    shared = _shareable(exc)
    note = {
        "token": token,
        "code": shared.code_name,
        "reason": shared.reason,
        "message": shared.message,
        "metadata": shared.metadata,
    }
    return json.dumps(note).encode()


def _read_failure(raw: bytes, holder: bytes) -> ConcurrentFailure | None:
    try:
        note = json.loads(raw)
        if note["token"].encode() != holder:
            return None  # an older holder's failure, not the one we waited for
        return ConcurrentFailure(
            str(note["code"]), str(note["message"]), reason=str(note["reason"]), metadata=dict(note["metadata"])
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _wait_timeout() -> Unavailable:
    return Unavailable(
        "timed out waiting for a concurrent computation of the same widget data; retry",
        reason="CACHE_WAIT_TIMEOUT",
    )


class SingleFlight:
    def __init__(
        self,
        db: Database,
        tier1: RedisTier,
        tier2: DatabaseTier,
        *,
        lease_seconds: float,
        wait_limit_seconds: float,
        classify: Classify,
        announcement: Announcement,
        clock: Callable[[], float],
        write_behind: bool = False,
    ) -> None:
        self._db = db
        self._write_behind = write_behind
        self._writes: set[asyncio.Task[None]] = set()
        self._tier1 = tier1
        self._tier2 = tier2
        self._lease = lease_seconds
        self._wait_limit = wait_limit_seconds
        self._classify = classify
        self._announcement = announcement
        self._clock = clock
        self._renew = tier1.redis.register_script(_RENEW)
        self._acquire = tier1.redis.register_script(_ACQUIRE)
        self._release = tier1.redis.register_script(_RELEASE)
        self._store_and_release = tier1.redis.register_script(_STORE_AND_RELEASE)
        self._inflight: dict[str, asyncio.Task[tuple[Entry, int]]] = {}

    async def run(self, request: CacheRequest, compute: Compute, started: float) -> tuple[Entry, int]:
        """The entry for the key, computed at most once across processes; with its source."""
        task = self._inflight.get(request.key)
        if task is None:
            task = asyncio.create_task(self._distributed(request, compute, started))
            self._inflight[request.key] = task
            task.add_done_callback(functools.partial(self._forget, request.key))
            # Shielded: a caller that goes away (deadline, disconnect) must not cancel the others' result.
            return await asyncio.shield(task)
        stats.waits += 1
        try:
            return await asyncio.shield(task)
        except TesseraError as exc:
            # The query ran with another caller's principal: share its error as anyone may see it.
            raise _shareable(exc) from None

    def pending(self) -> list[asyncio.Task[tuple[Entry, int]]]:
        return list(self._inflight.values())

    async def written(self) -> None:
        """Waits for the tier-2 writes running behind their responses."""
        await asyncio.gather(*self._writes, return_exceptions=True)  # each one's failure is logged

    def _schedule_write(self, request: CacheRequest, entry: Entry, rows: int) -> None:
        task = asyncio.create_task(self._write_later(request, entry, rows))
        self._writes.add(task)
        task.add_done_callback(self._written)

    async def _write_later(self, request: CacheRequest, entry: Entry, rows: int) -> None:
        # Not at once: a task started now runs its first steps (a pool checkout, the statement's
        # send: about a millisecond of this loop's time) before the caller's own task resumes
        # to send the answer.
        await asyncio.sleep(WRITE_BEHIND_DELAY_SECONDS)
        await self._tier2.write(request, entry, rows)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # DatabaseTier.write logs the database's failures itself: this is anything else.
            log.error("widget data: a tier-2 write behind its response failed", exc_info=error)

    def _forget(self, key: str, task: asyncio.Task[tuple[Entry, int]]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when every caller left

    def _acceptable(self, entry: Entry, request: CacheRequest, started: float) -> bool:
        """Whether a result found while waiting answers this request: fresh, and for a forced
        refresh computed after the request arrived."""
        if self._classify(entry, request, self._clock()) is not Freshness.FRESH:
            return False
        return not request.force_refresh or entry.computed_at >= started

    async def _distributed(self, request: CacheRequest, compute: Compute, started: float) -> tuple[Entry, int]:
        if self._tier1.usable():
            try:
                return await self._with_redis_lock(request, compute, started)
            except _RedisDown:
                pass
        return await self._with_advisory_lock(request, compute, started)

    # --- Redis: a lease lock, waiters polling -------------------------------------------------

    async def _with_redis_lock(self, request: CacheRequest, compute: Compute, started: float) -> tuple[Entry, int]:
        redis, prefix = self._tier1.redis, self._tier1.prefix
        lock = lock_key(prefix, request.query_id, request.key)
        data = data_key(prefix, request.query_id, request.key)
        note = error_key(prefix, request.query_id, request.key)
        token = new_token()
        deadline = time.monotonic() + self._wait_limit
        delay = POLL_MIN_SECONDS
        holder: bytes | None = None
        while True:
            found: Any = None  # what tier 1 held for the key once the lock was taken
            try:
                if request.force_refresh:  # reads no entry
                    acquired = await redis.set(lock, token, nx=True, px=self._lease_ms)
                else:
                    taken = await self._acquire(keys=[lock, data], args=[token, self._lease_ms])
                    acquired, found = bool(taken[0]), taken[1] if len(taken) > 1 else None
            except REDIS_ERRORS as exc:
                self._tier1.failed(exc)
                raise _RedisDown from exc
            if acquired:
                return await self._lead(request, compute, lock, token, found)
            # Someone else computes this key: poll for its result (or its failure) until its
            # lock is gone, and only then try to take the lock (a free lock after a sleep may
            # mean that the holder just failed: its note must be read first).
            while True:
                try:
                    current, raw, failure = await redis.mget(lock, data, note)
                except REDIS_ERRORS as exc:
                    self._tier1.failed(exc)
                    raise _RedisDown from exc
                if current is not None:
                    holder = current.encode() if isinstance(current, str) else bytes(current)
                entry = self._tier1.decode(raw)
                if entry is not None and self._acceptable(entry, request, started):
                    stats.waits += 1
                    return entry, COMPUTED
                if failure is not None and holder is not None:
                    error = _read_failure(failure.encode() if isinstance(failure, str) else bytes(failure), holder)
                    if error is not None:
                        raise error
                if current is None:
                    break  # released (or its lease ran out) without a result for us: take it
                if holder is not None and known_dead(holder):
                    # Its process is gone (this machine's): remove exactly its lock, take over.
                    log.warning("widget data: the single-flight lock's holder died; taking over")
                    try:
                        await self._release(keys=[lock], args=[holder])
                    except REDIS_ERRORS as exc:
                        self._tier1.failed(exc)
                        raise _RedisDown from exc
                    continue
                if time.monotonic() > deadline:
                    raise _wait_timeout()
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, POLL_MAX_SECONDS)

    @property
    def _lease_ms(self) -> int:
        return max(1, round(self._lease * 1000))

    async def _lead(
        self, request: CacheRequest, compute: Compute, lock: str, token: str, found: Any
    ) -> tuple[Entry, int]:
        """`found`: what tier 1 held for the key when the lock was taken (_ACQUIRE)."""
        released = False
        try:
            if not request.force_refresh:
                entry = self._tier1.decode(found or None)
                if entry is not None and self._classify(entry, request, self._clock()) is Freshness.FRESH:
                    stats.waits += 1
                    return entry, COMPUTED
            renewal = asyncio.create_task(self._keep_lease(lock, token))
            try:
                entry, rows = await self._compute(request, compute)
            except TesseraError as exc:
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._tier1.redis.set(
                        error_key(self._tier1.prefix, request.query_id, request.key),
                        _failure_note(token, exc),
                        px=FAILURE_NOTE_MS,
                    )
                raise
            finally:
                renewal.cancel()
            if self._write_behind and len(self._writes) < WRITES_BEHIND:
                # Tier 1 and the announcement before the answer (the other processes read them);
                # tier 2, the copy for a Redis restart, after it: the caller does not wait for it.
                await self._settle(request, entry, lock, token)
                self._schedule_write(request, entry, rows)
            else:
                # Both tiers at once: the caller waits for the slower one, not for their sum.
                await asyncio.gather(self._settle(request, entry, lock, token), self._tier2.write(request, entry, rows))
            released = True
            return entry, COMPUTED
        finally:
            if not released:
                try:
                    await self._release(keys=[lock], args=[token])
                except REDIS_ERRORS as exc:
                    self._tier1.failed(exc)  # the lease runs out by itself

    async def _settle(self, request: CacheRequest, entry: Entry, lock: str, token: str) -> None:
        """The result into tier 1, the lock released (waiters poll both) and the key announced."""
        envelope, ttl_ms = self._tier1.envelope(entry)
        channel, message = self._announcement(request)
        try:
            await self._store_and_release(
                keys=[data_key(self._tier1.prefix, request.query_id, request.key), lock],
                args=[envelope, ttl_ms, token, channel, message],
            )
        except REDIS_ERRORS as exc:
            self._tier1.failed(exc)  # the lock's lease runs out by itself

    async def _keep_lease(self, lock: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                renewed = await self._renew(keys=[lock], args=[token, self._lease_ms])
            except REDIS_ERRORS:
                return  # Redis is gone: so is the lock; nothing to renew
            if not renewed:
                log.warning("widget data: lost the single-flight lock while computing (lease expired)")
                return
            stats.lease_renewals += 1

    # --- PostgreSQL: an advisory lock while Redis is down -------------------------------------

    async def _with_advisory_lock(self, request: CacheRequest, compute: Compute, started: float) -> tuple[Entry, int]:
        async with self._db.transaction() as conn:
            await conn.execute(
                text("SELECT set_config('lock_timeout', :timeout, true)"),
                {"timeout": f"{round(self._wait_limit * 1000)}ms"},
            )
            try:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": advisory_lock_id(request.key)})
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                    raise _wait_timeout() from exc
                raise
            stored = await self._tier2.get(conn, request.key)
            if stored is not None and self._acceptable(stored, request, started):
                if stored.computed_at >= started:
                    stats.waits += 1
                    return stored, COMPUTED
                return stored, DATABASE
            entry, rows = await self._compute(request, compute)
            await self._tier2.put_within(conn, request, entry, rows)
        await self._tier1.put(request, entry)
        await self._tier1.publish(*self._announcement(request))
        return entry, COMPUTED

    async def _compute(self, request: CacheRequest, compute: Compute) -> tuple[Entry, int]:
        stats.executions += 1
        frame, masked = await compute()
        now = self._clock()
        entry = Entry(
            frame=frame.SerializeToString(),
            computed_at=now,
            expires_at=now + request.ttl,
            query_version=request.query_version,
            masked=masked,
        )
        return entry, int(frame.row_count)
