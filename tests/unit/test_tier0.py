"""Tier 0 (server/widgetdata/tier0.py): serves only while subscribed, never past an entry's
freshness, stays within its byte bound by evicting the least recently used, and drops by query
or by cache key."""

from __future__ import annotations

from server.widgetdata.tier0 import SLOT_OVERHEAD_BYTES, Tier0, Tier0Hit, Tier0Key

Q1 = "0b7c4a4e-9d59-4a8e-9a47-8c3f6f2b1d10"
Q2 = "5f0e7c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _hit(query_id: str = Q1, *, size: int = 100, expire_at: float = 1_060.0, payload: bytes | None = None) -> Tier0Hit:
    return Tier0Hit(
        payload=payload if payload is not None else b"x" * size,
        query_id=query_id,
        expire_at=expire_at,
        row_count=3,
        query_version=2,
        masked=False,
        phi_columns=(),
        columns=("a",),
    )


def _key(name: str, widget: str = "w1", ttl: float = 300.0, max_age: float = 0.0) -> Tier0Key:
    return (name, widget, ttl, max_age)


def _serving(max_bytes: int = 1_000_000) -> tuple[Tier0, Clock]:
    clock = Clock()
    tier = Tier0(max_bytes, clock)
    tier.enable()
    return tier, clock


def test_nothing_is_kept_or_served_until_enabled_and_after_disabled() -> None:
    clock = Clock()
    tier = Tier0(1_000_000, clock)
    tier.put(_key("k"), _hit())
    assert tier.get(_key("k")) is None and len(tier) == 0
    tier.enable()
    tier.put(_key("k"), _hit())
    assert tier.get(_key("k")) is not None
    tier.disable()
    assert tier.get(_key("k")) is None and len(tier) == 0 and tier.size_bytes == 0
    tier.enable()  # subscribed again: starts empty, whatever was missed meanwhile
    assert tier.get(_key("k")) is None


def test_enable_again_starts_empty() -> None:
    tier, _ = _serving()
    tier.put(_key("k"), _hit())
    tier.enable()
    assert tier.get(_key("k")) is None


def test_served_strictly_before_expiry_and_dropped_at_it() -> None:
    tier, clock = _serving()
    tier.put(_key("k"), _hit(expire_at=1_010.0))
    clock.now = 1_009.999
    found = tier.get(_key("k"))
    assert found is not None and found.payload == b"x" * 100
    clock.now = 1_010.0
    assert tier.get(_key("k")) is None
    assert len(tier) == 0 and tier.size_bytes == 0


def test_an_expired_entry_is_not_kept() -> None:
    tier, _ = _serving()
    tier.put(_key("k"), _hit(expire_at=999.0))
    assert len(tier) == 0


def test_every_part_of_the_slot_key_matters() -> None:
    tier, _ = _serving()
    tier.put(_key("k"), _hit(payload=b"one"))
    for other in (_key("k2"), _key("k", widget="w2"), _key("k", ttl=60.0), _key("k", max_age=5.0)):
        assert tier.get(other) is None
    found = tier.get(_key("k"))
    assert found is not None and found.payload == b"one"


def test_byte_bound_evicts_least_recently_used() -> None:
    slot = 100 + SLOT_OVERHEAD_BYTES
    tier, _ = _serving(max_bytes=3 * slot)
    for name in ("a", "b", "c"):
        tier.put(_key(name), _hit())
    assert tier.size_bytes == 3 * slot
    assert tier.get(_key("a")) is not None  # now the most recently used
    tier.put(_key("d"), _hit())
    assert tier.get(_key("b")) is None  # the least recently used went
    assert all(tier.get(_key(n)) is not None for n in ("a", "c", "d"))
    assert tier.size_bytes == 3 * slot


def test_an_entry_larger_than_the_bound_is_not_kept() -> None:
    tier, _ = _serving(max_bytes=1_000)
    tier.put(_key("big"), _hit(size=1_000))
    assert len(tier) == 0 and tier.size_bytes == 0


def test_replacing_a_slot_counts_its_bytes_once() -> None:
    tier, _ = _serving()
    tier.put(_key("k"), _hit(size=100))
    tier.put(_key("k"), _hit(size=300))
    assert len(tier) == 1 and tier.size_bytes == 300 + SLOT_OVERHEAD_BYTES


def test_invalidate_query_drops_only_that_query() -> None:
    tier, _ = _serving()
    tier.put(_key("k1"), _hit(Q1))
    tier.put(_key("k1", widget="w2"), _hit(Q1))
    tier.put(_key("k2"), _hit(Q2))
    tier.invalidate_query(Q1.upper())  # ids compare case-insensitively
    assert tier.get(_key("k1")) is None and tier.get(_key("k1", widget="w2")) is None
    assert tier.get(_key("k2")) is not None
    assert tier.size_bytes == 100 + SLOT_OVERHEAD_BYTES


def test_invalidate_key_drops_every_slot_of_that_cache_key() -> None:
    tier, _ = _serving()
    tier.put(_key("k1"), _hit(Q1))
    tier.put(_key("k1", widget="w2", ttl=60.0), _hit(Q1))
    tier.put(_key("k3"), _hit(Q1))
    tier.invalidate_key(Q1, "k1")
    assert tier.get(_key("k1")) is None and tier.get(_key("k1", widget="w2", ttl=60.0)) is None
    assert tier.get(_key("k3")) is not None


def test_paused_serves_nothing_and_resumed_serves_what_it_kept() -> None:
    tier, _ = _serving()
    tier.put(_key("kept"), _hit(Q1))
    tier.put(_key("dropped"), _hit(Q2))
    tier.pause()  # invalidations may be late
    assert tier.get(_key("kept")) is None and len(tier) == 2
    tier.put(_key("new"), _hit(Q1))  # nothing new is kept while paused
    tier.invalidate_query(Q2)  # a late invalidation still applies
    tier.resume()  # every invalidation until a moment ago heard
    assert tier.get(_key("kept")) is not None
    assert tier.get(_key("dropped")) is None and tier.get(_key("new")) is None
