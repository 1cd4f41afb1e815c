"""QueryExecutor on the real PostgreSQL: every type round-trips exactly (compared value by value
with a direct psycopg query), read-only transactions, statement timeouts that leave the pooled
connection healthy, the row cap, facility scoping (bound parameter and RLS), the reader role,
bound values that stay values, and errors mapped to the caller's fault or the data source's."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dashboard.v1 import common_pb2 as c
from server.db.engine import make_engine
from server.db.migrate import sync_url
from server.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from server.queries.execute import ExecutionLimits, QueryExecutor, compile_placeholders
from server.queries.frame import frame_to_rows
from tests.harness.cancel import cancel_twice_while_running, pool_errors

READER = "tessera_reader"
LIMITS = ExecutionLimits(timeout_seconds=10, row_limit=10_000)
FACILITY = "fac-a"


def libpq(url: str) -> str:
    return sync_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="module")
def dsn(migrated: str) -> str:
    return libpq(migrated)


@pytest.fixture(scope="module")
def schema(dsn: str) -> Iterator[str]:
    """A schema of this module's own: a table holding every type, an RLS table, a table the
    reader may not read, a sequence and functions that write."""
    s = f"qx_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"DO $$ BEGIN CREATE ROLE {READER} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        conn.execute(f"CREATE SCHEMA {s}")
        conn.execute(f"CREATE TYPE {s}.mood AS ENUM ('sad', 'ok', 'happy')")
        conn.execute(
            f"""CREATE TABLE {s}.every_type (
                id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric,
                n_scaled numeric(30, 10), t text, vc varchar(20), bp char(5), b bool, d date,
                ts timestamp, tstz timestamptz, j json, jb jsonb, u uuid, by bytea, iv interval,
                arr int[], m {s}.mood)"""
        )
        conn.execute(
            f"""INSERT INTO {s}.every_type VALUES
            (1, 32767, 2147483647, 9223372036854775807, 3.14, 0.1,
             123456789012345678901234567890.123456789012345678901234567890, 12.34,
             'héllo ✓ "quote" ''single'' \\ back', 'varchar', 'ab', true, '2024-02-29',
             '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.999999+05:30',
             '{{"b": [1, 2.5, "x"], "a": {{"z": null}}}}', '{{"b": [1, 2.5, "x"], "a": {{"z": null}}}}',
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10', '1 year 2 mons 3 days 04:05:06.789',
             '{{1,NULL,3}}', 'happy'),
            (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL, NULL, NULL, NULL, NULL, NULL, NULL),
            (3, -32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity', 'NaN', -0.0000000001,
             '', '', '', false, '1970-01-01', '1970-01-01 00:00:00', '1969-12-31 23:59:59.999999+00',
             '[]', '{{"big": 12345678901234567890.12345678901234567890, "e": 1e-7}}',
             '00000000-0000-0000-0000-000000000000', '', '-1 days +00:00:00.000001', '{{}}', 'sad'),
            (4, 0, 0, 0, 'Infinity', 1e308, 'Infinity', 99999999999999999999.9999999999, 'z', 'z', 'z',
             true, '0001-01-01', '9999-12-31 23:59:59.999999', '0001-01-01 00:00:00+00', '"s"', 'null',
             'ffffffff-ffff-ffff-ffff-ffffffffffff', '\\x00', '-178000000 years', '{{-1}}', 'ok')"""
        )
        conn.execute(f"CREATE TABLE {s}.rls_data (facility_id text NOT NULL, v int NOT NULL)")
        conn.execute(f"INSERT INTO {s}.rls_data VALUES ('fac-a', 1), ('fac-a', 2), ('fac-b', 3)")
        conn.execute(f"ALTER TABLE {s}.rls_data ENABLE ROW LEVEL SECURITY")
        conn.execute(
            f"CREATE POLICY by_facility ON {s}.rls_data FOR SELECT TO {READER}"
            " USING (facility_id = current_setting('tessera.facility_id', true))"
        )
        conn.execute(f"CREATE TABLE {s}.secret (v int)")
        conn.execute(f"CREATE TABLE {s}.writes (v int)")
        conn.execute(f"CREATE SEQUENCE {s}.counter")
        conn.execute(f"CREATE FUNCTION {s}.bump() RETURNS bigint LANGUAGE sql AS $$ SELECT nextval('{s}.counter') $$")
        conn.execute(
            f"CREATE FUNCTION {s}.log_write() RETURNS int LANGUAGE plpgsql AS"
            f" $$ BEGIN INSERT INTO {s}.writes VALUES (1); RETURN 1; END $$"
        )
        conn.execute(f"GRANT USAGE ON SCHEMA {s} TO {READER}")
        conn.execute(f"GRANT SELECT ON {s}.every_type, {s}.rls_data TO {READER}")
        # Only read-only mode may stop these writes, not a missing privilege:
        conn.execute(f"GRANT INSERT, SELECT ON {s}.writes TO {READER}")
        conn.execute(f"GRANT USAGE, UPDATE, SELECT ON SEQUENCE {s}.counter TO {READER}")
    yield s
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {s} CASCADE")


@pytest.fixture
async def engine(migrated: str) -> AsyncIterator[AsyncEngine]:
    """One connection, no overflow: every run reuses it, so a broken one would show. In the
    server's time zone, as the data-source engine (server/app.py)."""
    engine = make_engine(migrated, pool_size=1, max_overflow=0, time_zone=None)
    yield engine
    await engine.dispose()


