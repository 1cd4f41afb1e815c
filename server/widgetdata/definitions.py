"""What a widget-data read resolves from the database for a current widget (the widget, its
dashboard with its shares, its query head and version, converted to protos once), kept in this
process so that a hot read needs no statement.

Only what is the same for every caller is kept: the access decision (identity, role, shares,
facility) is made again on every read from the kept dashboard facts (`resolve.resolve_kept`).

Kept definitions follow the database through LISTEN/NOTIFY (migration 0016: a trigger on
widgets, dashboards, dashboard_shares, widget_queries and query_versions sends `<kind>:<id>` on
`tessera_definitions` when a row changes; `server/db/listen.py` hears it). Migration 0018 adds
where a change happened, for kept dashboard answers (server/dashboards/kept.py):
`facility:<facility id>` with a dashboard's or a share's change, `board:<dashboard id>` with a
widget's; each moves that facility's or dashboard's epoch.

* a notification drops the definitions it names (a widget; every widget of a dashboard or bound
  to a query) and makes a load that started before it not kept;
* while not listening (not yet, or the connection lost), nothing is kept or served; on
  (re)connection everything starts empty;
* read-your-writes: a caller that committed something in this process since the last sync, or
  carries an LSN (`x-tessera-lsn`) past it, waits until this process's own marker notification
  comes back (notifications arrive in commit order, so every earlier change has been heard);
  past `SYNC_WAIT_SECONDS` the read goes to the database;
* where the changes heard stand in the primary's WAL (`heard_position`): a marker sent after the
  last one heard comes back with a position by which all of them had committed, so a replica
  that has replayed that far answers as the primary would have (kept dashboard answers read on a
  replica are kept only then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import text

from dashboard.v1 import dashboard_pb2, query_pb2, widget_pb2
from server.access.policy import DashboardFacts
from server.db import replica as db_replica
from server.db.engine import Database

__all__ = ["CHANNEL", "MAX_KEPT", "SYNC_WAIT_SECONDS", "Definition", "Definitions"]

log = logging.getLogger("tessera.widgetdata")

CHANNEL = "tessera_definitions"
MAX_KEPT = 20_000
# Facilities and dashboards whose epoch is remembered (those changed since the last reset): past
# it they all go and the epoch of everything moves instead.
MAX_SCOPES = 100_000
SYNC_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class Definition:
    """A current widget as resolve() loads it (never changed once built)."""

    row: Any  # the widget's row with its dashboard's and query's columns
    board: SimpleNamespace  # the dashboard's columns, `grants` included
    facts: DashboardFacts  # what the policy decides on
    joined_query: SimpleNamespace | None  # the query the row binds, as loaded
    widget: widget_pb2.Widget
    filters: tuple[dashboard_pb2.DashboardFilter, ...]
    query: query_pb2.Query | None  # joined_query converted; None when it cannot serve the widget

    @property
    def dashboard_id(self) -> str:
        return str(self.board.id)

    @property
    def query_id(self) -> str | None:
        return str(self.joined_query.id) if self.joined_query is not None else None


class Definitions:
    def __init__(self, db: Database, max_kept: int = MAX_KEPT) -> None:
        self._db = db
        self._max_kept = max_kept
        self._kept: dict[uuid.UUID, Definition] = {}
        self._by_dashboard: dict[str, set[uuid.UUID]] = {}
        self._by_query: dict[str, set[uuid.UUID]] = {}
        self._listening = False
        self.epoch = 0  # bumped by every change heard: a load older than it is not kept
        # What kept dashboard answers (server/dashboards/kept.py) are read against: the epoch of
        # everything, moved whenever everything goes (lost, late, a TRUNCATE), and one epoch per
        # facility (list pages: changes to its dashboards and their shares) and per dashboard
        # (a dashboard with its widgets: changes to it, its shares and its widgets).
        self.everything_epoch = 0
        self._facility_epochs: dict[str, int] = {}
        self._board_epochs: dict[str, int] = {}
        # Read-your-writes: this process's commits and the WAL position known to be heard.
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._synced_commit = 0
        self._synced_lsn = 0
        self._marker = 0
        self._waiters: dict[int, asyncio.Future[None]] = {}
        # Where the changes heard so far stand in the primary's WAL (heard_position): a marker
        # sent at `epoch` e comes back with a position past every change heard by e.
        self._placing: dict[int, int] = {}  # own marker -> the epoch it was sent at
        self._placed_epoch = -1
        self._placed_lsn = 0
        self._placing_task: tuple[int, asyncio.Task[bool]] | None = None

    # --- the listener's side ------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._listening

    def on_listening(self) -> None:
        self._forget()
        self._listening = True

    def on_lost(self) -> None:
        self._listening = False
        self._forget()
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_result(None)  # the reader finds nothing kept and reads the database
        self._waiters.clear()

    def on_paused(self) -> None:
        """Notifications may be late: nothing kept is served or newly kept until resumed."""
        self._listening = False
        self.epoch += 1
        self.everything_epoch += 1

    def on_resumed(self) -> None:
        self._listening = True

    def on_notify(self, payload: str) -> None:
        kind, _, name = payload.partition(":")
        if kind == "sync":
            self._synced(name)
            return
        self.epoch += 1
        if kind == "widget":
            self._drop(self._ids([name]))
        elif kind == "dashboard":
            self._moved_board(name)
            self._drop(self._by_dashboard.get(name, set()).copy())
        elif kind == "board":
            self._moved_board(name)
        elif kind == "facility":
            self._moved_facility(name)
        elif kind == "query":
            self._drop(self._by_query.get(name, set()).copy())
        else:  # "all:" (a TRUNCATE) or anything this code does not know: drop everything
            self._forget()

    # --- the reader's side --------------------------------------------------------------------

    def facility_epoch(self, facility_id: str) -> int:
        """Moves with every change heard to a dashboard of the facility or to its shares."""
        return self._facility_epochs.get(facility_id, 0)

    def board_epoch(self, dashboard_id: str) -> int:
        """Moves with every change heard to the dashboard, its shares or its widgets."""
        return self._board_epochs.get(dashboard_id, 0)

    async def get(self, widget_id: uuid.UUID) -> Definition | None:
        """The kept definition, when one is kept and may be used by the current caller."""
        if not self._listening or widget_id not in self._kept:
            return None
        if not await self.caught_up():
            return None
        return self._kept.get(widget_id)

    async def caught_up(self, *, every_commit: bool = False) -> bool:
        """Whether every change the current caller must see has been heard: its own commits in
        this process (`every_commit`: anyone's) and the WAL position it carries
        (`x-tessera-lsn`). Usually at once; else after this process's marker comes back (False
        past SYNC_WAIT_SECONDS, or when not listening)."""
        if not self._listening:
            return False
        commits = self._db.commits
        needed_commit = commits.sequence if every_commit else commits.last_of(db_replica.reader.get())
        needed_lsn = db_replica.read_after.get() or 0
        if needed_commit > self._synced_commit or needed_lsn > self._synced_lsn:
            return await self._sync(needed_commit, needed_lsn)
        return True

    async def heard_position(self) -> int | None:
        """A WAL position of the primary's by which every change heard so far had committed:
        a replica that has replayed that far answers as the primary would have when they were
        heard (server/dashboards/kept.py keeps such answers). One marker round trip after each
        change heard, shared by the readers that ask meanwhile; None when not listening or not
        known within SYNC_WAIT_SECONDS."""
        if not self._listening:
            return None
        heard = self.epoch
        if self._placed_epoch < heard:
            placing = self._placing_task
            if placing is None or placing[0] < heard or placing[1].done():
                placing = (heard, asyncio.get_running_loop().create_task(self._sync(0, 0)))
                self._placing_task = placing
            with contextlib.suppress(Exception):  # a failed marker leaves the position unknown
                await asyncio.shield(placing[1])
        return self._placed_lsn if self._listening and self._placed_epoch >= heard else None

    def keep(self, widget_id: uuid.UUID, definition: Definition, epoch: int) -> None:
        """Keeps a definition loaded from the primary after `epoch` was read (a change heard
        since may be newer than it: then it is not kept)."""
        if not self._listening or epoch != self.epoch:
            return
        if len(self._kept) >= self._max_kept:
            self._forget()  # rare, and cheap to rebuild: one statement per widget read next
        self._drop([widget_id])
        self._kept[widget_id] = definition
        self._by_dashboard.setdefault(definition.dashboard_id, set()).add(widget_id)
        query_id = definition.query_id
        if query_id is not None:
            self._by_query.setdefault(query_id, set()).add(widget_id)

    def __len__(self) -> int:
        return len(self._kept)

    # --- read-your-writes ---------------------------------------------------------------------

    async def _sync(self, needed_commit: int, needed_lsn: int) -> bool:
        """Sends a marker through PostgreSQL and waits for it to come back: every change
        committed before it has been heard by then. False when that took too long."""
        self._marker += 1
        marker = self._marker
        commit = self._db.commits.sequence
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[marker] = waiter
        self._placing[marker] = self.epoch  # before the statement reads the WAL position
        try:
            async with self._db.statements() as conn:
                await conn.execute(
                    text("SELECT pg_notify(:channel, :prefix || pg_current_wal_lsn()::text)"),
                    {"channel": CHANNEL, "prefix": f"sync:{self._token}:{marker}:{commit}:"},
                )
            async with asyncio.timeout(SYNC_WAIT_SECONDS):
                await asyncio.shield(waiter)
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(marker, None)
            self._placing.pop(marker, None)
        return self._listening and needed_commit <= self._synced_commit and needed_lsn <= self._synced_lsn

    def _synced(self, text_: str) -> None:
        token, _, rest = text_.partition(":")
        marker_text, _, rest = rest.partition(":")
        commit_text, _, lsn_text = rest.partition(":")
        lsn = db_replica.parse_lsn(lsn_text)
        if lsn is not None:
            self._synced_lsn = max(self._synced_lsn, lsn)  # the WAL position is everybody's
        if token != self._token or not marker_text.isdigit() or not commit_text.isdigit():
            return
        self._synced_commit = max(self._synced_commit, int(commit_text))
        placed = self._placing.pop(int(marker_text), None)
        if placed is not None and lsn is not None:
            self._placed_epoch = max(self._placed_epoch, placed)
            self._placed_lsn = max(self._placed_lsn, lsn)
        for marker, waiter in list(self._waiters.items()):
            if marker <= int(marker_text) and not waiter.done():
                waiter.set_result(None)

    # --- bookkeeping --------------------------------------------------------------------------

    @staticmethod
    def _ids(names: Iterable[str]) -> list[uuid.UUID]:
        ids = []
        for name in names:
            try:
                ids.append(uuid.UUID(name))
            except ValueError:
                continue
        return ids

    def _drop(self, widget_ids: Iterable[uuid.UUID]) -> None:
        for widget_id in widget_ids:
            definition = self._kept.pop(widget_id, None)
            if definition is None:
                continue
            _unindex(self._by_dashboard, definition.dashboard_id, widget_id)
            if definition.query_id is not None:
                _unindex(self._by_query, definition.query_id, widget_id)

    def _moved_facility(self, facility_id: str) -> None:
        if _move(self._facility_epochs, facility_id):
            self.everything_epoch += 1

    def _moved_board(self, dashboard_id: str) -> None:
        if _move(self._board_epochs, dashboard_id):
            self.everything_epoch += 1

    def _forget(self) -> None:
        self.epoch += 1
        self.everything_epoch += 1
        self._kept.clear()
        self._by_dashboard.clear()
        self._by_query.clear()


def _move(epochs: dict[str, int], name: str) -> bool:
    """Moves `name`'s epoch; True when, to stay within MAX_SCOPES, every epoch went instead
    (then the epoch of everything must move: an epoch read before may come round again)."""
    if name not in epochs and len(epochs) >= MAX_SCOPES:
        epochs.clear()
        return True
    epochs[name] = epochs.get(name, 0) + 1
    return False


def _unindex(index: dict[str, set[uuid.UUID]], name: str, widget_id: uuid.UUID) -> None:
    ids = index.get(name)
    if ids is not None:
        ids.discard(widget_id)
        if not ids:
            del index[name]
