"""The widget-data cache key (every ingredient matters, nothing else does), the masking level,
the tier-1 envelope and the freshness rules."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from redis.crc import key_slot

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import query_pb2 as q
from server.queries.masking import MASKING_LEVEL_MASKED, MASKING_LEVEL_NONE
from server.queries.parameters import bind, canonical
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
from server.widgetdata.key import (
    KeyParts,
    advisory_lock_id,
    cache_key,
    data_key,
    error_key,
    generation_key,
    lock_key,
    masking_level,
)

BASE = KeyParts(
    query_id="0b7c4a4e-9d59-4a8e-9a47-8c3f6f2b1d10",
    query_version=3,
    refresh_time=None,
    parameters=canonical({"unit": "Cardiology", "days": 7}),
    facility_id="north-general",
    masking_level=MASKING_LEVEL_NONE,
    generation=0,
)


def test_key_is_stable_hex() -> None:
    key = cache_key(BASE)
    assert key == cache_key(dataclasses.replace(BASE))
    assert len(key) == 64 and int(key, 16) >= 0
    # The query id is a UUID: its spelling does not make another key.
    assert cache_key(dataclasses.replace(BASE, query_id=BASE.query_id.upper())) == key


@pytest.mark.parametrize(
    "change",
    [
        {"query_id": "1b7c4a4e-9d59-4a8e-9a47-8c3f6f2b1d10"},
        {"query_version": 4},
        {"refresh_time": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)},
        {"parameters": canonical({"unit": "Oncology", "days": 7})},
        {"facility_id": "south-clinic"},
        {"masking_level": MASKING_LEVEL_MASKED},
        {"generation": 1},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_ingredient_changes_the_key(change: dict[str, object]) -> None:
    assert cache_key(dataclasses.replace(BASE, **change)) != cache_key(BASE)  # type: ignore[arg-type]


def test_refresh_time_to_the_microsecond_and_time_zone_independent() -> None:
    at = dt.datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    key = cache_key(dataclasses.replace(BASE, refresh_time=at))
    same_instant = at.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert cache_key(dataclasses.replace(BASE, refresh_time=same_instant)) == key
    later = at + dt.timedelta(microseconds=1)
    assert cache_key(dataclasses.replace(BASE, refresh_time=later)) != key


def test_parts_cannot_shift_into_each_other() -> None:
    # Without delimiting, ("a|b", "c") and ("a", "b|c") could hash the same text.
    one = dataclasses.replace(BASE, parameters='x","y', facility_id="z")
    two = dataclasses.replace(BASE, parameters="x", facility_id='y","z')
    assert cache_key(one) != cache_key(two)


def test_equal_bound_values_share_a_key_whatever_their_order_or_origin() -> None:
    specs = [
        q.ParameterSpec(name="unit", type=q.PARAMETER_TYPE_STRING),
        q.ParameterSpec(name="days", type=q.PARAMETER_TYPE_INT, default_value=c.ParameterValue(int_value=7)),
    ]
    explicit = bind(specs, {"days": c.ParameterValue(int_value=7), "unit": c.ParameterValue(string_value="A")})
    defaulted = bind(specs, {"unit": c.ParameterValue(string_value="A")})
    key_one = cache_key(dataclasses.replace(BASE, parameters=canonical(explicit)))
    key_two = cache_key(dataclasses.replace(BASE, parameters=canonical(defaulted)))
    assert key_one == key_two
    # ... and values of different types never do.
    as_float = dataclasses.replace(BASE, parameters=canonical({"days": 7.0, "unit": "A"}))
    assert cache_key(as_float) != key_one


def test_masking_level() -> None:
    assert masking_level(can_read_phi=True, has_sensitive_columns=True) == MASKING_LEVEL_NONE
    assert masking_level(can_read_phi=False, has_sensitive_columns=True) == MASKING_LEVEL_MASKED
    # Nothing to mask: everyone gets the same frame, so everyone shares the entry.
    assert masking_level(can_read_phi=False, has_sensitive_columns=False) == MASKING_LEVEL_NONE


def test_redis_names_and_advisory_lock_id() -> None:
    # Every key of one query carries its hash tag: one Redis Cluster slot for MGET and scripts.
    assert generation_key("t:", "ABC") == "t:wd:{abc}:gen"
    assert data_key("t:", "ABC", "k") == "t:wd:{abc}:k"
    assert lock_key("t:", "abc", "k") == "t:wd:{abc}:lock:k"
    assert error_key("t:", "abc", "k") == "t:wd:{abc}:err:k"
    slots = {key_slot(name.encode()) for name in ("t:wd:{abc}:gen", "u:wd:{abc}:k", "t:wd:{abc}:lock:k")}
    assert len(slots) == 1
    assert advisory_lock_id("f" * 64) == -1
    assert advisory_lock_id("7" + "f" * 63) == (1 << 63) - 1
    assert advisory_lock_id("0" * 64) == 0


# --- envelope and freshness ------------------------------------------------------------------

ENTRY = Entry(
    frame=c.DataFrame(
        row_count=1, columns=[c.Column(name="n", int64_values=c.Int64Values(values=[5]))]
    ).SerializeToString(),
    computed_at=1_700_000_000.123456,
    expires_at=1_700_000_300.123456,
    query_version=4,
    masked=True,
)


def test_envelope_round_trips_and_refuses_garbage() -> None:
    assert decode(encode(ENTRY)) == ENTRY
    empty = dataclasses.replace(ENTRY, frame=b"", masked=False)
    assert decode(encode(empty)) == empty
    with pytest.raises(EnvelopeError):
        decode(b"\x01short")
    with pytest.raises(EnvelopeError):
        decode(b"\x02" + encode(ENTRY)[1:])


def test_freshness() -> None:
    t0 = ENTRY.computed_at
    rules = {"ttl": 300.0, "max_stale": 3600.0}
    assert classify(ENTRY, t0 + 10, **rules) is Freshness.FRESH
    assert classify(ENTRY, t0 + 301, **rules) is Freshness.STALE
    assert classify(ENTRY, t0 + 300 + 3600 + 1, **rules) is Freshness.UNUSABLE
    # A reading widget with a shorter interval sees the entry expire sooner.
    assert classify(ENTRY, t0 + 20, ttl=10.0, max_stale=3600.0) is Freshness.STALE
    # The stored expiry wins when it is earlier (moved by an operator).
    moved = dataclasses.replace(ENTRY, expires_at=t0 + 5)
    assert classify(moved, t0 + 6, **rules) is Freshness.STALE
    assert effective_expiry(moved, ttl=300.0) == t0 + 5
    # max_age tightens freshness, and an entry older than it is never served, not even stale.
    assert classify(ENTRY, t0 + 10, max_age=5.0, **rules) is Freshness.UNUSABLE
    assert classify(ENTRY, t0 + 4, max_age=5.0, **rules) is Freshness.FRESH
    assert effective_expiry(ENTRY, ttl=300.0, max_age=5.0) == t0 + 5


def test_tier1_ttl_covers_the_stale_window() -> None:
    now = ENTRY.computed_at
    assert tier1_ttl_ms(ENTRY, now, 3600.0) == (300 + 3600) * 1000
    assert tier1_ttl_ms(ENTRY, now + 10_000, 3600.0) == 1