@pytest.fixture
def executor(engine: AsyncEngine) -> QueryExecutor:
    return QueryExecutor(engine)


@pytest.fixture
def superuser_executor(engine: AsyncEngine) -> QueryExecutor:
    return QueryExecutor(engine, role=None)


async def rows_of(executor: QueryExecutor, sql: str, params: dict[str, object] | None = None, **kw: object) -> list:
    result = await executor.run(sql, params or {}, facility_id=str(kw.get("facility", FACILITY)), limits=LIMITS)
    return frame_to_rows(result.frame)


def unchanged(dsn: str, schema: str) -> tuple[int, int, int, bool]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"SELECT (SELECT count(*) FROM {schema}.every_type), (SELECT count(*) FROM {schema}.writes),"
            f" last_value, is_called FROM {schema}.counter"
        ).fetchone()
    assert row is not None
    return row


# --- every type, exactly -----------------------------------------------------------------------


def same(actual: object, expected: object) -> bool:
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    if isinstance(expected, Decimal) and expected.is_nan():
        return isinstance(actual, Decimal) and actual.is_nan()
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize("role", [READER, None])
async def test_every_type_round_trips_exactly(engine: AsyncEngine, schema: str, dsn: str, role: str | None) -> None:
    sql = f"SELECT * FROM {schema}.every_type ORDER BY id"
    result = await QueryExecutor(engine, role=role).run(sql, {}, facility_id=FACILITY, limits=LIMITS)
    frame = result.frame
    assert frame.row_count == 4 and not frame.truncated and result.elapsed_seconds > 0
    types = {column.name: (column.type, column.db_type) for column in frame.columns}
    assert types == {
        "id": (c.COLUMN_TYPE_INT64, "int4"),
        "i2": (c.COLUMN_TYPE_INT64, "int2"),
        "i4": (c.COLUMN_TYPE_INT64, "int4"),
        "i8": (c.COLUMN_TYPE_INT64, "int8"),
        "f4": (c.COLUMN_TYPE_FLOAT64, "float4"),
        "f8": (c.COLUMN_TYPE_FLOAT64, "float8"),
        "n": (c.COLUMN_TYPE_DECIMAL, "numeric"),
        "n_scaled": (c.COLUMN_TYPE_DECIMAL, "numeric"),
        "t": (c.COLUMN_TYPE_STRING, "text"),
        "vc": (c.COLUMN_TYPE_STRING, "varchar"),
        "bp": (c.COLUMN_TYPE_STRING, "bpchar"),
        "b": (c.COLUMN_TYPE_BOOL, "bool"),
        "d": (c.COLUMN_TYPE_DATE, "date"),
        "ts": (c.COLUMN_TYPE_TIMESTAMP, "timestamp"),
        "tstz": (c.COLUMN_TYPE_TIMESTAMP_TZ, "timestamptz"),
        "j": (c.COLUMN_TYPE_JSON, "json"),
        "jb": (c.COLUMN_TYPE_JSON, "jsonb"),
        "u": (c.COLUMN_TYPE_UUID, "uuid"),
        "by": (c.COLUMN_TYPE_BYTES, "bytea"),
        "iv": (c.COLUMN_TYPE_INTERVAL, "interval"),
        "arr": (c.COLUMN_TYPE_STRING, "int4[]"),
        "m": (c.COLUMN_TYPE_STRING, "mood"),
    }
    ours = frame_to_rows(frame)
    with psycopg.connect(dsn) as conn:
        cursor = conn.execute(f"SELECT *, arr::text AS arr_text FROM {schema}.every_type ORDER BY id")
        names = [column.name for column in cursor.description or []]
        direct = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        # psycopg's interval loader refuses the iso_8601 style, so PostgreSQL's text comes apart
        conn.execute("SET IntervalStyle = iso_8601")
        for row, (iv_text,) in zip(
            direct, conn.execute(f"SELECT iv::text FROM {schema}.every_type ORDER BY id"), strict=True
        ):
            row["iv_text"] = iv_text
    assert len(ours) == len(direct) == 4
    compared = 0
    for mine, theirs in zip(ours, direct, strict=True):
        for name, value in mine.items():
            # psycopg's own loaders turn interval into a timedelta (months lost) and arrays into
            # lists; PostgreSQL's text (iso_8601 IntervalStyle) is the reference for those two.
            expected = theirs[f"{name}_text"] if name in ("iv", "arr") else theirs[name]
            assert same(value, expected), (mine["id"], name, value, expected)
            compared += 1
    assert compared == 4 * 22
    # exactness beyond what Python's types would show
    numeric = frame.columns[6].string_values.values
    assert numeric[0] == "123456789012345678901234567890.123456789012345678901234567890"
    assert list(frame.columns[7].string_values.values) == [
        "12.3400000000",
        "",
        "-0.0000000001",
        "99999999999999999999.9999999999",
    ]
    assert ours[2]["jb"] == {"big": 12345678901234567890.12345678901234567890, "e": 1e-07}
    assert frame.columns[16].string_values.values[2] == '{"big":12345678901234567890.12345678901234567890,"e":1e-07}'
    assert list(frame.columns[0].nulls) == [] and list(frame.columns[1].nulls) == [False, True, False, False]


