"""Which failures a worker task retries (with backoff) instead of failing its job: the
database's connection trouble in either form, as SQLAlchemy wraps it and as psycopg raises it
for statements run on the driver (server/db/compiled.py), Redis's, and Unavailable."""

from __future__ import annotations

import psycopg
import redis.exceptions
from sqlalchemy import exc

from server.errors import InvalidArgument, Unavailable
from server.materialization.runner import TRANSIENT_ERRORS
from workers.tasks import RETRYABLE


def test_connection_trouble_is_retried_in_either_form() -> None:
    transient = [
        exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("refused")),
        exc.InterfaceError("SELECT 1", {}, psycopg.InterfaceError("closed")),
        psycopg.OperationalError("the connection is lost"),
        psycopg.InterfaceError("the connection is closed"),
        psycopg.errors.LockNotAvailable("lock timeout"),
        redis.exceptions.ConnectionError("refused"),
        ConnectionRefusedError(),
        Unavailable("the database is unavailable", reason="DATABASE_UNAVAILABLE"),
    ]
    for error in transient:
        assert isinstance(error, TRANSIENT_ERRORS), error
        assert isinstance(error, RETRYABLE), error


def test_a_refused_statement_or_a_bad_request_is_not_retried() -> None:
    for error in (
        psycopg.errors.UndefinedColumn("no such column"),
        exc.ProgrammingError("SELECT 1", {}, psycopg.ProgrammingError("syntax")),
        InvalidArgument("bad value", reason="INVALID"),
        ValueError("a bug"),
    ):
        assert not isinstance(error, TRANSIENT_ERRORS), error
        assert not isinstance(error, RETRYABLE), error
