"""Async engines (SQLAlchemy 2 + psycopg 3) and the transaction helper every domain uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from server.db.migrate import sync_url


def make_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, application_name: str = "tessera"
) -> AsyncEngine:
    return create_async_engine(
        sync_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"application_name": application_name, "connect_timeout": 5},
    )


class Database:
    """The application database. `transaction()` is the unit of work: everything inside
    commits together or not at all."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