async def test_timestamps_and_dates_are_exact_against_postgresql_arithmetic(
    superuser_executor: QueryExecutor, dsn: str
) -> None:
    sql = """SELECT v::timestamptz AS tz, v::timestamp AS ts, v::date AS d,
                    (extract(epoch FROM v::timestamptz) * 1000000)::int8 AS tz_micros,
                    (extract(epoch FROM v::timestamp) * 1000000)::int8 AS ts_micros,
                    v::date - '1970-01-01'::date AS days
             FROM unnest(CAST(:values AS text[])) AS v"""
    values = [
        "2024-02-29 23:59:59.999999+05:30",
        "1969-12-31 23:59:59.999999+00",
        "0044-03-15 12:00:00.5+00 BC",
        "4714-11-24 00:00:00+00 BC",
        "12345-06-07 08:09:10.111213+00",
        "294246-12-31 23:59:59.999999+00",
    ]
    result = await superuser_executor.run(sql, {"values": values}, facility_id=FACILITY, limits=LIMITS)
    tz, ts, d, tz_micros, ts_micros, days = result.frame.columns
    assert list(tz.timestamp_values.values) == list(tz_micros.int64_values.values)
    assert list(ts.timestamp_values.values) == list(ts_micros.int64_values.values)
    assert list(d.date_values.values) == list(days.int64_values.values)


