"""Reads that may be slightly stale, sent to a streaming replica (`DATABASE_REPLICA_URL`), while
every caller still reads its own writes.

Read-your-writes holds two ways, both by WAL position (LSN):

* in the process: a write transaction of a known caller (the rpc's principal) records the
  primary's LSN after its commit; for `replica_read_your_writes_seconds` that caller's stale
  reads go to the replica only once it has replayed that LSN (checked on the replica's own
  connection, one statement), and to the primary otherwise;
* across processes: the LSN is sent back in the `x-tessera-lsn` trailing metadata of the rpc
  that wrote; a caller that sends it back on later rpcs (to any server process) is held to it the
  same way (the Python client does so by itself).

A replica that fails (refused, dropped, a recovery conflict) is skipped for
`REPLICA_RETRY_SECONDS`, and the read runs again on the primary: the caller sees no error. Reads
are counted by where they ran (`tessera_db_reads{target}`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import psycopg
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "LSN_METADATA",
    "REPLICA_RETRY_SECONDS",
    "ReplicaRouter",
    "WriteMark",
    "format_lsn",
    "mark_write",
    "parse_lsn",
    "read_after",
    "reader",
    "write_mark",
]

log = logging.getLogger("tessera.db")

LSN_METADATA = "x-tessera-lsn"
REPLICA_RETRY_SECONDS = 2.0
_CALLERS_KEPT = 10_000

# Who this rpc runs for (the principal's subject; None for background work), set by the transport.
reader: ContextVar[str | None] = ContextVar("tessera_db_reader", default=None)
# An LSN the caller has seen (its `x-tessera-lsn`): its reads must not see an older state.
read_after: ContextVar[int | None] = ContextVar("tessera_db_read_after", default=None)


@dataclass
class WriteMark:
    """The LSN of the rpc's last commit, for its trailing metadata (set by Database.transaction)."""

    lsn: int | None = None


write_mark: ContextVar[WriteMark | None] = ContextVar("tessera_db_write_mark", default=None)


def mark_write(lsn: int) -> None:
    """Notes a commit's WAL position for the rpc's trailing metadata."""
    mark = write_mark.get()
    if mark is not None:
        mark.lsn = max(mark.lsn or 0, lsn)


def parse_lsn(text: str | None) -> int | None:
    """PostgreSQL's `X/Y` (two hex numbers) as one integer; None for anything else."""
    if not text:
        return None
    high, sep, low = text.strip().partition("/")
    if not sep or not (0 < len(high) <= 8 and 0 < len(low) <= 8):
        return None
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        return None


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def fallback_error(error: BaseException) -> bool:
    """Errors after which the read is run again on the primary: the replica is unreachable or
    lost the connection, or cancelled the statement for a conflict with recovery (40001). As
    SQLAlchemy wraps them, or as psycopg raises them for statements run on the driver
    (`server/db/compiled.py`)."""
    if isinstance(error, (exc.OperationalError, exc.InterfaceError)):
        return True
    if isinstance(error, exc.DBAPIError):
        return bool(error.connection_invalidated) or getattr(error.orig, "sqlstate", None) == "40001"
    if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True  # 40001 (SerializationFailure) is an OperationalError too
    return isinstance(error, OSError)


class ReplicaRouter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        window_seconds: float,
        count: Callable[[str], None] = lambda target: None,
    ) -> None:
        self.engine = engine
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._window = window_seconds
        self._count = count
        self._writes: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._down_until = 0.0
        self.replayed = 0  # the highest replay LSN the replica reported

    # --- what the caller must see ----------------------------------------------------------

    def wrote(self, lsn: int) -> None:
        """Called after a commit on the primary."""
        mark_write(lsn)
        caller = reader.get()
        if caller is None:
            return
        self._writes[caller] = (lsn, time.monotonic())
        self._writes.move_to_end(caller)
        while len(self._writes) > _CALLERS_KEPT:
            self._writes.popitem(last=False)

    def required(self) -> int | None:
        """The LSN this read must see, if any."""
        needed = read_after.get()
        caller = reader.get()
        if caller is not None and (own := self._writes.get(caller)) is not None:
            lsn, at = own
            if time.monotonic() - at <= self._window:
                needed = max(needed or 0, lsn)
            else:
                self._writes.pop(caller, None)
        return needed

    # --- the replica's state ---------------------------------------------------------------

    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, error: BaseException) -> None:
        if self.usable():
            log.warning("database: the read replica failed, reading from the primary for %.0f s: %r",
                        REPLICA_RETRY_SECONDS, error)  # fmt: skip
        self._down_until = time.monotonic() + REPLICA_RETRY_SECONDS

    def saw(self, replayed: int | None) -> None:
        if replayed is not None and replayed > self.replayed:
            self.replayed = replayed

    def count(self, target: str) -> None:
        self._count(target)
