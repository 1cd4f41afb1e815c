"""A cached widget-data entry, its tier-1 envelope and its freshness (pure: no I/O).

Envelope (the Redis value): a 26-byte header, then the serialized DataFrame exactly as tier 2
stores it and the executor produced it:

    >B  format (1)     >q  computed_at (µs since the epoch)    >q  expires_at (µs)
    >q  query version  >B  masked (0/1)                        ... DataFrame bytes

Freshness is decided per request, not only by the stored expiry: an entry is fresh until the
earliest of its stored `expires_at` (what the writer chose; an operator or a test may move it),
`computed_at` + the reading widget's TTL (two widgets with different refresh intervals may share
an entry), and `computed_at` + the request's `max_age`. After that it may be served STALE for at
most `max_stale` seconds, unless the request gave a `max_age` the entry is older than: a caller's
bound is never relaxed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

__all__ = ["Entry", "EnvelopeError", "Freshness", "classify", "decode", "effective_expiry", "encode", "tier1_ttl_ms"]

_FORMAT = 1
_HEADER = struct.Struct(">BqqqB")


class EnvelopeError(ValueError):
    """Bytes that are not an envelope this code wrote (another format, truncated)."""


@dataclass(frozen=True)
class Entry:
    frame: bytes  # serialized dashboard.v1.DataFrame
    computed_at: float  # seconds since the epoch
    expires_at: float
    query_version: int
    masked: bool


class Freshness(Enum):
    FRESH = "fresh"
    STALE = "stale"  # servable while a refresh runs
    UNUSABLE = "unusable"  # a miss


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def encode(entry: Entry) -> bytes:
    header = _HEADER.pack(
        _FORMAT, _us(entry.computed_at), _us(entry.expires_at), entry.query_version, 1 if entry.masked else 0
    )
    return header + entry.frame


def decode(data: bytes) -> Entry:
    if len(data) < _HEADER.size:
        raise EnvelopeError("too short for an envelope")
    fmt, computed, expires, version, masked = _HEADER.unpack_from(data)
    if fmt != _FORMAT or masked not in (0, 1):
        raise EnvelopeError(f"unknown envelope format {fmt}")
    return Entry(
        frame=bytes(data[_HEADER.size :]),
        computed_at=computed / 1_000_000,
        expires_at=expires / 1_000_000,
        query_version=version,
        masked=bool(masked),
    )


def effective_expiry(entry: Entry, *, ttl: float, max_age: float = 0.0) -> float:
    expiry = min(entry.expires_at, entry.computed_at + ttl)
    if max_age > 0:
        expiry = min(expiry, entry.computed_at + max_age)
    return expiry


def classify(entry: Entry, now: float, *, ttl: float, max_age: float = 0.0, max_stale: float) -> Freshness:
    expiry = effective_expiry(entry, ttl=ttl, max_age=max_age)
    if now < expiry:
        return Freshness.FRESH
    if max_age > 0 and now - entry.computed_at > max_age:
        return Freshness.UNUSABLE
    if now - expiry <= max_stale:
        return Freshness.STALE
    return Freshness.UNUSABLE


def tier1_ttl_ms(entry: Entry, now: float, max_stale: float) -> int:
    """Redis keeps an entry as long as it can still be served (fresh or stale), and no longer."""
    return max(1, round((entry.expires_at - now + max_stale) * 1000))