async def test_infinite_and_far_values_come_back_as_postgresql_text(superuser_executor: QueryExecutor) -> None:
    sql = """SELECT 'infinity'::date AS d1, '-infinity'::date AS d2, '0044-03-15 BC'::date AS d3,
                    '5874897-12-31'::date AS d4, 'infinity'::timestamp AS t1, '-infinity'::timestamptz AS t2,
                    '0044-03-15 12:00:00.5 BC'::timestamp AS t3, '12345-01-02 03:04:05+00'::timestamptz AS t4"""
    result = await superuser_executor.run(sql, {}, facility_id=FACILITY, limits=LIMITS)
    row = frame_to_rows(result.frame)[0]
    assert row == {
        "d1": "infinity",
        "d2": "-infinity",
        "d3": "0044-03-15 BC",
        "d4": "5874897-12-31",
        "t1": "infinity",
        "t2": "-infinity",
        "t3": "0044-03-15 12:00:00.5 BC",
        "t4": "12345-01-02 03:04:05+00",
    }
    assert result.frame.columns[0].date_values.values[0] == 2**31 - 1
    assert result.frame.columns[4].timestamp_values.values[0] == 2**63 - 1
    assert result.frame.columns[3].date_values.values[0] == 2145042905


async def test_a_timestamp_beyond_int64_microseconds_is_refused(superuser_executor: QueryExecutor) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await superuser_executor.run(
            "SELECT '294276-12-31 23:59:59'::timestamp AS last", {}, facility_id=FACILITY, limits=LIMITS
        )
    assert caught.value.reason == "QUERY_RESULT_UNREPRESENTABLE" and caught.value.metadata["column"] == "last"


async def test_type_names_come_from_pg_type_for_enums_and_their_arrays(executor: QueryExecutor, schema: str) -> None:
    result = await executor.run(
        f"SELECT 'ok'::{schema}.mood AS m, ARRAY['ok'::{schema}.mood] AS ms, '{{1}}'::int8[] AS a,"
        " '1.2.3.4'::inet AS ip, '{\"a\": 1}'::jsonb AS j",
        {},
        facility_id=FACILITY,
        limits=LIMITS,
    )
    assert [(column.db_type, column.type) for column in result.frame.columns] == [
        ("mood", c.COLUMN_TYPE_STRING),
        ("mood[]", c.COLUMN_TYPE_STRING),
        ("int8[]", c.COLUMN_TYPE_STRING),
        ("inet", c.COLUMN_TYPE_STRING),
        ("jsonb", c.COLUMN_TYPE_JSON),
    ]
    assert frame_to_rows(result.frame) == [{"m": "ok", "ms": "{ok}", "a": "{1}", "ip": "1.2.3.4", "j": {"a": 1}}]


# --- read-only ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [READER, None])
async def test_writes_through_functions_are_refused(
    engine: AsyncEngine, schema: str, dsn: str, role: str | None
) -> None:
    executor = QueryExecutor(engine, role=role)
    before = unchanged(dsn, schema)
    for sql in (f"SELECT {schema}.bump()", f"SELECT {schema}.log_write()", f"SELECT nextval('{schema}.counter')"):
        with pytest.raises(FailedPrecondition) as caught:
            await executor.run(sql, {}, facility_id=FACILITY, limits=LIMITS)
        assert caught.value.reason == "QUERY_NOT_READ_ONLY"
        assert caught.value.metadata["sqlstate"] == "25006"
        assert "read-only transaction" in caught.value.message
    assert unchanged(dsn, schema) == before


async def test_the_transaction_is_read_only(executor: QueryExecutor) -> None:
    rows = await rows_of(executor, "SELECT current_setting('transaction_read_only') AS ro")
    assert rows == [{"ro": "on"}]


