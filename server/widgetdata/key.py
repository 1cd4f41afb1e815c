"""The widget-data cache key (pure: no I/O).

A key is the sha256 of everything that decides what a cached frame holds:

    query id, query version     a new version (UpdateQuery of the SQL, parameters, options or
                                sensitive columns) makes new keys: nothing to invalidate
    view refresh time           a MATERIALIZED_VIEW refresh changes `widget_queries.refresh_time`,
                                so its keys change too (None for plain SQL queries)
    canonical bound parameters  `parameters.canonical(bind(...))`: the values after defaults,
                                widget binding, dashboard filters, cross-filters and the request
                                were merged and validated, so two requests that bind the same
                                values share an entry whatever their shape
    facility scope              the facility the query runs in (RLS and `:facility_id`)
    masking level               `masking_level()`: masked and unmasked frames never share a key
    generation                  a per-query counter in Redis (`generation_key`), bumped by
                                `invalidate()` for what the database cannot see (a data load
                                behind a view, an operator's flush); 0 while Redis is down

The widget and the dashboard version are deliberately not in the key: they only select which
query and which parameter values apply, and those are in it. Widget configuration changes and
publishing therefore need no invalidation: they change the ingredients, hence the key.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from server.queries.masking import MASKING_LEVEL_MASKED, MASKING_LEVEL_NONE

__all__ = [
    "KEY_SCHEMA",
    "KeyParts",
    "advisory_lock_id",
    "cache_key",
    "data_key",
    "error_key",
    "generation_key",
    "lock_key",
    "masking_level",
    "slot_tag",
]

# Changing what goes into a key (or how) must change this, so old entries can never match.
KEY_SCHEMA = "tessera.widgetdata.v1"


@dataclass(frozen=True)
class KeyParts:
    query_id: str
    query_version: int
    refresh_time: datetime | None
    parameters: str  # server.queries.parameters.canonical() of the bound values
    facility_id: str
    masking_level: int
    generation: int


def _micros(value: datetime | None) -> int | None:
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@functools.lru_cache(maxsize=65_536)  # hot reads ask for the same keys over and over
def cache_key(parts: KeyParts) -> str:
    """64 hex digits. JSON of a fixed-order list: every part is delimited and typed, so no two
    different part tuples can produce the same text (a facility named like a parameter text
    cannot shift into its neighbour)."""
    text = json.dumps(
        [
            KEY_SCHEMA,
            parts.query_id.lower(),
            int(parts.query_version),
            _micros(parts.refresh_time),
            parts.parameters,
            parts.facility_id,
            int(parts.masking_level),
            int(parts.generation),
        ],
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def masking_level(can_read_phi: bool, has_sensitive_columns: bool) -> int:
    """MASKED exactly when the executor masks (the query declares PHI columns and the caller may
    not read PHI), NONE otherwise: a query without PHI columns gives everyone the same frame, so
    callers with and without the permission share its entries."""
    return MASKING_LEVEL_MASKED if has_sensitive_columns and not can_read_phi else MASKING_LEVEL_NONE


def slot_tag(query_id: str) -> str:
    """The Redis Cluster hash tag of a query: every key of one query (its generation, its
    entries, their locks and failure notes) hashes to one slot, so the MGETs and Lua scripts
    that read several of them work on a cluster (and on one Redis alike)."""
    return "{" + query_id.lower() + "}"


def data_key(prefix: str, query_id: str, key: str) -> str:
    """Tier 1: the entry's envelope."""
    return f"{prefix}wd:{slot_tag(query_id)}:{key}"


def lock_key(prefix: str, query_id: str, key: str) -> str:
    """The single-flight lock (value: the holder's random token)."""
    return f"{prefix}wd:{slot_tag(query_id)}:lock:{key}"


def error_key(prefix: str, query_id: str, key: str) -> str:
    """A short-lived note of the holder's failure, so its waiters fail with it instead of
    re-running a query that just failed, one after the other."""
    return f"{prefix}wd:{slot_tag(query_id)}:err:{key}"


def generation_key(prefix: str, query_id: str) -> str:
    return f"{prefix}wd:{slot_tag(query_id)}:gen"


def advisory_lock_id(key: str) -> int:
    """The key as a signed 64-bit id for pg_advisory_xact_lock (the Redis-less single-flight)."""
    value = int(key[:16], 16)
    return value - (1 << 64) if value >= (1 << 63) else value
