"""Answers kept in this process while nothing they were made from has changed: ListDashboards
pages and GetDashboard's dashboards, so that one asked again costs a lookup, not statements.

What was made from the database is kept under an epoch of the changes it depends on (`Changes`:
server/widgetdata/definitions.py follows PostgreSQL's notifications, migrations 0016 and 0017)
and served only while that epoch is unchanged:

* `dashboards_epoch` moves with every change to a dashboard or its shares (list pages);
* `boards_epoch` moves with those and every change to a widget (dashboards with their widgets).

* Nothing is kept or served while the notifications are not heard (not yet, lost or late).
* Every commit made through this process, anyone's, is seen by the next read here: a read after
  one waits until it has been heard (`caught_up`), as does a caller carrying an LSN past what
  was heard. A change made through another process is seen within its notification's delay.
* Only without a read replica: what is kept must be read on the primary whose notifications
  it follows (a lagging replica's answer, kept under an epoch that already counts the change it
  lacks, would stay stale until the next one), and a deployment with a replica has it to spare
  the primary those reads.
* The access decision is never kept: a list page is kept for the one caller it was made for
  (every field of the principal is in its key); a kept dashboard keeps its row (with `grants`),
  which the policy decides on for every caller on every read.
* A write through the API reports its WAL position (`x-tessera-lsn`; `Database.marks_writes`):
  a caller that sends it back (the Python client does by itself) reads its own write on any
  process at once.
"""

from __future__ import annotations

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
    "page_key",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Besides their bytes (TESSERA_KEPT_ANSWERS_MAX_BYTES), at most this many of each: a page of 50
# is about 9 KB, a dashboard of 50 widgets about 8 KB.
MAX_PAGES = 4096
MAX_BOARDS = 4096

PageKey = tuple[Principal, ListShape, tuple[tuple[str, Any], ...]]


class Changes(Protocol):
    """What kept answers follow (server/widgetdata/definitions.py's Definitions)."""

    @property
    def listening(self) -> bool: ...

    @property
    def dashboards_epoch(self) -> int: ...

    @property
    def boards_epoch(self) -> int: ...

    async def caught_up(self, *, every_commit: bool = False) -> bool: ...


def page_key(principal: Principal, shape: ListShape, values: dict[str, Any]) -> PageKey:
    """The key of a list's page: the caller, the statement and its parameters (lists as tuples)."""
    return principal, shape, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items())


@dataclass(frozen=True)
class KeptBoard:
    """A dashboard as GetDashboard reads it: its row (with `grants`, what the policy decides on)
    and, serialized, the current dashboard with its widgets."""

    row: Any
    payload: bytes


@dataclass(frozen=True)
class _Entry(Generic[V]):
    epoch: int
    value: V


class Kept(Generic[K, V]):
    """At most `size` values and `max_bytes` of their weight, kept under `epoch_of(changes)`."""

    def __init__(
        self,
        changes: Changes,
        epoch_of: Callable[[Changes], int],
        *,
        size: int,
        max_bytes: int,
        weigh: Callable[[V], int],
    ) -> None:
        self._changes = changes
        self._epoch_of = epoch_of
        self._kept: Memo[K, _Entry[V]] = Memo(size, weigh=lambda entry: weigh(entry.value), max_weight=max_bytes)
        self._epoch = epoch_of(changes)  # of what is kept; older entries are dropped at once

    def usable(self) -> bool:
        """Whether anything may be kept or served now (else: read as if nothing were kept)."""
        self._drop_stale()  # a lost connection has bumped the epoch: what was kept goes now
        return self._changes.listening

    def epoch(self) -> int:
        """Read before a value is made: a change heard while it is made keeps it from being kept."""
        return self._epoch_of(self._changes)

    async def get(self, key: K) -> V | None:
        """The value kept under `key`, when it is current for this caller."""
        if not self.usable():
            return None
        entry = self._kept.get(key)
        if entry is None:
            return None
        if not await self._changes.caught_up(every_commit=True):
            return None
        return entry.value if entry.epoch == self.epoch() else None

    def keep(self, key: K, epoch: int, value: V) -> None:
        """Keeps a value made (from the primary) after `epoch` was read, if nothing changed since."""
        if self.usable() and self._epoch == epoch:
            self._kept.put(key, _Entry(epoch, value))

    def __len__(self) -> int:
        return len(self._kept)

    def _drop_stale(self) -> None:
        epoch = self.epoch()
        if epoch != self._epoch:
            self._kept.clear()
            self._epoch = epoch
