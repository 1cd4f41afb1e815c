"""The application engine: pooled connections that died are replaced before use once idle for a
while (no per-checkout ping on the hot path), and `Database.statements()` runs outside any
transaction (no BEGIN/ROLLBACK round trips)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import warnings
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import event, func, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import await_

from server.app import Runtime, build_core
from server.config import Settings
from server.db import engine as engine_module
from server.db.compiled import Statement
from server.db.engine import Database, make_engine
from server.db.migrate import sync_url
from server.db.replica import ReplicaRouter
from tests.harness.cancel import cancel_twice_while_running, pool_errors


def _dsn(settings: Settings) -> str:
    return sync_url(settings.database_url).replace("postgresql+psycopg://", "postgresql://", 1)


async def _backend_pid(db: Database) -> int:
    async with db.statements() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_an_idle_connection_that_died_is_replaced_before_use(
    settings: Settings, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(make_engine(settings.database_url, pool_size=1, max_overflow=0))
    try:
        first = await _backend_pid(db)
        with psycopg.connect(_dsn(settings), autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone() == (True,)
        monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)  # every pooled connection counts as idle
        second = await _backend_pid(db)
        assert second != first
    finally:
        await db.dispose()


async def test_statements_run_outside_a_transaction_and_read_restores_transactions(
    settings: Settings, migrated: str
) -> None:
    db = Database(make_engine(settings.database_url, pool_size=1, max_overflow=0))
    try:
        async with db.statements() as conn:
            await conn.execute(text("SELECT 1"))
            raw = await conn.get_raw_connection()
            assert raw.driver_connection.info.transaction_status == TransactionStatus.IDLE
        # The same pooled connection, back to transactions for everyone else.
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
            raw = await conn.get_raw_connection()
            assert raw.driver_connection.info.transaction_status == TransactionStatus.INTRANS
    finally:
        await db.dispose()


async def test_a_connection_left_busy_in_the_pool_is_replaced_not_handed_out(settings: Settings, migrated: str) -> None:
    """A command interrupted half-way (a cancelled COPY or pipeline) can leave its connection busy
    with a result nobody reads: the next user got "another command is already in progress"."""
    db = Database(make_engine(settings.database_url, pool_size=1, max_overflow=0))
    try:
        async with db.statements() as conn:
            raw = await conn.get_raw_connection()
            left = raw.driver_connection
            first = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        # Busy behind the pool's back: a query sent and its result never read.
        left.pgconn.send_query(b"SELECT pg_sleep(0.2)")
        assert left.info.transaction_status == TransactionStatus.ACTIVE
        async with db.transaction() as conn:
            second = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        assert second != first
        assert left.closed
    finally:
        await db.dispose()


_BACKEND_PID = Statement(select(func.pg_backend_pid()))


async def test_after_one_driver_statement_finds_its_connection_lost_the_others_are_checked_first(
    settings: Settings, migrated: str
) -> None:
    """A restarted server leaves every pooled connection dead. SQLAlchemy, seeing a disconnect
    in its own execution, invalidates the whole pool, so one call at most fails; statements run
    on the driver (server/db/compiled.py) bypass that, so the pool pings every connection checked
    in before the loss was seen, before its next use."""
    db = Database(make_engine(settings.database_url, pool_size=3, max_overflow=0))
    try:
        async with db.statements() as a, db.statements() as b, db.statements() as c:
            pids = [int((await _BACKEND_PID.rows(conn, {}))[0][0]) for conn in (a, b, c)]
        with psycopg.connect(_dsn(settings), autocommit=True) as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        failures, served = 0, set()
        for _ in range(4):
            try:
                async with db.statements() as conn:
                    served.add(int((await _BACKEND_PID.rows(conn, {}))[0][0]))
            except psycopg.OperationalError:
                failures += 1
        assert failures == 1
        assert served and not served & set(pids)
    finally:
        await db.dispose()


_SLEEP = Statement(select(func.pg_sleep(5)))


async def test_a_statement_cancelled_twice_leaves_no_closed_connection_to_the_pool(
    settings: Settings, migrated: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A call cancelled twice (its client gone, then the server stopping) interrupts psycopg's
    cancellation of the query, and psycopg closes the connection. Handed back to the pool, its
    rollback failed and the pool logged an error with a traceback for what is an ordinary end."""
    db = Database(make_engine(settings.database_url, pool_size=1, max_overflow=0))

    async def sleep() -> None:
        async with db.statements() as conn:
            await _SLEEP.rows(conn, {})

    try:
        first = await _backend_pid(db)
        await cancel_twice_while_running(sleep(), caplog)
        assert await _backend_pid(db) != first  # the closed connection was not handed out again
        assert pool_errors(caplog) == []
    finally:
        await db.dispose()


