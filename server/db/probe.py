"""Health's view of PostgreSQL: a fresh connection for every check, never a pooled one.

A pooled connection says nothing true right after PostgreSQL restarts (it is dead until used and
replaced, so the first check after recovery failed on it and health lagged a whole interval
behind) nor right after PostgreSQL dies (a connection checked out moments ago is trusted without
a ping). A new connection answers for PostgreSQL as it is now, in one round trip, and costs one
connection per check interval.
"""

from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from server.db.migrate import sync_url

__all__ = ["PostgresProbe"]


class PostgresProbe:
    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._engine = create_async_engine(
            sync_url(url),
            poolclass=NullPool,  # every connect is a new connection, closed when released
            connect_args={
                "application_name": "tessera-health",
                # libpq takes whole seconds (and treats 1 as 2); asyncio's timeout bounds it anyway.
                "connect_timeout": max(2, math.ceil(timeout_seconds)),
            },
        )

    async def ping(self) -> None:
        async with self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self._engine.dispose()
