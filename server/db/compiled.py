"""Statements compiled once and run on the driver, for the hottest reads and writes.

A list of 50 dashboards spent more time building its statement, generating its cache key and
processing its rows through SQLAlchemy than the driver spent executing it (about 3x). Here a
SQLAlchemy statement, written with named bind parameters for what varies per call, is compiled
once to the driver's SQL text; each call sends that text with its values on the psycopg connection
beneath a SQLAlchemy one (so pooling, routing to a replica and autocommit stay the engine's) and
gets plain tuples back. psycopg prepares a statement it has seen five times on a connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from server.db.engine import driver_failed


class Compiled:
    """`statement` as the driver's SQL text. Its named parameters (`bindparam(name)` without a
    value) are given per call; values written into the statement are kept."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast("SQLCompiler", statement.compile(dialect=dialect))
        if any(bind.expanding for bind in compiled.binds.values()):
            # IN (list) is rendered per call; = ANY(array parameter) is one text for every call.
            raise ValueError("a compiled statement takes no IN (...) lists: use = ANY(array)")
        self.sql = compiled.string
        named = {bind.key for bind in compiled.binds.values() if bind.value is None and bind.callable is None}
        self._fixed = {
            key: value
            for key, value in compiled.construct_params(_check=False).items()  # values written in
            if key not in named
        }
        self._named = frozenset(named)

    def params(self, values: dict[str, Any]) -> dict[str, Any]:
        missing = self._named - values.keys()
        if missing:
            raise ValueError(f"no value for the statement's parameters {sorted(missing)}")
        return {**self._fixed, **values}

    async def rows(self, conn: AsyncConnection, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        cursor = await self._run(conn, values)
        return cast("list[tuple[Any, ...]]", await cursor.fetchall())

    async def named_rows(self, conn: AsyncConnection, values: dict[str, Any]) -> list[Any]:
        """Rows whose columns are attributes by name (named tuples), as SQLAlchemy's rows."""
        cursor = await self._run(conn, values, named=True)
        return await cursor.fetchall()

    async def execute(self, conn: AsyncConnection, values: dict[str, Any]) -> int:
        """Runs a statement that returns no rows; the number of rows it changed. The driver's
        errors come as they are (psycopg.errors.*), not wrapped by SQLAlchemy."""
        return (await self._run(conn, values)).rowcount

    async def _run(
        self, conn: AsyncConnection, values: dict[str, Any], *, named: bool = False
    ) -> psycopg.AsyncCursor[Any]:
        raw = await conn.get_raw_connection()
        driver = cast("psycopg.AsyncConnection[Any]", raw.driver_connection)
        cursor = driver.cursor(row_factory=namedtuple_row) if named else driver.cursor()
        try:
            # The text comes from the statement's compiler, never from a caller's input.
            return await cursor.execute(self.sql, self.params(values))
        except (psycopg.Error, asyncio.CancelledError) as error:
            await driver_failed(conn, driver, error)
            raise


class Statement:
    """A statement of a module's, compiled on first use for the dialect of the connection it
    runs on (every engine here speaks PostgreSQL through psycopg)."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: Compiled | None = None

    def _for(self, conn: AsyncConnection) -> Compiled:
        if self._compiled is None:
            self._compiled = Compiled(self.statement, conn.dialect)
        return self._compiled

    async def rows(self, conn: AsyncConnection, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        return await self._for(conn).rows(conn, values)

    async def named_rows(self, conn: AsyncConnection, values: dict[str, Any]) -> list[Any]:
        return await self._for(conn).named_rows(conn, values)

    async def execute(self, conn: AsyncConnection, values: dict[str, Any]) -> int:
        return await self._for(conn).execute(conn, values)
