"""Answers kept in this process while nothing they were made from has changed: ListDashboards
pages and GetDashboard's dashboards, so that one asked again costs a lookup, not statements.

What was made from the database is kept under a stamp of the changes it depends on (`Changes`:
server/widgetdata/definitions.py follows PostgreSQL's notifications, migrations 0016 to 0018)
and served only while that stamp is unchanged:

* a list page: the epochs of the caller's facilities, which move with every change to a
  dashboard of the facility or to its shares (a list shows only dashboards of the caller's
  facilities), so a change elsewhere leaves the page kept;
* a dashboard: its own epoch, which moves with every change to it, its shares or its widgets;
* both: the epoch of everything (`everything_epoch`), which moves when everything goes (the
  notifications lost or late, a TRUNCATE) and drops all that is kept.

* Nothing is kept or served while the notifications are not heard (not yet, lost or late).
* Every commit made through this process, anyone's, is seen by the next read here: a read after
  one waits until it has been heard (`caught_up`), as does a caller carrying an LSN past what
  was heard. A change made through another process is seen within its notification's delay.
* With a read replica, values are read where its routing sends stale reads and kept only when
  they hold every change heard: read on the primary, or on a replica that had replayed past the
  WAL position by which those changes had committed (`Changes.heard_position`). A lagging
  replica's answer, kept under an epoch that already counts the change it lacks, would stay
  stale until the next one: it is given, as stale reads may be, and not kept.
* The access decision is never kept: a list page is kept for the one caller it was made for
  (every field of the principal is in its key); a kept dashboard keeps its row (with `grants`),
  which the policy decides on for every caller on every read.
* A write through the API reports its WAL position (`x-tessera-lsn`; `Database.marks_writes`):
  a caller that sends it back (the Python client does by itself) reads its own write on any
  process at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from server.auth.principal import Principal
from server.dashboards.listing import ListShape
from server.memo import Memo

__all__ = [
    "MAX_BOARDS",
    "MAX_PAGES",
    "Changes",
    "Kept",
    "KeptBoard",
    "PageKey",
    "Stamp",
    "board_stamp",
    "page_key",
    "page_stamp",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Besides their bytes (TESSERA_KEPT_ANSWERS_MAX_BYTES), at most this many of each: a page of 50
# is about 9 KB, a dashboard of 50 widgets about 8 KB.
MAX_PAGES = 4096
MAX_BOARDS = 4096

PageKey = tuple[Principal, ListShape, tuple[tuple[str, Any], ...]]
Stamp = tuple[int, int]  # (the epoch of everything, the key's own)


class Changes(Protocol):
    """What kept answers follow (server/widgetdata/definitions.py's Definitions)."""

    @property
    def listening(self) -> bool: ...

    @property
    def everything_epoch(self) -> int: ...

    def facility_epoch(self, facility_id: str) -> int: ...

    def board_epoch(self, dashboard_id: str) -> int: ...

    async def caught_up(self, *, every_commit: bool = False) -> bool: ...

    async def heard_position(self) -> int | None: ...


def page_key(principal: Principal, shape: ListShape, values: dict[str, Any]) -> PageKey:
    """The key of a list's page: the caller, the statement and its parameters (lists as tuples)."""
    return principal, shape, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items())


def page_stamp(changes: Changes, key: PageKey) -> Stamp:
    """A page's: everything's epoch and its caller's facilities' (their sum: epochs only grow, and
    when they are reset everything's moves)."""
    return changes.everything_epoch, sum(changes.facility_epoch(facility) for facility in key[0].facilities)


def board_stamp(changes: Changes, key: uuid.UUID) -> Stamp:
    """A dashboard's: everything's epoch and its own."""
    return changes.everything_epoch, changes.board_epoch(str(key))


@dataclass(frozen=True)
class KeptBoard:
    """A dashboard as GetDashboard reads it: its row (with `grants`, what the policy decides on)
    and, serialized, the current dashboard with its widgets."""

    row: Any
    payload: bytes


@dataclass(frozen=True)
class _Entry(Generic[V]):
    stamp: Stamp
    value: V


class Kept(Generic[K, V]):
    """At most `size` values and `max_bytes` of their weight, each kept under `stamp_of(changes,
    its key)`."""

    def __init__(
        self,
        changes: Changes,
        stamp_of: Callable[[Changes, K], Stamp],
        *,
        size: int,
        max_bytes: int,
        weigh: Callable[[V], int],
    ) -> None:
        self._changes = changes
        self._stamp_of = stamp_of
        self._kept: Memo[K, _Entry[V]] = Memo(size, weigh=lambda entry: weigh(entry.value), max_weight=max_bytes)
        self._everything = changes.everything_epoch  # of what is kept: its move drops it all

    def usable(self) -> bool:
        """Whether anything may be kept or served now (else: read as if nothing were kept)."""
        self._drop_stale()  # a lost connection has moved everything's epoch: what was kept goes now
        return self._changes.listening

    def stamp(self, key: K) -> Stamp:
        """Read before a value is made: a change heard while it is made keeps it from being kept."""
        return self._stamp_of(self._changes, key)

    async def get(self, key: K) -> V | None:
        """The value kept under `key`, when it is current for this caller."""
        if not self.usable():
            return None
        entry = self._kept.get(key)
        if entry is None:
            return None
        if not await self._changes.caught_up(every_commit=True):
            return None
        return entry.value if entry.stamp == self.stamp(key) else None

    def keep(self, key: K, stamp: Stamp, value: V) -> None:
        """Keeps a value made (from the primary) after `stamp` was read, if nothing it depends on
        changed since."""
        if self.usable() and self.stamp(key) == stamp:
            self._kept.put(key, _Entry(stamp, value))

    def __len__(self) -> int:
        return len(self._kept)

    def _drop_stale(self) -> None:
        everything = self._changes.everything_epoch
        if everything != self._everything:
            self._kept.clear()
            self._everything = everything
