"""What the widget-data cache is asked (`CacheRequest`), what it answers (`Served`), and what
computes a missing entry (`Compute`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dashboard.v1 import common_pb2
from server.widgetdata.entry import Entry

__all__ = ["CacheRequest", "Compute", "Served"]

# Produces the frame for a key and whether PHI was masked in it.
Compute = Callable[[], Awaitable[tuple[common_pb2.DataFrame, bool]]]


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
    request: CacheRequest | None = None  # what it was found or computed for (its generation's key)
