"""The two-tier widget-data cache with single-flight.

Tier 1 is Redis (`{prefix}wd:{key}` -> an `entry` envelope, expiring when the entry can no longer
be served, i.e. expiry + max staleness). Tier 2 is `widget_data_cache` in PostgreSQL: the same
frame bytes, upserted by every computation, so a Redis restart loses nothing; a tier-2 hit
refills tier 1.

A miss computes under single-flight, in two layers:

* in the process: one task per key; every concurrent request for the key awaits it (shielded, so
  a caller that goes away never cancels the others' computation);
* across processes: a Redis lock `SET {prefix}wd:lock:{key} <token> NX PX <lease>`. The holder
  renews the lease every lease/3 while it computes and releases it with a compare-and-delete
  script; a holder that dies stops renewing, so its lock expires within one lease and a waiter
  takes over (at once when the holder was a process of this machine that is gone:
  server/widgetdata/holder.py). Waiters poll tier 1 (and the lock, and the holder's failure
  note) in one MGET with a short backoff, and return the holder's result. A holder that fails leaves a short note of the
  error so that its waiters fail with it rather than re-running, one by one, a query that fails.
  Waiters get errors in a shareable form: messages that may quote data are cut to the SQLSTATE,
  since the query ran with someone else's principal.

When Redis is unavailable (a command failed less than REDIS_RETRY_SECONDS ago, or fails now) the
cross-process layer is a PostgreSQL transaction-level advisory lock on the key instead
(`pg_advisory_xact_lock`): the holder re-reads tier 2 under it and computes only when it is still
missing. Redis being down is never an error for the caller.

Stale-while-revalidate: an entry past its expiry but younger than expiry + max staleness is served
as STALE and one background refresh per key and process starts (itself single-flight, so across
processes one execution). `force_refresh` skips the lookup but not the single-flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from google.rpc import code_pb2
from sqlalchemy import bindparam, delete, null, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import common_pb2, widget_pb2
from server.config import Settings
from server.db.engine import Database
from server.db.schema import widget_data_cache, widgets
from server.errors import TesseraError, Unavailable
from server.metrics import Metrics
from server.queries.masking import MASKING_LEVEL_MASKED
from server.widgetdata.entry import (
    Entry,
    EnvelopeError,
    Freshness,
    classify,
    decode,
    effective_expiry,
    encode,
    tier1_ttl_ms,
)
from server.widgetdata.holder import known_dead, new_token
from server.widgetdata.key import advisory_lock_id, data_key, error_key, generation_key, lock_key

__all__ = ["CacheRequest", "CacheStats", "Compute", "Served", "WidgetDataCache", "stats"]

log = logging.getLogger("tessera.widgetdata")

# Produces the frame for a key and whether PHI was masked in it.
Compute = Callable[[], Awaitable[tuple[common_pb2.DataFrame, bool]]]

MEMORY = widget_pb2.DATA_SOURCE_MEMORY
DATABASE = widget_pb2.DATA_SOURCE_DATABASE
COMPUTED = widget_pb2.DATA_SOURCE_COMPUTED
STALE = widget_pb2.DATA_SOURCE_STALE
_SOURCE_NAMES: dict[int, str] = {MEMORY: "memory", DATABASE: "database", COMPUTED: "computed", STALE: "stale"}

# After a Redis failure, skip Redis for this long (a dead Redis costs nothing per request), then try again.
REDIS_RETRY_SECONDS = 1.0
POLL_MIN_SECONDS = 0.005
POLL_MAX_SECONDS = 0.05
# How long a holder's failure note answers its waiters.
FAILURE_NOTE_MS = 5000
# Reasons whose messages may quote data (PostgreSQL's text, a driver message): waiters get only
# the reason and SQLSTATE, whoever they are.
_DATA_BEARING_REASONS = frozenset({"QUERY_FAILED", "QUERY_PARAMETER_INVALID"})
_REDIS_ERRORS = (redis.exceptions.RedisError, OSError)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class CacheRequest:
    """One lookup: the key and what the tier-2 row records about it."""

    key: str
    query_id: str
    query_version: int
    facility_id: str
    masking_level: int
    widget_id: str | None  # None: the widget exists only in a dashboard version's snapshot
    ttl: float  # seconds: the widget's refresh interval
    max_age: float = 0.0  # seconds; 0: no bound beyond the TTL
    force_refresh: bool = False


@dataclass(frozen=True)
class Served:
    entry: Entry
    source: int  # dashboard.v1.DataSource
    expire_at: float  # when it stops (stopped) being fresh for this request


@dataclass
class CacheStats:
    """Process-wide counters (Prometheus will read these). `executions` counts query runs."""

    memory_hits: int = 0
    memory_misses: int = 0
    database_hits: int = 0
    database_misses: int = 0
    stale_served: int = 0
    executions: int = 0
    waits: int = 0  # requests answered by a concurrent computation (this process's or another's)
    background_refreshes: int = 0
    lease_renewals: int = 0
    redis_errors: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


stats = CacheStats()


@dataclass(frozen=True)
class _Tier1:
    """What tier 1 answered for a key (None: nothing)."""

    raw: Any


# Generations remembered per process (one int per query), as the guess read() starts from.
_GENERATIONS_KEPT = 10_000


def _generation_of(raw: Any) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


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
    """The error as callers other than the one whose principal ran the query may see it: messages
    that can quote data (PostgreSQL's text, a driver message) are cut to the reason and SQLSTATE,
    as QueryDomain.execute does for callers without `phi:read`."""
    message = exc.message
    if exc.reason in _DATA_BEARING_REASONS:
        sqlstate = exc.metadata.get("sqlstate", "")
        message = f"the query failed on the database (SQLSTATE {sqlstate})" if sqlstate else "the query failed"
    metadata = {k: v for k, v in exc.metadata.items() if k in ("sqlstate", "timeout_seconds")}
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


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class WidgetDataCache:
    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._db = db
        self._redis = redis
        self._prefix = settings.redis_prefix
        self._max_stale = float(settings.cache_max_stale_seconds)
        self._lease = float(settings.cache_lock_lease_seconds)
        # A holder renews while it computes, and a query stops at its timeout: a waiter that got
        # nothing by then is facing a bug, not a slow query.
        self._wait_limit = settings.query_timeout_cap_seconds + 2 * self._lease + 5
        self._clock = clock
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._inflight: dict[str, asyncio.Task[tuple[Entry, int]]] = {}
        self._revalidating: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._redis_retry_at = 0.0
        self._closed = False
        self._generations: dict[str, int] = {}  # query id -> the generation last read

    # --- generations --------------------------------------------------------------------------

    async def generation(self, query_id: str) -> int:
        """The query's invalidation generation; 0 while Redis is unavailable (keys then rest on
        the database-derived parts: query version and view refresh time)."""
        if not self._redis_usable():
            return 0
        try:
            raw = await self._redis.get(generation_key(self._prefix, query_id))
        except _REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return 0
        return _generation_of(raw)

    async def invalidate(self, query_id: str) -> None:
        """Makes every cached entry of the query unreachable: bumps its generation (tier 1 and 2
        keys change) and deletes its tier-2 rows, so that an invalidation while Redis is down
        (or a Redis restarted without its counters) still reaches tier 2. Tier-1 entries of a
        Redis that missed the bump age out within their TTL."""
        try:
            await self._redis.incr(generation_key(self._prefix, query_id))
        except _REDIS_ERRORS as exc:
            self._redis_failed(exc)
        async with self._db.transaction() as conn:
            await conn.execute(delete(widget_data_cache).where(widget_data_cache.c.query_id == uuid.UUID(query_id)))

    # --- read -----------------------------------------------------------------------------------

    async def read(self, query_id: str, request_for: Callable[[int], CacheRequest], compute: Compute) -> Served:
        """get() for `request_for(the query's current generation)`. The generation and the tier-1
        entry come in one round trip (one MGET, so both from the same moment) when the generation
        is the one this process last saw for the query, as it is until an invalidation; otherwise
        the entry is read again under the key of the generation just read."""
        guess = self._generations.get(query_id, 0)
        request = request_for(guess)
        if request.force_refresh or not self._redis_usable():
            generation = await self.generation(query_id)
            return await self.get(request if generation == guess else request_for(generation), compute)
        try:
            raw_generation, raw_entry = await self._redis.mget(
                generation_key(self._prefix, query_id), data_key(self._prefix, request.key)
            )
        except _REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return await self.get(request_for(0), compute)  # as generation() answers while Redis is down
        generation = _generation_of(raw_generation)
        if generation != guess:
            if len(self._generations) >= _GENERATIONS_KEPT:
                self._generations.clear()  # only a guess: forgetting costs one round trip per query
            self._generations[query_id] = generation
            return await self.get(request_for(generation), compute)
        return await self.get(request, compute, tier1=_Tier1(raw_entry))

    async def get(self, request: CacheRequest, compute: Compute, *, tier1: _Tier1 | None = None) -> Served:
        """`tier1`: what tier 1 held for the key, already read."""
        started = self._clock()
        if not request.force_refresh:
            found = await self._lookup(request, started, tier1)
            if found is not None:
                entry, source, freshness = found
                expire_at = effective_expiry(entry, ttl=request.ttl, max_age=request.max_age)
                if freshness is Freshness.FRESH:
                    self._served(source)
                    return Served(entry, source, expire_at)
                stats.stale_served += 1
                self._metrics.cache_hits.labels("stale").inc()
                self._served(STALE)
                self._revalidate(request, compute)
                return Served(entry, STALE, expire_at)
        entry, source = await self._single_flight(request, compute, started)
        self._served(source)
        return Served(entry, source, effective_expiry(entry, ttl=request.ttl, max_age=request.max_age))

    def _served(self, source: int) -> None:
        self._metrics.widget_data_served.labels(_SOURCE_NAMES.get(source, "unknown")).inc()

    def _classify(self, entry: Entry, request: CacheRequest, now: float) -> Freshness:
        return classify(entry, now, ttl=request.ttl, max_age=request.max_age, max_stale=self._max_stale)

    def _acceptable(self, entry: Entry, request: CacheRequest, started: float) -> bool:
        """Whether a result found while waiting answers this request: fresh, and for a forced
        refresh computed after the request arrived."""
        if self._classify(entry, request, self._clock()) is not Freshness.FRESH:
            return False
        return not request.force_refresh or entry.computed_at >= started

    async def _lookup(
        self, request: CacheRequest, now: float, tier1: _Tier1 | None = None
    ) -> tuple[Entry, int, Freshness] | None:
        best: tuple[Entry, int, Freshness] | None = None
        entry = self._decode(tier1.raw) if tier1 is not None else await self._tier1_get(request.key)
        if entry is not None:
            freshness = self._classify(entry, request, now)
            if freshness is Freshness.FRESH:
                stats.memory_hits += 1
                self._metrics.cache_hits.labels("memory").inc()
                return entry, MEMORY, freshness
            best = (entry, MEMORY, freshness)
        stats.memory_misses += 1
        self._metrics.cache_misses.labels("memory").inc()
        # Tier 2 also when tier 1 holds something old: a write to tier 1 may have failed.
        async with self._db.statements() as conn:
            stored = await self._tier2_get(conn, request.key)
        if stored is not None:
            freshness = self._classify(stored, request, now)
            if freshness is Freshness.FRESH:
                stats.database_hits += 1
                self._metrics.cache_hits.labels("database").inc()
                await self._tier1_put(request.key, stored)
                return stored, DATABASE, freshness
            if best is None or stored.computed_at > best[0].computed_at:
                best = (stored, DATABASE, freshness)
        stats.database_misses += 1
        self._metrics.cache_misses.labels("database").inc()
        if best is not None and best[2] is Freshness.STALE:
            return best
        return None

    # --- single-flight ----------------------------------------------------------------------

    async def _single_flight(self, request: CacheRequest, compute: Compute, started: float) -> tuple[Entry, int]:
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

    def _forget(self, key: str, task: asyncio.Task[tuple[Entry, int]]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when every caller left

    async def _distributed(self, request: CacheRequest, compute: Compute, started: float) -> tuple[Entry, int]:
        if self._redis_usable():
            try:
                return await self._with_redis_lock(request, compute, started)
            except _RedisDown:
                pass
        return await self._with_advisory_lock(request, compute, started)

    async def _with_redis_lock(self, request: CacheRequest, compute: Compute, started: float) -> tuple[Entry, int]:
        lock = lock_key(self._prefix, request.key)
        data = data_key(self._prefix, request.key)
        note = error_key(self._prefix, request.key)
        token = new_token()
        deadline = time.monotonic() + self._wait_limit
        delay = POLL_MIN_SECONDS
        holder: bytes | None = None
        while True:
            try:
                acquired = await self._redis.set(lock, token, nx=True, px=self._lease_ms)
            except _REDIS_ERRORS as exc:
                self._redis_failed(exc)
                raise _RedisDown from exc
            if acquired:
                return await self._lead(request, compute, lock, token)
            # Someone else computes this key: poll for its result (or its failure) until its
            # lock is gone, and only then try to take the lock (a free lock after a sleep may
            # mean that the holder just failed: its note must be read first).
            while True:
                try:
                    current, raw, failure = await self._redis.mget(lock, data, note)
                except _REDIS_ERRORS as exc:
                    self._redis_failed(exc)
                    raise _RedisDown from exc
                if current is not None:
                    holder = current.encode() if isinstance(current, str) else bytes(current)
                entry = self._decode(raw)
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
                    except _REDIS_ERRORS as exc:
                        self._redis_failed(exc)
                        raise _RedisDown from exc
                    continue
                if time.monotonic() > deadline:
                    raise Unavailable(
                        "timed out waiting for a concurrent computation of the same widget data; retry",
                        reason="CACHE_WAIT_TIMEOUT",
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, POLL_MAX_SECONDS)

    @property
    def _lease_ms(self) -> int:
        return max(1, round(self._lease * 1000))

    async def _lead(self, request: CacheRequest, compute: Compute, lock: str, token: str) -> tuple[Entry, int]:
        try:
            if not request.force_refresh:
                # A holder that finished between our lookup and our lock left its result here.
                entry = await self._tier1_get(request.key)
                if entry is not None and self._classify(entry, request, self._clock()) is Freshness.FRESH:
                    stats.waits += 1
                    return entry, COMPUTED
            renewal = asyncio.create_task(self._keep_lease(lock, token))
            try:
                entry, rows = await self._compute(request, compute)
            except TesseraError as exc:
                with contextlib.suppress(*_REDIS_ERRORS):
                    await self._redis.set(
                        error_key(self._prefix, request.key), _failure_note(token, exc), px=FAILURE_NOTE_MS
                    )
                raise
            finally:
                renewal.cancel()
            # Tier 1 first: waiters poll it.
            await self._tier1_put(request.key, entry)
            await self._tier2_write(request, entry, rows)
            return entry, COMPUTED
        finally:
            try:
                await self._release(keys=[lock], args=[token])
            except _REDIS_ERRORS as exc:
                self._redis_failed(exc)  # the lease runs out by itself

    async def _keep_lease(self, lock: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                renewed = await self._renew(keys=[lock], args=[token, self._lease_ms])
            except _REDIS_ERRORS:
                return  # Redis is gone: so is the lock; nothing to renew
            if not renewed:
                log.warning("widget data: lost the single-flight lock while computing (lease expired)")
                return
            stats.lease_renewals += 1

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
                    raise Unavailable(
                        "timed out waiting for a concurrent computation of the same widget data; retry",
                        reason="CACHE_WAIT_TIMEOUT",
                    ) from exc
                raise
            stored = await self._tier2_get(conn, request.key)
            if stored is not None and self._acceptable(stored, request, started):
                if stored.computed_at >= started:
                    stats.waits += 1
                    return stored, COMPUTED
                return stored, DATABASE
            entry, rows = await self._compute(request, compute)
            if not await self._tier2_put(conn, request, entry, rows, savepoint=True):
                await self._tier2_put(conn, replace(request, widget_id=None), entry, rows, savepoint=True)
        await self._tier1_put(request.key, entry)
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

    # --- stale-while-revalidate -------------------------------------------------------------

    def _revalidate(self, request: CacheRequest, compute: Compute) -> None:
        if self._closed or request.key in self._revalidating:
            return
        self._revalidating.add(request.key)
        task = asyncio.create_task(self._revalidate_now(replace(request, max_age=0.0, force_refresh=False), compute))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _revalidate_now(self, request: CacheRequest, compute: Compute) -> None:
        try:
            stats.background_refreshes += 1
            await self._single_flight(request, compute, self._clock())
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed refresh leaves the stale entry; the next read tries again
            log.warning("widget data: background refresh failed", exc_info=True)
        finally:
            self._revalidating.discard(request.key)

    async def close(self) -> None:
        """Stops background refreshes and computations nobody waits for any more (at shutdown,
        after the server stopped taking rpcs), before the engines and Redis they use close."""
        self._closed = True
        pending = [*self._background, *self._inflight.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # --- tiers --------------------------------------------------------------------------------

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_retry_at

    def _redis_failed(self, exc: BaseException) -> None:
        stats.redis_errors += 1
        if self._redis_usable():
            log.warning(
                "widget data: Redis unavailable, using PostgreSQL only for %.0f s: %r", REDIS_RETRY_SECONDS, exc
            )
        self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS

    def _decode(self, raw: Any) -> Entry | None:
        if raw is None:
            return None
        try:
            return decode(bytes(raw))
        except EnvelopeError:
            log.warning("widget data: ignoring an unreadable tier-1 entry")
            return None

    async def _tier1_get(self, key: str) -> Entry | None:
        if not self._redis_usable():
            return None
        try:
            raw = await self._redis.get(data_key(self._prefix, key))
        except _REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return None
        return self._decode(raw)

    async def _tier1_put(self, key: str, entry: Entry) -> None:
        if not self._redis_usable():
            return
        try:
            await self._redis.set(
                data_key(self._prefix, key), encode(entry), px=tier1_ttl_ms(entry, self._clock(), self._max_stale)
            )
        except _REDIS_ERRORS as exc:
            self._redis_failed(exc)

    @staticmethod
    async def _tier2_get(conn: AsyncConnection, key: str) -> Entry | None:
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
    async def _tier2_put(
        conn: AsyncConnection, request: CacheRequest, entry: Entry, rows: int, *, savepoint: bool
    ) -> bool:
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
        statement = _UPSERT
        if request.widget_id:
            statement, params["widget_ref"] = _UPSERT_FOR_WIDGET, uuid.UUID(request.widget_id)
        try:
            if savepoint:
                async with conn.begin_nested():
                    await conn.execute(statement, params)
            else:
                await conn.execute(statement, params)
        except IntegrityError:
            return False
        return True

    async def _tier2_write(self, request: CacheRequest, entry: Entry, rows: int) -> None:
        """Tier 2 in a transaction of its own; a failure is logged, not raised: the caller still
        gets its data, and the next miss recomputes."""
        try:
            async with self._db.transaction() as conn:
                written = await self._tier2_put(conn, request, entry, rows, savepoint=False)
            if not written and request.widget_id:
                async with self._db.transaction() as conn:
                    written = await self._tier2_put(
                        conn, replace(request, widget_id=None), entry, rows, savepoint=False
                    )
            if not written:
                log.info("widget data: not cached in tier 2, its query was deleted meanwhile")
        except DBAPIError:
            log.warning("widget data: tier-2 write failed", exc_info=True)


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
