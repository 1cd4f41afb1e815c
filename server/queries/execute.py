"""Running one query safely against a data source.

Every run takes one pooled connection and one transaction, in which, before the query:

    transaction_read_only = on            (SET TRANSACTION READ ONLY: writes fail with 25006)
    statement_timeout     = <ms>          (each statement; the server computes it from a float)
    tessera.facility_id   = <facility>    (for Row-Level Security: current_setting('tessera.facility_id'))
    DateStyle = ISO, IntervalStyle = iso_8601, extra_float_digits = 3
                                          (the text forms `frame` parses exactly; output only)
    role                  = <role>        (SET LOCAL ROLE: the least-privilege reader), unless None

all through one `SELECT set_config(..., true)` with bound values: `true` makes each setting local
to the transaction, so nothing outlives the run on the pooled connection. The query's `:name`
placeholders are found by `compile_placeholders` (a PostgreSQL-aware lexer, cached per SQL text;
not `sqlalchemy.text()`, whose regular expression also finds them inside string literals and
comments); their values are bound by the driver, never formatted into the SQL, and
`:facility_id` is always the caller's facility (a parameter of that name is ignored; parameters
the SQL does not use are ignored too). It runs as a subquery under LIMIT row_limit + 1,
pipelined with the settings in one round trip, so a huge result is never transferred:
`truncated` says whether there was more. The extended protocol refuses stacked statements, and
a subquery refuses data-modifying CTEs. (`stream`, for results read in batches, uses a
server-side cursor.)

After the query, in the same pipeline, a tripwire re-reads the facility setting, the current
role and read-only mode: a query that changed them (set_config in the SQL, which the save-time
checks must refuse) gets its result discarded. The transaction is then rolled back (it is read-only: nothing to commit).

Errors: see `_translate`. A statement timeout answers DEADLINE_EXCEEDED (reason QUERY_TIMEOUT) and
leaves the connection healthy for the pool (the transaction is rolled back). A client-side
deadline of timeout + `client_grace_seconds` covers a data source that stops answering.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import psycopg
import psycopg.errors
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dashboard.v1.common_pb2 import DataFrame
from server.db.engine import driver_failed
from server.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    TesseraError,
    Unavailable,
)
from server.queries.frame import UnrepresentableValue, build_frame, register_frame_loaders, type_name_for
from server.queries.sql_check import driver_form

__all__ = [
    "FACILITY_SETTING",
    "CompiledSQL",
    "ExecutionLimits",
    "ExecutionResult",
    "QueryExecutor",
    "compile_placeholders",
]

FACILITY_SETTING = "tessera.facility_id"
FACILITY_PARAMETER = "facility_id"

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_ROWS_NAME = "tessera_rows"
_STREAM_CURSOR_NAME = "tessera_stream"

_SETUP = (
    "SELECT set_config('transaction_read_only', 'on', true),"
    " set_config('statement_timeout', :statement_timeout, true),"
    f" set_config('{FACILITY_SETTING}', :facility_id, true),"
    " set_config('DateStyle', 'ISO', true),"
    " set_config('IntervalStyle', 'iso_8601', true),"
    " set_config('extra_float_digits', '3', true)"
)
_SETUP_PLAIN = text(_SETUP)
_SETUP_WITH_ROLE = text(_SETUP + ", set_config('role', :role, true)")
# The same two statements in psycopg's placeholders, for the pipeline of _fetch.
_SETUP_DRIVER_PLAIN = _SETUP.replace(":statement_timeout", "%(statement_timeout)s").replace(
    ":facility_id", "%(facility_id)s"
)
_SETUP_DRIVER_WITH_ROLE = _SETUP_DRIVER_PLAIN + ", set_config('role', %(role)s, true)"
_TRIPWIRE_DRIVER = (
    f"SELECT current_setting('{FACILITY_SETTING}', true), current_user::text, session_user::text,"
    " current_setting('transaction_read_only')"
)
_TRIPWIRE = text(_TRIPWIRE_DRIVER)
_TYPE_NAMES = text(
    "SELECT t.oid::int8, CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN e.typname || '[]' ELSE t.typname END"
    " FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem"
    " WHERE t.oid = ANY(CAST(:oids AS oid[]))"
)

# SQLSTATEs meaning the data source (not the query) is the problem: the caller may retry.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05", "53300"})
_CONFLICT_STATES = frozenset({"40001", "40P01"})


@dataclass(frozen=True)
class ExecutionLimits:
    """statement_timeout (seconds, > 0) and the row cap (>= 0) for one run."""

    timeout_seconds: float
    row_limit: int

    def __post_init__(self) -> None:
        if not math.isfinite(self.timeout_seconds) or self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be a positive number, not {self.timeout_seconds!r}")
        if isinstance(self.row_limit, bool) or not isinstance(self.row_limit, int) or self.row_limit < 0:
            raise ValueError(f"row_limit must be a non-negative int, not {self.row_limit!r}")

    @property
    def statement_timeout_ms(self) -> int:
        # Never 0: for PostgreSQL that means no timeout at all.
        return max(1, math.ceil(self.timeout_seconds * 1000))


@dataclass(frozen=True)
class ExecutionResult:
    frame: DataFrame
    elapsed_seconds: float  # the whole run: connection, settings, query, fetch, frame
    # The one round trip that carries the settings, the query, its checks and the transaction's
    # end: what the data source took, as seen from here (the rest of elapsed is this process's).
    source_seconds: float


@dataclass(frozen=True)
class CompiledSQL:
    """A query's SQL for the driver: `:name` placeholders as `%(name)s`, every `%` doubled."""

    sql: str
    names: tuple[str, ...]  # the placeholders, in order of first use


