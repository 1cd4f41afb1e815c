"""The pure parts of replica routing: LSN text, what a read must see, which errors fall back."""

from __future__ import annotations

import psycopg
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import create_async_engine

from server.db.replica import ReplicaRouter, fallback_error, format_lsn, parse_lsn, read_after, reader


def test_lsn_text_round_trips_and_junk_is_none() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848") or 0) == "16/B374D848"
    assert parse_lsn("0/0") == 0
    for junk in (None, "", "16", "/1", "1/", "x/1", "1/2/3", "123456789/1", "1/" + "f" * 50):
        assert parse_lsn(junk) is None, junk


def test_a_caller_is_held_to_its_own_writes_and_to_the_lsn_it_carries() -> None:
    router = ReplicaRouter(create_async_engine("postgresql+psycopg://u@127.0.0.1:1/x"), window_seconds=60)
    assert router.required() is None
    token = reader.set("alice")
    try:
        router.wrote(100)
        assert router.required() == 100
        carried = read_after.set(250)
        assert router.required() == 250
        read_after.reset(carried)
    finally:
        reader.reset(token)
    other = reader.set("bob")
    try:
        assert router.required() is None  # another caller is not held to alice's writes
    finally:
        reader.reset(other)
    expired = ReplicaRouter(create_async_engine("postgresql+psycopg://u@127.0.0.1:1/x"), window_seconds=0)
    token = reader.set("alice")
    try:
        expired.wrote(100)
        assert expired.required() in (None, 100)  # zero window: at most until the clock moves
    finally:
        reader.reset(token)


def test_only_connection_trouble_and_recovery_conflicts_fall_back() -> None:
    assert fallback_error(exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("refused")))
    assert fallback_error(exc.InterfaceError("SELECT 1", {}, psycopg.InterfaceError("closed")))
    assert fallback_error(ConnectionRefusedError())
    conflict = exc.DBAPIError("SELECT 1", {}, psycopg.errors.SerializationFailure("conflict with recovery"))
    assert fallback_error(conflict)
    assert not fallback_error(exc.ProgrammingError("SELECT 1", {}, psycopg.ProgrammingError("syntax")))
    assert not fallback_error(ValueError("a domain error"))
    # The same, raised by psycopg itself for a statement run on the driver (server/db/compiled.py).
    assert fallback_error(psycopg.OperationalError("the connection is lost"))
    assert fallback_error(psycopg.InterfaceError("the connection is closed"))
    assert fallback_error(psycopg.errors.SerializationFailure("conflict with recovery"))
    assert not fallback_error(psycopg.errors.UndefinedColumn("no such column"))


async def test_only_the_server_reads_from_the_replica() -> None:
    """A task reads what the rpc that queued it just wrote, with no LSN to wait for: workers read
    the primary."""
    from server.app import Runtime, build_core
    from server.config import Settings

    settings = Settings(
        database_url="postgresql+psycopg://u@127.0.0.1:1/x",
        database_replica_url="postgresql+psycopg://u@127.0.0.1:2/x",
        redis_url="redis://127.0.0.1:1/0",
    )
    server, worker = build_core(settings, Runtime.SERVER), build_core(settings, Runtime.WORKER)
    try:
        assert server.db.replica is not None and worker.db.replica is None
    finally:
        for core in (server, worker):
            await core.db.dispose()
            await core.datasource.dispose()
            await core.redis.aclose()
