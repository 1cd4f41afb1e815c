"""The two-tier widget-data cache with single-flight and stale-while-revalidate: what a read
does, composed of its parts.

* tier 1, Redis (`tier1.py`), then tier 2, PostgreSQL (`tier2.py`): a tier-2 hit refills tier 1;
  Redis being down is never an error for the caller (tier 2 and advisory locks carry on);
* a miss computes under single-flight (`flight.py`): once per key across all processes, a Redis
  lease lock, or a PostgreSQL advisory lock while Redis is down;
* stale-while-revalidate: an entry past its expiry but younger than expiry + max staleness is
  served as STALE and one background refresh per key and process starts (itself single-flight,
  so across processes one execution). `force_refresh` skips the lookup but not the single-flight;
* invalidation: a generation per query in Redis, part of every key (`key.py`), bumped by
  `invalidate`, which also deletes the query's tier-2 rows;
* tier 0 (`tier0.py`), in front of all of it: this process's copies of serialized responses,
  looked up under the generation this process last read (no round trip), kept current by the
  invalidation channel (`invalidations.py`): `invalidate` and every recomputation publish, and
  while this process is not subscribed tier 0 neither serves nor keeps anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from dashboard.v1 import widget_pb2
from server.config import Settings
from server.db.engine import Database
from server.metrics import Metrics
from server.redis_client import RedisClient
from server.widgetdata.counters import stats
from server.widgetdata.entry import Entry, Freshness, classify, effective_expiry
from server.widgetdata.flight import SingleFlight
from server.widgetdata.invalidations import channel_name, key_message, query_message
from server.widgetdata.key import data_key, generation_key
from server.widgetdata.request import CacheRequest, Compute, Served
from server.widgetdata.tier0 import Tier0, Tier0Hit, Tier0Key
from server.widgetdata.tier1 import REDIS_ERRORS, RedisTier, generation_of
from server.widgetdata.tier2 import DatabaseTier

__all__ = ["WidgetDataCache"]

log = logging.getLogger("tessera.widgetdata")

MEMORY = widget_pb2.DATA_SOURCE_MEMORY
DATABASE = widget_pb2.DATA_SOURCE_DATABASE
COMPUTED = widget_pb2.DATA_SOURCE_COMPUTED
STALE = widget_pb2.DATA_SOURCE_STALE
_SOURCE_NAMES: dict[int, str] = {MEMORY: "memory", DATABASE: "database", COMPUTED: "computed", STALE: "stale"}
# How long shutdown waits for the tier-2 writes still running behind their responses.
WRITES_DRAIN_SECONDS = 5.0
# Generations remembered per process (one int per query), as the guess read() starts from.
_GENERATIONS_KEPT = 10_000


@dataclass(frozen=True)
class _Tier1:
    """What tier 1 answered for a key (None: nothing)."""

    raw: Any


class WidgetDataCache:
    def __init__(
        self,
        db: Database,
        redis: RedisClient,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        write_behind: bool = False,
    ) -> None:
        """`write_behind`: a computation's caller gets its answer once tier 1 has it, before tier 2
        (the server's callers; a worker's job waits for both, so it ends with its work stored)."""
        self._metrics = metrics or Metrics()
        self._max_stale = float(settings.cache_max_stale_seconds)
        self._clock = clock
        self._tier1 = RedisTier(redis, settings.redis_prefix, self._max_stale, clock)
        self._tier2 = DatabaseTier(db)
        self._db = db
        lease = float(settings.cache_lock_lease_seconds)
        self._flight = SingleFlight(
            db,
            self._tier1,
            self._tier2,
            lease_seconds=lease,
            # A holder renews while it computes, and a query stops at its timeout: a waiter that
            # got nothing by then is facing a bug, not a slow query.
            wait_limit_seconds=settings.query_timeout_cap_seconds + 2 * lease + 5,
            classify=self._classify,
            announcement=self._announcement,
            clock=clock,
            write_behind=write_behind,
        )
        self._revalidating: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._generations: dict[str, int] = {}  # query id -> the generation last read
        # Bumped whenever guesses are dropped: a generation read across a drop is not learnt.
        self._drops = 0
        self.tier0 = Tier0(settings.cache_tier0_max_bytes, clock)
        self.channel = channel_name(settings.redis_prefix)
        # Bumped by every invalidation heard: a response read before it is not kept in tier 0.
        self.epoch = 0
        self._served_memory = self._metrics.widget_data_served.labels("memory")
        self._hits_memory = self._metrics.cache_hits.labels("memory")

    # --- tier 0 -------------------------------------------------------------------------------

    def memory_hit(
        self, query_id: str, request_for: Callable[[int], CacheRequest], widget_id: str
    ) -> tuple[CacheRequest, Tier0Hit] | None:
        """Tier 0's copy for `request_for(the generation this process last read)`; None when it
        has none, is not serving, or this process does not know the query's generation."""
        if not self.tier0.serving or not self._tier1.usable():
            return None
        generation = self._generations.get(query_id)
        if generation is None:
            return None
        request = request_for(generation)
        if request.force_refresh:
            return None
        hit = self.tier0.get((request.key, widget_id, request.ttl, request.max_age))
        if hit is None:
            return None
        stats.memory_hits += 1
        self._hits_memory.inc()
        self._served_memory.inc()
        return request, hit

    def remember(self, epoch: int, key: Tier0Key, hit: Tier0Hit) -> None:
        """Keeps a response in tier 0, unless an invalidation was heard since `epoch` (read
        before the response's lookup began): it may be older than the invalidation."""
        if epoch == self.epoch and self._tier1.usable():
            self.tier0.put(key, hit)

    def on_subscribed(self) -> None:
        self.epoch += 1
        self._forget_generations()  # guesses from before may have missed a bump
        self.tier0.enable()

    def on_lost(self) -> None:
        self.epoch += 1
        self.tier0.disable()

    def on_paused(self) -> None:
        self.epoch += 1  # nothing looked up before is put while paused or after
        self.tier0.pause()

    def on_resumed(self) -> None:
        self.tier0.resume()

    def on_invalidation(self, message: str) -> None:
        self.epoch += 1
        kind, _, rest = message.partition(":")
        if kind == "k":
            query_id, _, key = rest.partition(":")
            self.tier0.invalidate_key(query_id, key)
            return
        # "q", or anything this code does not know: the whole query (or everything)
        if kind == "q" and rest:
            self._drops += 1
            self._generations.pop(rest, None)
            self.tier0.invalidate_query(rest)
            return
        self._forget_generations()
        self.tier0.clear()

    async def _publish(self, message: str) -> None:
        await self._tier1.publish(self.channel, message)

    # --- generations --------------------------------------------------------------------------

    def _forget_generations(self) -> None:
        self._drops += 1
        self._generations.clear()

    def _learn(self, query_id: str, generation: int, drops: int) -> None:
        """Keeps `generation`, read after `drops` was current, as the query's guess, unless
        guesses were dropped meanwhile: the news of a bump that arrived before the reply would
        otherwise be undone by a generation read before the bump."""
        if drops != self._drops or self._generations.get(query_id) == generation:
            return
        if len(self._generations) >= _GENERATIONS_KEPT:
            self._generations.clear()  # only a guess: forgetting costs one round trip per query
        # Known from here on (tier 0 looks up under it), until an invalidation is heard.
        self._generations[query_id] = generation

    async def generation(self, query_id: str) -> int:
        """The query's invalidation generation; 0 while Redis is unavailable (keys then rest on
        the database-derived parts: query version and view refresh time)."""
        return await self._tier1.generation(query_id)

    async def invalidate(self, query_id: str) -> None:
        """Makes every cached entry of the query unreachable: bumps its generation (tier 1 and 2
        keys change) and deletes its tier-2 rows, so that an invalidation while Redis is down
        (or a Redis restarted without its counters) still reaches tier 2. Tier-1 entries of a
        Redis that missed the bump age out within their TTL."""
        await self._tier1.bump_generation(query_id)
        await self._publish(query_message(query_id))
        await self._tier2.delete_query(query_id)

    # --- read -----------------------------------------------------------------------------------

    async def read(self, query_id: str, request_for: Callable[[int], CacheRequest], compute: Compute) -> Served:
        """get() for `request_for(the query's current generation)`. The generation and the tier-1
        entry come in one round trip (one MGET, so both from the same moment) when the generation
        is the one this process last saw for the query, as it is until an invalidation; otherwise
        the entry is read again under the key of the generation just read. A forced refresh reads
        the generation only when this process does not know it."""
        known = self._generations.get(query_id)
        guess = known or 0
        request = request_for(guess)
        if request.force_refresh and known is not None and self.tier0.serving and self._tier1.usable():
            # The invalidation channel drops a guess with every bump it carries (and all of them
            # when it was lost), so while it is heard a known guess is the generation: a forced
            # refresh, which reads no entry, then needs no round trip before its lock.
            return await self.get(request, compute)
        drops = self._drops
        if request.force_refresh or not self._tier1.usable():
            generation = await self.generation(query_id)
            if self._tier1.usable():  # read, not assumed (0 while Redis is down)
                self._learn(query_id, generation, drops)
            return await self.get(request if generation == guess else request_for(generation), compute)
        prefix = self._tier1.prefix
        try:
            raw_generation, raw_entry = await self._tier1.redis.mget(
                generation_key(prefix, query_id), data_key(prefix, query_id, request.key)
            )
        except REDIS_ERRORS as exc:
            self._tier1.failed(exc)
            return await self.get(request_for(0), compute)  # as generation() answers while Redis is down
        generation = generation_of(raw_generation)
        self._learn(query_id, generation, drops)
        if generation != guess:
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
                    return Served(entry, source, expire_at, request)
                stats.stale_served += 1
                self._metrics.cache_hits.labels("stale").inc()
                self._served(STALE)
                self._revalidate(request, compute)
                return Served(entry, STALE, expire_at, request)
        entry, source = await self._flight.run(request, compute, started)
        self._served(source)
        return Served(entry, source, effective_expiry(entry, ttl=request.ttl, max_age=request.max_age), request)

    def _announcement(self, request: CacheRequest) -> tuple[str, str]:
        """What makes copies of the key's older entry in other processes' tier 0 go."""
        return self.channel, key_message(request.query_id, request.key)

    def _served(self, source: int) -> None:
        self._metrics.widget_data_served.labels(_SOURCE_NAMES.get(source, "unknown")).inc()

    def _classify(self, entry: Entry, request: CacheRequest, now: float) -> Freshness:
        return classify(entry, now, ttl=request.ttl, max_age=request.max_age, max_stale=self._max_stale)

    async def _lookup(
        self, request: CacheRequest, now: float, tier1: _Tier1 | None = None
    ) -> tuple[Entry, int, Freshness] | None:
        best: tuple[Entry, int, Freshness] | None = None
        entry = self._tier1.decode(tier1.raw) if tier1 is not None else await self._tier1.get(request)
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
            stored = await self._tier2.get(conn, request.key)
        if stored is not None:
            freshness = self._classify(stored, request, now)
            if freshness is Freshness.FRESH:
                stats.database_hits += 1
                self._metrics.cache_hits.labels("database").inc()
                await self._tier1.put(request, stored)
                return stored, DATABASE, freshness
            if best is None or stored.computed_at > best[0].computed_at:
                best = (stored, DATABASE, freshness)
        stats.database_misses += 1
        self._metrics.cache_misses.labels("database").inc()
        if best is not None and best[2] is Freshness.STALE:
            return best
        return None

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
            await self._flight.run(request, compute, self._clock())
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
        pending = [*self._background, *self._flight.pending()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        try:
            async with asyncio.timeout(WRITES_DRAIN_SECONDS):
                await self._flight.written()
        except TimeoutError:  # cancelled: a tier-2 row missing costs one recomputation
            log.warning("widget data: tier-2 writes still running at shutdown were given up")

    async def written(self) -> None:
        """Waits until every computed entry is in tier 2 too (tier-2 writes run behind the
        response in the server)."""
        await self._flight.written()