@pytest.mark.parametrize(
    "sql",
    [
        "WITH gone AS (DELETE FROM {s}.every_type RETURNING id) SELECT * FROM gone",
        "WITH added AS (INSERT INTO {s}.writes VALUES (7) RETURNING v) SELECT * FROM added",
        "INSERT INTO {s}.writes VALUES (8) RETURNING v",
        "SELECT 1; DELETE FROM {s}.every_type",
        "SELECT 1; COPY (SELECT 1) TO PROGRAM 'touch /tmp/tessera-pwned'",
        "COPY (SELECT 1) TO PROGRAM 'touch /tmp/tessera-pwned'",
        "DROP TABLE {s}.every_type",
        "SELECT * FROM {s}.every_type; -- ' OR 1=1\nUPDATE {s}.every_type SET t = 'x'",
    ],
)
async def test_writing_sql_is_refused_and_changes_nothing(
    executor: QueryExecutor, schema: str, dsn: str, sql: str
) -> None:
    before = unchanged(dsn, schema)
    with pytest.raises((InvalidArgument, FailedPrecondition)) as caught:
        await executor.run(sql.format(s=schema), {}, facility_id=FACILITY, limits=LIMITS)
    assert caught.value.reason in ("QUERY_FAILED", "QUERY_NOT_READ_ONLY")
    assert unchanged(dsn, schema) == before


# --- timeouts and the pool -----------------------------------------------------------------------


async def test_a_timeout_answers_deadline_exceeded_and_the_connection_stays_healthy(
    engine: AsyncEngine, executor: QueryExecutor
) -> None:
    pid = (await rows_of(executor, "SELECT pg_backend_pid() AS pid"))[0]["pid"]
    with pytest.raises(DeadlineExceeded) as caught:
        await executor.run("SELECT pg_sleep(5)", {}, facility_id=FACILITY, limits=ExecutionLimits(0.2, 10))
    assert caught.value.reason == "QUERY_TIMEOUT" and caught.value.metadata["sqlstate"] == "57014"
    # the same (only) pooled connection answers the next run, and nothing of the run leaked into it
    assert await rows_of(executor, "SELECT pg_backend_pid() AS pid, 1 AS one") == [{"pid": pid, "one": 1}]
    async with engine.connect() as conn:
        leaked = (
            await conn.execute(
                text(
                    "SELECT current_setting('statement_timeout'), current_user::text,"
                    " coalesce(current_setting('tessera.facility_id', true), ''),"
                    " current_setting('transaction_read_only'), current_setting('IntervalStyle'),"
                    " pg_backend_pid()"
                )
            )
        ).one()
    assert tuple(leaked) == ("0", "postgres", "", "off", "postgres", pid)


