"""Async engines (SQLAlchemy 2 + psycopg 3) and the transaction helper every domain uses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import URL, event, exc, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from server.db.migrate import sync_url
from server.db.replica import ReplicaRouter, fallback_error, mark_write, parse_lsn, reader, write_mark
from server.protojson import load_json

T = TypeVar("T")
log = logging.getLogger("tessera.db")

# A pooled connection idle for longer than this is pinged before use (a restarted or failed-over
# PostgreSQL leaves dead connections in the pool). One used more recently is not: pinging every
# checkout would cost a round trip on every rpc, and the first statement on a connection that died
# since still fails as a disconnect, which invalidates the whole pool (so one rpc at most is hit).
IDLE_PING_SECONDS = 5.0
_CHECKED_IN = "tessera_checked_in"


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    application_name: str = "tessera",
    time_zone: str | None = "UTC",
    autocommit: bool = False,
) -> AsyncEngine:
    """`time_zone`: the sessions' TimeZone (None: the server's default, which user SQL's date
    arithmetic follows, as it would in psql). The application's own engines run in UTC:
    psycopg then gives datetimes its own `timezone.utc` instead of a ZoneInfo of the server's
    zone name ("Etc/UTC" on Debian), whose conversions took a third of a list page's row
    loading; and nothing the application's SQL formats depends on the server's default.
    `autocommit`: every connection outside transactions for good (no switching on checkout)."""
    sync = sync_url(url)
    connect_args: dict[str, Any] = {"application_name": application_name, "connect_timeout": 5}
    if time_zone is not None:
        # Added to the URL's own libpq options, not in their place.
        given = make_url(sync).query.get("options")
        options = [given] if isinstance(given, str) else list(given or ())
        connect_args["options"] = " ".join([*options, f"-c TimeZone={time_zone}"])
    engine = create_async_engine(
        sync,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        json_deserializer=load_json,
        connect_args=connect_args,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )
    _ping_idle_connections(engine)
    return engine


# Per database server, when a statement run on the driver last found its connection lost
# (monotonic time). SQLAlchemy invalidates a whole pool when its own execution sees a
# disconnect; the driver's errors pass it by, so the checkout listener does the same: a
# connection to that server checked in before then is pinged before its next use.
_LOST: dict[tuple[str | None, int | None, str | None], float] = {}


def _server(url: URL) -> tuple[str | None, int | None, str | None]:
    return url.host, url.port, url.database


async def _connection_lost(conn: AsyncConnection) -> None:
    """`conn` is discarded, and the pooled connections that may have died with it (a restarted
    server) are pinged before their next use, so that one call at most fails."""
    _LOST[_server(conn.sync_engine.url)] = time.monotonic()
    await conn.invalidate()


async def driver_failed(conn: AsyncConnection, driver: psycopg.AsyncConnection[Any], error: BaseException) -> None:
    """Called when a statement run on `conn`'s psycopg connection, which SQLAlchemy does not see,
    failed with `error` or was cancelled. A connection found lost is discarded and its server's
    pooled ones checked. One that psycopg closed because the call was cancelled twice (the
    query's cancellation itself interrupted: its client gone, then the server stopping) is
    discarded too: handed back, its rollback failed, with an error and its traceback in the log."""
    if isinstance(error, asyncio.CancelledError):
        if driver.closed:
            await conn.invalidate()
    elif driver.broken or driver.closed:
        await _connection_lost(conn)


def _ping_idle_connections(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect
    server = _server(engine.sync_engine.url)

    @event.listens_for(pool, "checkin")
    def stamp(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        status = driver.info.transaction_status
        if driver.closed or driver.broken or status != TransactionStatus.IDLE:
            # A command interrupted half-way (a cancelled COPY or pipeline) can leave its
            # connection busy: whoever got it next failed with "another command is already in
            # progress". Read from memory, so free; the pool replaces it and tries again.
            log.warning("a pooled connection was left %s; replaced", status.name)
            raise exc.DisconnectionError("the pooled connection was left busy")
        checked_in = record.info.get(_CHECKED_IN)  # none: a new connection, nothing to check
        if checked_in is None:
            return
        recent = time.monotonic() - checked_in < IDLE_PING_SECONDS
        if recent and checked_in > _LOST.get(server, float("-inf")):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool replaces the connection and tries again.
            raise exc.DisconnectionError("the pooled connection failed its ping") from error


# Checkouts finishing for a caller that was cancelled meanwhile, until their connection is
# handed back (the loop keeps only weak references to tasks).
_HANDING_BACK: set[asyncio.Task[None]] = set()


@asynccontextmanager
async def checked_out(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`engine.connect()`, for an engine that may switch its connections' characteristics on
    checkout. One switched to autocommit by execution options (statements() sharing the pool, a
    replica's routed reads) awaits psycopg in the middle of SQLAlchemy's checkout, after the pool
    has handed the connection over (its engine_connect step): a call cancelled right there (its
    client gone) left that connection to the garbage collector, never handed back and dropped with
    a warning. Such a checkout is shielded (40 us more): it ends, and a cancelled caller's
    connection goes back to the pool as soon as it has. Other engines' checkouts are not."""
    if "isolation_level" not in engine.get_execution_options():
        async with engine.connect() as conn:
            yield conn
        return
    conn = engine.connect()
    starting = asyncio.ensure_future(conn.start())
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        starting.add_done_callback(lambda done: _hand_back(conn, done))
        raise
    async with AsyncExitStack() as stack:
        stack.push_async_exit(conn)  # started above: only its exit (close, shielded) is left
        yield conn


def _hand_back(conn: AsyncConnection, starting: asyncio.Future[AsyncConnection]) -> None:
    if starting.cancelled() or starting.exception() is not None:
        return  # nothing was checked out (SQLAlchemy's pool cleaned up after itself)
    task = asyncio.get_running_loop().create_task(conn.close())
    _HANDING_BACK.add(task)
    task.add_done_callback(_HANDING_BACK.discard)


class CommitCounter:
    """Transactions committed by this process, and each caller's last one (by its sequence
    number): what in-process copies of database state check a caller's own writes against."""

    def __init__(self, callers_kept: int = 10_000) -> None:
        self.sequence = 0
        self._callers: OrderedDict[str, int] = OrderedDict()
        self._kept = callers_kept

    def committed(self) -> None:
        self.sequence += 1
        caller = reader.get()
        if caller is not None:
            self._callers[caller] = self.sequence
            self._callers.move_to_end(caller)
            if len(self._callers) > self._kept:
                self._callers.popitem(last=False)

    def last_of(self, caller: str | None) -> int:
        """The sequence number of the caller's last commit here (0: none remembered)."""
        return self._callers.get(caller, 0) if caller is not None else 0


class Database:
    """The application database. `transaction()` is the unit of work: everything inside
    commits together or not at all. With a read replica (`server/db/replica.py`),
    `stale_read()` runs reads that may be slightly stale there, never older than what the caller
    wrote."""

    def __init__(
        self, engine: AsyncEngine, replica: ReplicaRouter | None = None, reads: AsyncEngine | None = None
    ) -> None:
        """`reads`: an autocommit engine of its own for `statements()` (TESSERA_DB_READ_POOL_SIZE);
        without it they share `engine`'s pool, switched to autocommit while checked out."""
        self.engine = engine
        self.replica = replica
        self.reads = reads
        self._autocommit = reads if reads is not None else engine.execution_options(isolation_level="AUTOCOMMIT")
        self.commits = CommitCounter()
        # Without a replica: whether an rpc's counted commit still reports its WAL position (its
        # `x-tessera-lsn`), for server processes that keep answers followed by notifications, so
        # a caller's next read on another process waits until its write has been heard there.
        self.marks_writes = False

    @asynccontextmanager
    async def transaction(self, *, counted: bool = True) -> AsyncIterator[AsyncConnection]:
        """`counted=False`: a write that nothing kept in memory copies (the audit log), so the
        reads after it need not wait until it has been heard (`commits`)."""
        marked = counted and (self.replica is not None or (self.marks_writes and write_mark.get() is not None))
        if not marked:
            async with self.engine.begin() as conn:
                yield conn
            if counted:
                self.commits.committed()
            return
        async with self.engine.connect() as conn:
            async with conn.begin():
                yield conn
            self.commits.committed()
            # After the commit: the WAL position the caller's later reads must see. Autocommit,
            # so the statement costs one round trip and no BEGIN/ROLLBACK.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            lsn = parse_lsn(await conn.scalar(text("SELECT pg_current_wal_lsn()::text")))
            if lsn is not None:
                if self.replica is not None:
                    self.replica.wrote(lsn)
                else:
                    mark_write(lsn)

    async def stale_read(self, read: Callable[[AsyncConnection], Awaitable[T]], *, autocommit: bool = False) -> T:
        """`read(conn)` on the replica when there is one, it is up, and it has replayed what the
        caller must see; on the primary otherwise, or again on the primary when the replica fails
        under it. `read` must only read (it may run twice). `autocommit`: as `statements()`."""
        result, _ = await self._routed(read, autocommit=autocommit, current_from=None)
        return result

    async def stale_read_current_from(
        self, read: Callable[[AsyncConnection], Awaitable[T]], position: int | None
    ) -> tuple[T, bool]:
        """`stale_read(read, autocommit=True)`, and whether its answer holds every change the
        primary had committed by WAL `position`: one read on the primary does, one on the replica
        when it had replayed that far as the read began (None: nothing known; only the
        primary's answer does). For what is kept in memory and followed by the primary's
        notifications (server/dashboards/kept.py): a lagging replica's answer may still be given,
        never kept."""
        return await self._routed(read, autocommit=True, current_from=position)

    async def _routed(
        self, read: Callable[[AsyncConnection], Awaitable[T]], *, autocommit: bool, current_from: int | None
    ) -> tuple[T, bool]:
        replica = self.replica
        if replica is not None and replica.usable():
            try:
                engine = replica.autocommit if autocommit else replica.engine
                async with checked_out(engine) as conn:
                    needed = replica.required()
                    if needed is None or needed <= replica.replayed or await _replayed(conn, replica, needed):
                        current = current_from is not None and (
                            current_from <= replica.replayed or await _replayed(conn, replica, current_from)
                        )
                        result = await read(conn)
                        replica.count("replica")
                        return result, current
            except Exception as error:
                if not fallback_error(error):
                    raise
                replica.failed(error)
        async with self.statements() if autocommit else self.read() as conn:
            result = await read(conn)
        if replica is not None:
            replica.count("primary")
        return result, True

    async def current_read(self, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`read(conn)` on the primary, outside a transaction (as `statements()`), whatever the
        replica has replayed: for what is kept in memory and followed by the primary's
        notifications, which a lagging replica's copy could miss for good."""
        async with self.statements() as conn:
            result = await read(conn)
        if self.replica is not None:
            self.replica.count("primary")
        return result

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[AsyncConnection]:
        """A connection outside any transaction: each statement is its own (no BEGIN and no
        ROLLBACK round trips). For hot reads whose statements each stand alone: under READ
        COMMITTED a transaction would give them nothing more, since each statement sees its own
        snapshot anyway. Not for SET LOCAL, set_config(..., true) or locks."""
        async with checked_out(self._autocommit) as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.reads is not None:
            await self.reads.dispose()
        if self.replica is not None:
            await self.replica.engine.dispose()


async def _replayed(conn: AsyncConnection, replica: ReplicaRouter, needed: int) -> bool:
    replica.saw(parse_lsn(await conn.scalar(text("SELECT pg_last_wal_replay_lsn()::text"))))
    return needed <= replica.replayed