@functools.lru_cache(maxsize=512)
def compile_placeholders(sql: str) -> CompiledSQL:
    """Finds the `:name` placeholders the way PostgreSQL's lexer would see them (never inside
    string literals, quoted identifiers or comments, never in a `::` cast) and rewrites them to
    psycopg's `%(name)s`. It is the same lexer the save-time checks use (sql_check), so what was
    checked is exactly what runs; SQLAlchemy's regex-based `text()` would disagree with it on
    `'{"a":1}'` or `'%:name%'`."""
    try:
        text, names = driver_form(sql)
    except ValueError as exc:
        raise InvalidArgument(f"the query cannot be run: {exc}", reason="QUERY_FAILED") from exc
    return CompiledSQL(text, names)


class QueryExecutor:
    """Runs read-only queries on `engine` (the data source; the composition root decides whether
    that is the application database). `role` is server configuration (a PostgreSQL role name
    the engine's login role may SET ROLE to), never user input; None runs as the login role."""

    def __init__(
        self, engine: AsyncEngine, *, role: str | None = "tessera_reader", client_grace_seconds: float = 5.0
    ) -> None:
        if role is not None and not _ROLE_NAME.fullmatch(role):
            raise ValueError(f"invalid role name {role!r}: expected {_ROLE_NAME.pattern}")
        if not math.isfinite(client_grace_seconds) or client_grace_seconds < 0:
            raise ValueError("client_grace_seconds must be a non-negative number")
        self._engine = engine
        self._role = role
        self._grace = client_grace_seconds
        self._type_names: dict[int, str] = {}

    @property
    def role(self) -> str | None:
        return self._role

    async def run(
        self, sql: str, params: Mapping[str, object], *, facility_id: str, limits: ExecutionLimits
    ) -> ExecutionResult:
        """Runs `sql` with `params` bound and returns at most `limits.row_limit` rows.

        Raises DeadlineExceeded (QUERY_TIMEOUT), InvalidArgument (QUERY_FAILED: the query's own
        error, with PostgreSQL's message; QUERY_PARAMETER_MISSING; QUERY_PARAMETER_INVALID;
        QUERY_RESULT_UNREPRESENTABLE), FailedPrecondition (QUERY_NOT_READ_ONLY), PermissionDenied
        (QUERY_PRIVILEGE, QUERY_SETTINGS_CHANGED), ResourceExhausted (QUERY_RESOURCES,
        DATA_SOURCE_BUSY), Unavailable (DATA_SOURCE_UNAVAILABLE, QUERY_CONFLICT). Anything else
        is a bug (or a misconfiguration such as a missing role) and propagates unchanged."""
        if not facility_id:
            raise ValueError("facility_id is required")
        started = time.perf_counter()
        compiled = compile_placeholders(sql)
        bound = _bind(compiled, params, facility_id)
        try:
            async with asyncio.timeout(limits.timeout_seconds + self._grace):
                frame, source_seconds = await self._run(compiled, bound, facility_id, limits)
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"the data source did not answer within {limits.timeout_seconds + self._grace:g} s",
                reason="QUERY_TIMEOUT",
                metadata={"timeout_seconds": f"{limits.timeout_seconds:g}"},
            ) from exc
        return ExecutionResult(
            frame=frame, elapsed_seconds=time.perf_counter() - started, source_seconds=source_seconds
        )

    async def _run(
        self, compiled: CompiledSQL, bound: dict[str, object], facility_id: str, limits: ExecutionLimits
    ) -> tuple[DataFrame, float]:
        """The frame, and the seconds its round trip to the data source took."""
        phase = "connect"
        try:
            async with self._engine.connect() as conn:
                phase = "setup"
                settings: dict[str, object] = {
                    "statement_timeout": str(limits.statement_timeout_ms),
                    "facility_id": facility_id,
                }
                if self._role is not None:
                    settings["role"] = self._role
                raw = await conn.get_raw_connection()
                driver = cast("psycopg.AsyncConnection[Any]", raw.driver_connection)
                sent = time.perf_counter()
                try:
                    columns, rows, after = await _fetch(
                        driver,
                        _SETUP_DRIVER_PLAIN if self._role is None else _SETUP_DRIVER_WITH_ROLE,
                        settings,
                        compiled.sql,
                        bound,
                        limits.row_limit + 1,
                    )
                except _QueryFailed as failed:
                    phase = "query"
                    await driver_failed(conn, driver, failed.error)  # never hand a dead connection back
                    raise failed.error from None
                except (psycopg.Error, asyncio.CancelledError) as error:
                    await driver_failed(conn, driver, error)
                    raise
                source_seconds = time.perf_counter() - sent
                phase = "check"
                self._check_settings(after, facility_id)
                names = await self._names(conn, [oid for _, oid in columns])
                await conn.rollback()
        except sa_exc.TimeoutError as exc:  # the pool had no connection to give in time
            raise ResourceExhausted(
                "every connection to the data source is busy; retry later", reason="DATA_SOURCE_BUSY"
            ) from exc
        except sa_exc.DBAPIError as exc:
            mapped = _translate(exc.orig, phase, limits)
            if mapped is None:
                raise
            raise mapped from exc
        except psycopg.Error as exc:
            mapped = _translate(exc, phase, limits)
            if mapped is None:
                raise
            raise mapped from exc
        truncated = len(rows) > limits.row_limit
        if truncated:
            del rows[limits.row_limit :]
        try:
            frame = build_frame([(name, oid, names[oid]) for name, oid in columns], rows, truncated)
        except UnrepresentableValue as exc:
            raise InvalidArgument(
                f"the result cannot be carried exactly: {exc}; cast the column to text",
                reason="QUERY_RESULT_UNREPRESENTABLE",
                metadata={"column": exc.column},
            ) from exc
        return frame, source_seconds

    async def stream(
        self,
        sql: str,
        params: Mapping[str, object],
        *,
        facility_id: str,
        limits: ExecutionLimits,
        batch_rows: int,
    ) -> AsyncGenerator[DataFrame]:
        """`run` for results too big to hold: the same transaction, settings, role, binding and
        error mapping, but the server-side cursor is read `batch_rows` at a time and each batch
        is yielded as its own frame (columns typed as `run` types them), so memory holds one
        batch whatever the result's size. The tripwire runs after every batch: a batch is only
        yielded once the settings it was read under are known intact. At most
        `limits.row_limit` rows; the last frame has `truncated` set when there were more.
        `statement_timeout` bounds each FETCH; the client deadline (timeout + grace) each batch.
        A result without rows yields one empty frame (so the columns are known)."""
        if not facility_id:
            raise ValueError("facility_id is required")
        if batch_rows < 1:
            raise ValueError("batch_rows must be positive")
        compiled = compile_placeholders(sql)
        bound = _bind(compiled, params, facility_id)
        deadline = limits.timeout_seconds + self._grace
        phase = "connect"
        try:
            async with self._engine.connect() as conn:
                phase = "setup"
                settings: dict[str, object] = {
                    "statement_timeout": str(limits.statement_timeout_ms),
                    "facility_id": facility_id,
                }
                if self._role is None:
                    await conn.execute(_SETUP_PLAIN, settings)
                else:
                    await conn.execute(_SETUP_WITH_ROLE, {**settings, "role": self._role})
                raw = await conn.get_raw_connection()
                driver = cast("psycopg.AsyncConnection[Any]", raw.driver_connection)
                cursor = driver.cursor(name=_STREAM_CURSOR_NAME)
                register_frame_loaders(cursor.adapters)
                sent = 0
                try:
                    phase = "query"
                    async with asyncio.timeout(deadline):
                        await cursor.execute(compiled.sql, bound)
                    described = [(c.name, c.type_code) for c in cursor.description or []]
                    names = await self._names(conn, [oid for _, oid in described])
                    columns = [(name, oid, names[oid]) for name, oid in described]
                    while True:
                        phase = "query"
                        want = min(batch_rows, limits.row_limit - sent + 1)
                        async with asyncio.timeout(deadline):
                            rows = list(await cursor.fetchmany(want)) if want > 0 else []
                        phase = "check"
                        await self._tripwire(conn, facility_id)
                        truncated = sent + len(rows) > limits.row_limit
                        if truncated:
                            del rows[limits.row_limit - sent :]
                        last = truncated or len(rows) < want
                        if rows or (last and sent == 0):
                            yield _batch_frame(columns, rows, truncated)
                        sent += len(rows)
                        if last:
                            break
                except (psycopg.Error, asyncio.CancelledError) as error:
                    await driver_failed(conn, driver, error)
                    raise
                finally:
                    if not driver.closed and not driver.broken:
                        await cursor.close()
                await conn.rollback()
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"the data source did not answer within {deadline:g} s",
                reason="QUERY_TIMEOUT",
                metadata={"timeout_seconds": f"{limits.timeout_seconds:g}"},
            ) from exc
        except sa_exc.TimeoutError as exc:
            raise ResourceExhausted(
                "every connection to the data source is busy; retry later", reason="DATA_SOURCE_BUSY"
            ) from exc
        except sa_exc.DBAPIError as exc:
            mapped = _translate(exc.orig, phase, limits)
            if mapped is None:
                raise
            raise mapped from exc
        except psycopg.Error as exc:
            mapped = _translate(exc, phase, limits)
            if mapped is None:
                raise
            raise mapped from exc

    async def _tripwire(self, conn: AsyncConnection, facility_id: str) -> None:
        self._check_settings(tuple((await conn.execute(_TRIPWIRE)).one()), facility_id)

    def _check_settings(self, row: Sequence[object], facility_id: str) -> None:
        """The tripwire's row, read after the query in its transaction."""
        facility, current_user, session_user, read_only = row
        expected_user = self._role if self._role is not None else session_user
        if facility != facility_id or current_user != expected_user or read_only != "on":
            raise PermissionDenied(
                "the query changed its execution settings (facility, role or read-only mode)",
                reason="QUERY_SETTINGS_CHANGED",
            )

    async def _names(self, conn: AsyncConnection, oids: Sequence[int]) -> dict[int, str]:
        names: dict[int, str] = {}
        unknown: list[int] = []
        for oid in oids:
            name = type_name_for(oid) or self._type_names.get(oid)
            if name is None:
                unknown.append(oid)
            else:
                names[oid] = name
        if unknown:
            result = await conn.execute(_TYPE_NAMES, {"oids": sorted(set(unknown))})
            for row in result:
                found_oid, found_name = int(row[0]), str(row[1])
                self._type_names[found_oid] = names[found_oid] = found_name
            for oid in unknown:
                names.setdefault(oid, "unknown")  # a type dropped while the query ran
        return names


