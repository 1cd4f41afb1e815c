"""Which database errors mean "the database is unavailable" (retry later) rather than "the
database refused this statement" (retrying the same thing fails the same way)."""

from __future__ import annotations

import psycopg
import sqlalchemy.exc

__all__ = ["is_unavailable"]


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        (
            psycopg.OperationalError,
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.TimeoutError,
            ConnectionError,
            TimeoutError,
        ),
    )