async def test_a_run_cancelled_twice_leaves_no_closed_connection_to_the_pool(
    executor: QueryExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled twice (its caller gone, then the server stopping), a run interrupts psycopg's
    cancellation of the query and psycopg closes the connection: it is discarded, not handed back
    to the pool to fail its rollback with an error in the log."""
    pid = (await rows_of(executor, "SELECT pg_backend_pid() AS pid"))[0]["pid"]
    await cancel_twice_while_running(rows_of(executor, "SELECT pg_sleep(5)"), caplog)
    assert (await rows_of(executor, "SELECT pg_backend_pid() AS pid"))[0]["pid"] != pid
    assert pool_errors(caplog) == []


async def test_the_statement_timeout_is_the_limit_in_milliseconds(executor: QueryExecutor) -> None:
    result = await executor.run(
        "SELECT current_setting('statement_timeout') AS t", {}, facility_id=FACILITY, limits=ExecutionLimits(2.5, 1)
    )
    assert frame_to_rows(result.frame) == [{"t": "2500ms"}]


async def test_a_data_source_that_never_answers_hits_the_client_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = create_async_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/nothing", pool_size=1)
    try:
        executor = QueryExecutor(engine, role=None, client_grace_seconds=0.2)
        with pytest.raises(DeadlineExceeded) as caught:
            await executor.run("SELECT 1", {}, facility_id=FACILITY, limits=ExecutionLimits(0.2, 1))
        assert caught.value.reason == "QUERY_TIMEOUT"
    finally:
        await engine.dispose()
        server.close()


async def test_an_unreachable_data_source_is_unavailable() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/nothing", pool_size=1)
    try:
        with pytest.raises(Unavailable) as caught:
            await QueryExecutor(engine).run("SELECT 1", {}, facility_id=FACILITY, limits=LIMITS)
        assert caught.value.reason == "DATA_SOURCE_UNAVAILABLE"
    finally:
        await engine.dispose()


async def test_a_busy_pool_is_resource_exhausted(migrated: str) -> None:
    engine = create_async_engine(sync_url(migrated), pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        async with engine.connect():
            with pytest.raises(ResourceExhausted) as caught:
                await QueryExecutor(engine).run("SELECT 1", {}, facility_id=FACILITY, limits=LIMITS)
        assert caught.value.reason == "DATA_SOURCE_BUSY"
    finally:
        await engine.dispose()


# --- the row cap -------------------------------------------------------------------------------


async def test_the_row_cap_truncates_and_says_so(executor: QueryExecutor) -> None:
    # Rows after the cap (+1) are never produced: a fetch-everything executor would divide by zero.
    sql = "SELECT CASE WHEN g > 10001 THEN 1 / (g - g) ELSE g END AS g FROM generate_series(1, 50000) AS g"
    result = await executor.run(sql, {}, facility_id=FACILITY, limits=ExecutionLimits(10, 10_000))
    assert result.frame.row_count == 10_000 and result.frame.truncated
    values = result.frame.columns[0].int64_values.values
    assert len(values) == 10_000 and values[0] == 1 and values[-1] == 10_000


async def test_exactly_the_cap_is_not_truncated_and_zero_rows_keep_columns(executor: QueryExecutor) -> None:
    exact = await executor.run(
        "SELECT g FROM generate_series(1, 100) AS g", {}, facility_id=FACILITY, limits=ExecutionLimits(10, 100)
    )
    assert exact.frame.row_count == 100 and not exact.frame.truncated
    none = await executor.run(
        "SELECT g, 'x' AS s FROM generate_series(1, 5) AS g", {}, facility_id=FACILITY, limits=ExecutionLimits(10, 0)
    )
    assert none.frame.row_count == 0 and none.frame.truncated
    assert [column.name for column in none.frame.columns] == ["g", "s"]
    empty = await executor.run("SELECT 1 AS x WHERE false", {}, facility_id=FACILITY, limits=LIMITS)
    assert empty.frame.row_count == 0 and not empty.frame.truncated
    assert empty.frame.columns[0].WhichOneof("values") == "int64_values"


# --- facility scope, role ------------------------------------------------------------------------


async def test_the_facility_is_bound_and_set_for_the_query(executor: QueryExecutor) -> None:
    rows = await rows_of(
        executor,
        "SELECT current_setting('tessera.facility_id', true) AS setting, :facility_id AS bound",
        {"facility_id": "fac-evil"},  # a caller's value never replaces the facility
        facility="fac-a",
    )
    assert rows == [{"setting": "fac-a", "bound": "fac-a"}]


async def test_rls_and_the_bound_facility_each_keep_other_facilities_rows_out(
    executor: QueryExecutor, superuser_executor: QueryExecutor, schema: str
) -> None:
    everything = f"SELECT v FROM {schema}.rls_data ORDER BY v"
    assert await rows_of(executor, everything, facility="fac-a") == [{"v": 1}, {"v": 2}]
    assert await rows_of(executor, everything, facility="fac-b") == [{"v": 3}]
    # asking for another facility's rows by name: RLS still answers nothing
    assert (
        await rows_of(executor, f"SELECT v FROM {schema}.rls_data WHERE facility_id = 'fac-a'", facility="fac-b") == []
    )
    # without RLS (the superuser bypasses it) the bound parameter scopes the query on its own
    scoped = f"SELECT v FROM {schema}.rls_data WHERE facility_id = :facility_id ORDER BY v"
    assert await rows_of(superuser_executor, scoped, facility="fac-b") == [{"v": 3}]
    assert len(await rows_of(superuser_executor, everything, facility="fac-b")) == 3


async def test_the_reader_role_is_used_and_none_runs_as_the_login_role(
    executor: QueryExecutor, superuser_executor: QueryExecutor
) -> None:
    assert await rows_of(executor, "SELECT current_user::text AS u") == [{"u": READER}]
    assert await rows_of(superuser_executor, "SELECT current_user::text AS u") == [{"u": "postgres"}]
    assert executor.role == READER and superuser_executor.role is None


async def test_what_the_reader_may_not_read_is_permission_denied(executor: QueryExecutor, schema: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        await executor.run(f"SELECT * FROM {schema}.secret", {}, facility_id=FACILITY, limits=LIMITS)
    assert caught.value.reason == "QUERY_PRIVILEGE" and "permission denied" in caught.value.message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT set_config('tessera.facility_id', 'fac-b', true) AS x",
        "SELECT set_config('role', 'postgres', true) AS x",
        "WITH s AS MATERIALIZED (SELECT set_config('tessera.facility_id', 'fac-b', true)) SELECT * FROM s",
    ],
)
async def test_a_query_that_changes_its_settings_gets_no_result(executor: QueryExecutor, sql: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        await executor.run(sql, {}, facility_id=FACILITY, limits=LIMITS)
    assert caught.value.reason == "QUERY_SETTINGS_CHANGED"


def test_role_names_are_validated(engine: AsyncEngine) -> None:
    for bad in ("Reader", "reader; drop table x", "", "1reader", 'r"x'):
        with pytest.raises(ValueError, match="role"):
            QueryExecutor(engine, role=bad)


# --- values stay values --------------------------------------------------------------------------

INJECTIONS = [
    "' OR 1=1 --",
    "'; DROP TABLE {s}.every_type; --",
    "Robert'); DELETE FROM {s}.every_type;--",
    "x' UNION SELECT current_user --",
    "\u02bc OR 1=1 --",  # modifier letter apostrophe
    "\u2019; DROP TABLE {s}.every_type; --",  # right single quotation mark
    "\uff07 OR \uff071\uff07=\uff071",  # fullwidth apostrophes
    "$$; SELECT pg_sleep(10); $$",
    "1; SELECT pg_sleep(10)",
    "/* */ SELECT 1 /*",
    "\\'; DROP TABLE {s}.every_type; --",
    "%(facility_id)s %s %% :facility_id",
    "COPY (SELECT 1) TO PROGRAM 'touch /tmp/tessera-pwned'",
    "'); SELECT set_config('tessera.facility_id', 'fac-b', false); --",
    "E'\\x27 OR 1=1",
]


async def test_injection_strings_come_back_verbatim_and_change_nothing(
    executor: QueryExecutor, schema: str, dsn: str
) -> None:
    before = unchanged(dsn, schema)
    for template in INJECTIONS:
        value = template.format(s=schema)
        rows = await rows_of(
            executor,
            f"SELECT CAST(:v AS text) AS v, :v = :v AS same, (SELECT count(*) FROM {schema}.every_type) AS n,"
            " current_setting('tessera.facility_id') AS f",
            {"v": value},
        )
        assert rows == [{"v": value, "same": True, "n": 4, "f": FACILITY}]
    # every parameter type, each bound rather than spliced
    typed = await rows_of(
        executor,
        "SELECT :i + 1 AS i, :f * 2 AS f, NOT :b AS b, :d + 1 AS d, :ts AS ts, cardinality(CAST(:l AS text[])) AS l,"
        " CAST(:l AS text[]) AS items, :dec AS dec",
        {
            "i": 41,
            "f": 0.25,
            "b": False,
            "d": dt.date(2024, 2, 28),
            "ts": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
            "l": ["' OR 1=1 --", "a,b", '{"x"}'],
            "dec": Decimal("1.10"),
        },
    )
    assert typed == [
        {
            "i": 42,
            "f": 0.5,
            "b": True,
            "d": dt.date(2024, 2, 29),
            "ts": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
            "l": 3,
            "items": '{"\' OR 1=1 --","a,b","{\\"x\\"}"}',
            "dec": Decimal("1.10"),
        }
    ]
    assert unchanged(dsn, schema) == before


async def test_a_nul_character_is_an_invalid_parameter(executor: QueryExecutor) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await executor.run("SELECT :v::text AS v", {"v": "a\x00b"}, facility_id=FACILITY, limits=LIMITS)
    assert caught.value.reason == "QUERY_PARAMETER_INVALID"


async def test_placeholders_inside_literals_and_comments_are_text(executor: QueryExecutor) -> None:
    rows = await rows_of(
        executor,
        "SELECT '{\"a\":1}'::jsonb AS j, '%:v%' AS lit, $q$:v$q$ AS dollar, \"col:v\".x AS quoted, :v AS v,"
        " 'a%b' AS pct -- :nope\n FROM (SELECT 1 AS x) AS \"col:v\" /* :neither */",
        {"v": "bound"},
    )
    assert rows == [{"j": {"a": 1}, "lit": "%:v%", "dollar": ":v", "quoted": 1, "v": "bound", "pct": "a%b"}]
    assert await rows_of(executor, "SELECT 'a%b' AS pct, 'x'::text AS t") == [{"pct": "a%b", "t": "x"}]


def test_compile_placeholders() -> None:
    compiled = compile_placeholders("SELECT :a, x::int, arr[1:n], E'\\' :b', :a, '%' -- :c\n:d")
    assert compiled.names == ("a", "d")
    # Comments become a space (sql_check.to_pyformat), so nothing in them reaches the driver.
    assert compiled.sql == "SELECT %(a)s, x::int, arr[1:n], E'\\' :b', %(a)s, '%%'  \n%(d)s"


async def test_missing_parameters_are_named_and_extra_ones_ignored(executor: QueryExecutor) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await executor.run("SELECT :a AS a, :b AS b", {"a": 1}, facility_id=FACILITY, limits=LIMITS)
    assert caught.value.reason == "QUERY_PARAMETER_MISSING"
    assert [v.field for v in caught.value.violations] == ["parameter_values.b"]
    assert await rows_of(executor, "SELECT :a AS a", {"a": 1, "unused": 2}) == [{"a": 1}]


# --- the caller's errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "sqlstate"),
    [
        ("SELECT FROM WHERE", "42601"),
        ("SELECT nope FROM {s}.every_type", "42703"),
        ("SELECT * FROM {s}.nope", "42P01"),
        ("SELECT 1 / 0", "22012"),
        ("SELECT 'x'::int", "22P02"),
        ("SELECT no_such_function(1)", "42883"),
    ],
)
async def test_sql_errors_are_the_callers(executor: QueryExecutor, schema: str, sql: str, sqlstate: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await executor.run(sql.format(s=schema), {}, facility_id=FACILITY, limits=LIMITS)
    assert caught.value.reason == "QUERY_FAILED" and caught.value.metadata == {"sqlstate": sqlstate}
    assert caught.value.message.startswith("the query failed: ")
    # and the connection is fine afterwards
    assert await rows_of(executor, "SELECT 1 AS one") == [{"one": 1}]


def test_limits_are_validated() -> None:
    for timeout, rows in ((0, 1), (-1, 1), (math.inf, 1), (math.nan, 1), (1, -1)):
        with pytest.raises(ValueError):
            ExecutionLimits(timeout, rows)
    assert ExecutionLimits(0.0001, 0).statement_timeout_ms == 1
