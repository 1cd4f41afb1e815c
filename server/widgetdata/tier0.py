"""Tier 0 of the widget-data cache: this process's byte-bounded LRU of serialized WidgetData
responses, so a hot hit needs no network round trip (pure: no I/O).

A slot is keyed by the full cache key (query, version, view refresh time, bound parameters,
facility, masking level and generation: `key.py`) plus what else shapes the response bytes (the
widget id, the reading widget's TTL and the request's max_age). It holds exactly what tier 1 or
tier 2 answered as FRESH, with the moment it stops being fresh for that request: it is never
served at or past it (stale reads go the long way, which revalidates).

Access is not cached here: the caller's identity, role, shares and facility are decided on every
read before the key is even known (`service.py`), and the audit facts are kept with the bytes.

Cross-process correctness rests on `invalidations.py`: a tier 0 serves only while its process is
subscribed to the invalidation channel (`enable`, from the moment of subscription, emptied then);
`disable` (the subscription is lost) empties it and stops it serving until subscribed again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SLOT_OVERHEAD_BYTES", "Tier0", "Tier0Hit", "Tier0Key"]

# What a slot costs beyond its payload (the key strings, the dataclass, the dict slots): counted
# so that many tiny entries cannot exceed the bound either.
SLOT_OVERHEAD_BYTES = 400

# (cache key, widget id, ttl, max_age)
Tier0Key = tuple[str, str, float, float]


@dataclass(frozen=True, slots=True)
class Tier0Hit:
    payload: bytes  # the serialized WidgetData, source MEMORY
    query_id: str
    expire_at: float  # seconds since the epoch: fresh strictly before
    row_count: int
    query_version: int
    masked: bool
    phi_columns: tuple[str, ...]  # what the audit records as shown unmasked
    columns: tuple[str, ...]  # the frame's column names


class Tier0:
    def __init__(self, max_bytes: int, clock: Callable[[], float]) -> None:
        self._max_bytes = max_bytes
        self._clock = clock
        self._slots: OrderedDict[Tier0Key, Tier0Hit] = OrderedDict()
        self._by_query: dict[str, set[Tier0Key]] = {}
        self._bytes = 0
        self._serving = False
        self.hits = 0
        self.misses = 0

    # --- whether it may serve ---------------------------------------------------------------

    @property
    def serving(self) -> bool:
        return self._serving

    def enable(self) -> None:
        """Subscribed (again): what was kept may have missed invalidations, so start empty."""
        self.clear()
        self._serving = True

    def disable(self) -> None:
        self._serving = False
        self.clear()

    def pause(self) -> None:
        """Invalidations may be late: serve nothing, keep what is held (they still apply)."""
        self._serving = False

    def resume(self) -> None:
        """Every invalidation published until a moment ago has been heard: serve again."""
        self._serving = True

    # --- read and write -----------------------------------------------------------------------

    def get(self, key: Tier0Key) -> Tier0Hit | None:
        if not self._serving:
            return None
        hit = self._slots.get(key)
        if hit is None:
            self.misses += 1
            return None
        if self._clock() >= hit.expire_at:
            self._drop(key)
            self.misses += 1
            return None
        self._slots.move_to_end(key)
        self.hits += 1
        return hit

    def put(self, key: Tier0Key, hit: Tier0Hit) -> None:
        if not self._serving:
            return
        size = len(hit.payload) + SLOT_OVERHEAD_BYTES
        if size > self._max_bytes or self._clock() >= hit.expire_at:
            return
        if key in self._slots:
            self._drop(key)
        self._slots[key] = hit
        self._by_query.setdefault(hit.query_id, set()).add(key)
        self._bytes += size
        while self._bytes > self._max_bytes:
            oldest = next(iter(self._slots))
            self._drop(oldest)

    # --- invalidation -------------------------------------------------------------------------

    def invalidate_query(self, query_id: str) -> None:
        for key in list(self._by_query.get(query_id.lower(), ())):
            self._drop(key)

    def invalidate_key(self, query_id: str, cache_key: str) -> None:
        for key in [k for k in self._by_query.get(query_id.lower(), ()) if k[0] == cache_key]:
            self._drop(key)

    def clear(self) -> None:
        self._slots.clear()
        self._by_query.clear()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._slots)

    def _drop(self, key: Tier0Key) -> None:
        hit = self._slots.pop(key, None)
        if hit is None:
            return
        self._bytes -= len(hit.payload) + SLOT_OVERHEAD_BYTES
        keys = self._by_query.get(hit.query_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_query[hit.query_id]