async def test_the_application_runs_in_utc_and_user_sql_keeps_the_servers_time_zone(
    settings: Settings, migrated: str
) -> None:
    """psycopg gives a UTC session's datetimes its own `timezone.utc`; any other zone name, the
    server's "Etc/UTC" included, a ZoneInfo whose conversions took a third of a list page's row
    loading. The URL's own libpq options are kept beside it. User SQL (the data-source engine,
    time_zone=None) keeps the server's zone, as in psql."""
    with psycopg.connect(_dsn(settings)) as plain:
        servers = plain.execute("SHOW TimeZone").fetchone()
    url = (
        make_url(settings.database_url)
        .update_query_dict({"options": "-c statement_timeout=12345"})
        .render_as_string(hide_password=False)
    )
    for engine, zone in ((make_engine(url, pool_size=1), "UTC"), (make_engine(url, pool_size=1, time_zone=None), None)):
        try:
            async with engine.connect() as conn:
                shown = (await conn.execute(text("SHOW TimeZone"))).scalar_one()
                timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
                now = (await conn.execute(text("SELECT now()"))).scalar_one()
        finally:
            await engine.dispose()
        assert timeout == "12345ms"
        if zone is None:
            assert servers is not None and shown == servers[0]
        else:
            assert shown == zone and now.tzinfo is dt.UTC


async def _application_name(conn: AsyncConnection) -> str:
    return str((await conn.execute(text("SELECT current_setting('application_name')"))).scalar_one())


async def test_reads_of_their_own_pool_queue_in_order_and_leave_transactions_alone(
    settings: Settings, migrated: str
) -> None:
    """TESSERA_DB_READ_POOL_SIZE: the short reads outside a transaction (`statements()`) take a
    pool of their own, always in autocommit, with nothing opened beyond it, so a read waits for a
    connection in order; transactions keep the application pool and never wait behind them."""
    reads = make_engine(
        settings.database_url, pool_size=1, max_overflow=0, autocommit=True, application_name="tessera-reads"
    )
    db = Database(make_engine(settings.database_url, pool_size=1, max_overflow=0), reads=reads)
    order: list[str] = []

    async def read(name: str, hold: float) -> None:
        async with db.statements() as conn:
            order.append(f"{name} reads")
            await conn.execute(text("SELECT pg_sleep(:hold)"), {"hold": hold})
            order.append(f"{name} done")

    try:
        async with db.statements() as conn:
            assert await _application_name(conn) == "tessera-reads"
            raw = await conn.get_raw_connection()
            assert raw.driver_connection.autocommit
        async with db.transaction() as conn:
            assert await _application_name(conn) == "tessera"
        first = asyncio.create_task(read("first", 0.5))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(read("second", 0))
        await asyncio.sleep(0.1)
        async with db.transaction() as conn:  # the read pool's queue holds no transaction up
            await conn.execute(text("SELECT 1"))
            order.append("transaction")
        await asyncio.gather(first, second)
        assert order == ["first reads", "transaction", "first done", "second reads", "second done"]
    finally:
        await db.dispose()


@pytest.mark.parametrize(("runtime", "own_pool"), [(Runtime.SERVER, True), (Runtime.WORKER, False)])
async def test_the_server_sizes_the_read_pool_from_the_setting(
    settings: Settings, migrated: str, runtime: Runtime, own_pool: bool
) -> None:
    """The server's processes only: a worker runs one task at a time on its small pools."""
    core = build_core(settings.model_copy(update={"db_read_pool_size": 2}), runtime)
    try:
        if own_pool:
            assert core.db.reads is not None and core.db.reads.sync_engine.pool.size() == 2  # type: ignore[attr-defined]
            async with core.db.statements() as conn:
                assert await _application_name(conn) == f"{runtime.value}-reads"
        else:
            assert core.db.reads is None
    finally:
        await core.close()


async def test_a_call_cancelled_while_it_checks_a_connection_out_leaves_none_behind(
    settings: Settings, migrated: str
) -> None:
    """An engine switched to autocommit by execution options (statements() sharing the pool, a
    replica's routed reads) awaits psycopg in the middle of SQLAlchemy's checkout, after the pool
    has handed the connection over (its engine_connect step). A call cancelled right there (its
    client gone) left that connection to the garbage collector: never handed back, dropped with a
    warning, and a new one opened in its place (seen under a storm of client deadlines on a
    replica). Here that step is made to wait, and every call is cancelled while it does."""
    db = Database(make_engine(settings.database_url, pool_size=2, max_overflow=0))
    # The primary in a replica's place: routed reads go through the replica's autocommit engine.
    db.replica = ReplicaRouter(make_engine(settings.database_url, pool_size=2, max_overflow=0), window_seconds=5)
    switching = asyncio.Event()

    def slow_switch(connection: Any) -> None:
        if "isolation_level" in connection.get_execution_options():
            switching.set()
            await_(asyncio.sleep(0.05))

    for engine in (db.engine, db.replica.engine):
        event.listen(engine.sync_engine, "engine_connect", slow_switch)

    async def select_one(conn: AsyncConnection) -> None:
        await conn.execute(text("SELECT 1"))

    async def statements() -> None:
        async with db.statements() as conn:
            await select_one(conn)

    async def routed() -> None:
        await db.stale_read(select_one, autocommit=True)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for call in (statements, routed) * 3:
                switching.clear()
                task = asyncio.create_task(call())
                await asyncio.wait_for(switching.wait(), timeout=5)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0.2)  # the checkouts end, and are handed back
            gc.collect()
        assert [str(w.message)[:90] for w in caught if "non-checked-in" in str(w.message)] == []
        for engine in (db.engine, db.replica.engine):
            assert engine.sync_engine.pool.checkedout() == 0
        await statements()  # both still serve
        await routed()
    finally:
        await db.dispose()