def _batch_frame(columns: Sequence[tuple[str, int, str]], rows: list[Sequence[object]], truncated: bool) -> DataFrame:
    try:
        return build_frame(columns, rows, truncated)
    except UnrepresentableValue as exc:
        raise InvalidArgument(
            f"the result cannot be carried exactly: {exc}; cast the column to text",
            reason="QUERY_RESULT_UNREPRESENTABLE",
            metadata={"column": exc.column},
        ) from exc


def _bind(compiled: CompiledSQL, params: Mapping[str, object], facility_id: str) -> dict[str, object]:
    bound: dict[str, object] = {}
    missing: list[str] = []
    for name in compiled.names:
        if name == FACILITY_PARAMETER:
            bound[name] = facility_id  # always the caller's facility, whatever `params` says
        elif name in params:
            bound[name] = params[name]
        else:
            missing.append(name)
    if missing:
        raise InvalidArgument(
            f"the query uses parameters without values: {', '.join(missing)}",
            violations=[
                FieldViolation(f"parameter_values.{name}", "the query uses this parameter; give it a value")
                for name in missing
            ],
            reason="QUERY_PARAMETER_MISSING",
        )
    return bound


class _QueryFailed(Exception):
    """The query's own statements failed (the setup before them went through)."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


async def _fetch(
    driver: psycopg.AsyncConnection[Any],
    setup: str,
    settings: dict[str, object],
    sql: str,
    params: dict[str, object],
    size: int,
) -> tuple[list[tuple[str, int]], list[Sequence[object]], Sequence[object]]:
    """BEGIN, the settings, the query under a LIMIT of `size`, the tripwire (what the settings
    are after the query) and ROLLBACK in one round trip: a pipeline, which also always speaks the
    extended protocol, so stacked statements are refused even without parameters. Returns the
    columns, the rows and the tripwire's row. Raises _QueryFailed when the settings went through
    and the query failed (the pipeline then skips the tripwire and the ROLLBACK).

    Not a cursor (DECLARE and FETCH, as before): PostgreSQL plans a cursor for its first rows and
    never in parallel, and an aggregate over 300,000 rows behind the facility policy ran 1.6x as
    long as DECLARE/FETCH as the same statement run plainly (75 against 45 ms). The subquery
    keeps the query's order, refuses data-modifying CTEs as DECLARE did, and its LIMIT bounds what
    is transferred; `sql` is the driver form (comments blanked, no trailing semicolon), so nothing
    in it reaches past the parenthesis."""
    settle, fetch, check, end = driver.cursor(), driver.cursor(), driver.cursor(), driver.cursor()
    try:
        async with driver.pipeline():
            await settle.execute(setup, settings, prepare=False)
            await fetch.execute(f"SELECT * FROM ({sql}\n) AS {_ROWS_NAME} LIMIT {int(size)}", params, prepare=False)
            await check.execute(_TRIPWIRE_DRIVER, prepare=False)
            # Nothing of the transaction is kept: ended in the same round trip (the pool's reset
            # then finds the connection idle and sends nothing).
            await end.execute("ROLLBACK", prepare=False)
    except psycopg.Error as error:
        if settle.pgresult is not None:  # the settings' result arrived: what failed came after
            raise _QueryFailed(error) from error
        raise
    description = fetch.description or []
    # This cursor only (the pooled connection is untouched), before its rows are loaded.
    register_frame_loaders(fetch.adapters, [column.type_code for column in description])
    rows: list[Sequence[object]] = list(await fetch.fetchall())
    after = await check.fetchone()
    if after is None:
        raise RuntimeError("the tripwire returned no row")
    return [(column.name, column.type_code) for column in description], rows, after


def _message(error: psycopg.Error) -> str:
    primary = error.diag.message_primary or str(error) or type(error).__name__
    hint = error.diag.message_hint
    return f"{primary} (hint: {hint})" if hint else primary


def _translate(error: BaseException | None, phase: str, limits: ExecutionLimits) -> TesseraError | None:
    """The domain error for a driver error, or None to let it propagate (a bug: INTERNAL).

    Any phase: query_canceled (57014: statement_timeout) -> DeadlineExceeded QUERY_TIMEOUT;
    connection failures, shutdowns, too_many_connections -> Unavailable DATA_SOURCE_UNAVAILABLE.
    The query's own phase only (errors the caller's SQL or values caused):
    read_only_sql_transaction (25006) -> FailedPrecondition QUERY_NOT_READ_ONLY (the SQL passed
    the save-time checks yet writes, e.g. through a function); insufficient_privilege (42501) ->
    PermissionDenied QUERY_PRIVILEGE (the reader role may not read that); serialization failures
    and deadlocks (40001: a hot standby's recovery conflict, 40P01) -> Unavailable QUERY_CONFLICT;
    insufficient resources (class 53) -> ResourceExhausted QUERY_RESOURCES; internal errors
    (class XX) and system errors (58) propagate; every other SQLSTATE (syntax 42601, undefined
    column 42703 or table 42P01, division_by_zero 22012, invalid input 22P02, ...) ->
    InvalidArgument QUERY_FAILED with PostgreSQL's message; a value the driver cannot send (a
    NUL character in a string) -> InvalidArgument QUERY_PARAMETER_INVALID."""
    if not isinstance(error, psycopg.Error):
        return None
    state = error.sqlstate or ""
    metadata = {"sqlstate": state} if state else {}
    if isinstance(error, psycopg.errors.QueryCanceled):
        return DeadlineExceeded(
            f"the query ran longer than its {limits.timeout_seconds:g} s timeout",
            reason="QUERY_TIMEOUT",
            metadata={**metadata, "timeout_seconds": f"{limits.timeout_seconds:g}"},
        )
    if (
        state.startswith("08")
        or state in _UNAVAILABLE_STATES
        or (not state and isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)))
    ):
        return Unavailable(
            f"the data source is unavailable: {_message(error)}", reason="DATA_SOURCE_UNAVAILABLE", metadata=metadata
        )
    if phase != "query":
        return None
    if state == "25006":
        return FailedPrecondition(
            f"the query tried to write: {_message(error)}", reason="QUERY_NOT_READ_ONLY", metadata=metadata
        )
    if state == "42501":
        return PermissionDenied(f"the query is not allowed: {_message(error)}", reason="QUERY_PRIVILEGE")
    if state in _CONFLICT_STATES:
        return Unavailable(
            f"the query conflicted with another operation; retry: {_message(error)}",
            reason="QUERY_CONFLICT",
            metadata=metadata,
        )
    if state.startswith("53"):
        return ResourceExhausted(
            f"the data source ran out of resources: {_message(error)}", reason="QUERY_RESOURCES", metadata=metadata
        )
    if state.startswith(("XX", "58")):
        return None
    if state:
        return InvalidArgument(f"the query failed: {_message(error)}", reason="QUERY_FAILED", metadata=metadata)
    if isinstance(error, psycopg.DataError):
        return InvalidArgument(f"a parameter value cannot be sent: {_message(error)}", reason="QUERY_PARAMETER_INVALID")
    return None
