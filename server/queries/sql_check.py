"""Save-time checks of a query's SQL: one read-only statement, its `:name` placeholders, and where
anything wrong is (1-based line and column).

Nothing here executes SQL. These checks are defence in depth, not the boundary: every run also
happens in a READ ONLY transaction, with a statement_timeout, as a least-privilege role, over a
protocol that refuses stacked statements (see `server/queries/execute.py`). What this module adds
is an early, precise answer ("line 3, column 12: pg_sleep() is not allowed") and a refusal of
things that a read-only transaction would still allow (sleeping, advisory locks, reading server
files, running SQL given as text, changing settings).

Two independent readings of the text must both accept it:

1. A lexer written after PostgreSQL's own (`src/backend/parser/scan.l`): string literals in all
   their forms (standard with `''`, E'' with backslash escapes, B''/X''/N''/U&''), dollar quotes
   (`$tag$ … $tag$`; a `$` inside a name is part of the name), quoted identifiers, nested block
   comments and `--` comments. It decides what is code and what is data, so it is the authority
   on statement boundaries (`;`), placeholders and positions, and it refuses by itself: a second
   statement, calls to denied functions (whatever their case, quoting or schema), INTO, row locks
   (FOR UPDATE/SHARE…), data-modifying statements inside WITH, positional `$1` parameters and
   `U&"…"` identifiers (which could spell any function name in escapes). It assumes
   `standard_conforming_strings = on` (the default since PostgreSQL 9.1): in a plain '…' string a
   backslash is an ordinary character.
2. sqlglot (postgres dialect) parses the text into a tree: the statement must be a SELECT, WITH …
   SELECT, VALUES or a set operation (UNION/INTERSECT/EXCEPT) of them, and no node anywhere in the
   tree may write or change state (INSERT/UPDATE/DELETE/MERGE also inside a CTE, DDL, COPY, SET,
   SELECT … INTO, locking clauses, commands sqlglot only knows as opaque `Command`s). Text that
   sqlglot cannot parse is refused with its line and column: what cannot be checked is not saved.

Placeholders are `:name` (`[A-Za-z_][A-Za-z0-9_]*`) in code — not inside strings, quoted names or
comments, not the `::` of a cast (`:d::date` is the placeholder `d` cast to date) and not after a
character of a name or number (`arr[1:n]` is an array slice). sqlglot reads them the same way;
where the two readings disagree (`arr[1 :n]`) the text is refused as ambiguous. `:facility_id` is
reserved: the server always binds it to the caller's facility.

Binding must use the same reading: `to_pyformat` turns checked SQL into the driver's `%(name)s`
form from this lexer's tokens (SQLAlchemy's `text()` uses a regular expression instead, which also
"finds" placeholders inside strings and comments and does not see `:d::date`).
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from dashboard.v1 import query_pb2

__all__ = [
    "FACILITY_PLACEHOLDER",
    "PlaceholderUse",
    "SqlAnalysis",
    "SqlIssue",
    "analyze",
    "check_parameters",
    "denied_function_reason",
    "to_pyformat",
]

FACILITY_PLACEHOLDER = "facility_id"
"""Supplied by the server (the caller's facility scope): always allowed, never declarable."""

_DATE_RANGE = query_pb2.PARAMETER_TYPE_DATE_RANGE
_RANGE_SUFFIXES = ("_start", "_end")


@dataclass(frozen=True)
class SqlIssue:
    """A problem in the SQL. `line` and `column` are 1-based; 0 when unknown."""

    message: str
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class PlaceholderUse:
    """One occurrence of a `:name` placeholder; `line`/`column` (1-based) point at the colon."""

    name: str
    line: int
    column: int


@dataclass(frozen=True)
class SqlAnalysis:
    """What `analyze` found. `placeholders`: distinct names in order of first use.
    `output_columns`: the outer query's column names when statically known (None for `*` or an
    expression whose PostgreSQL name cannot be told without the database). `uses`: every
    placeholder occurrence, in text order."""

    placeholders: tuple[str, ...]
    issues: tuple[SqlIssue, ...]
    output_columns: tuple[str, ...] | None = None
    uses: tuple[PlaceholderUse, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.issues


# --------------------------------------------------------------------------------------------
# Functions that a read-only transaction would still let a query call.

_DENIED_EXACT: dict[str, str] = {
    "set_config": "it changes server settings (current_setting() may be used to read them)",
    "pg_stat_file": "it reads the server's file system",
    "pg_logdir_ls": "it reads the server's file system",
    "loread": "it reads large objects",
    "lowrite": "it writes large objects",
    "pg_cancel_backend": "it acts on other server processes",
    "pg_terminate_backend": "it acts on other server processes",
    "pg_signal_backend": "it acts on other server processes",
    "pg_reload_conf": "it administers the server",
    "pg_rotate_logfile": "it administers the server",
    "pg_promote": "it administers the server",
    "pg_log_backend_memory_contexts": "it administers the server",
    "pg_wal_replay_pause": "it administers the server",
    "pg_wal_replay_resume": "it administers the server",
    "pg_switch_wal": "it administers the server",
    "pg_start_backup": "it administers the server",
    "pg_stop_backup": "it administers the server",
    "pg_export_snapshot": "it administers the server",
    "pg_import_system_collations": "it writes to the catalog",
    "pg_sync_replication_slots": "it administers replication",
    "pg_log_standby_snapshot": "it writes to the WAL",
    "pg_stat_statements_reset": "it resets statistics",
    "pg_prewarm": "it loads relations into the buffer cache",
    "brin_desummarize_range": "it changes an index",
    "gin_clean_pending_list": "it changes an index",
    "txid_current": "it assigns a transaction id (a write)",
    "pg_current_xact_id": "it assigns a transaction id (a write)",
    "nextval": "it uses sequence state",
    "setval": "it uses sequence state",
    "currval": "it uses sequence state",
    "lastval": "it uses sequence state",
    "pg_notify": "it sends notifications",
    "ts_stat": "it runs SQL given as text, which cannot be checked",
    "ts_rewrite": "it can run SQL given as text, which cannot be checked",
    "connectby": "it runs SQL built from text, which cannot be checked",
}

_DENIED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("pg_sleep", "it makes the server sleep"),
    ("pg_read_", "it reads the server's file system"),
    ("pg_ls_", "it reads the server's file system"),
    ("pg_file_", "it writes the server's file system"),
    ("lo_", "it reads or writes large objects and server files"),
    ("dblink", "it connects to other databases"),
    ("postgres_fdw_", "it manages connections to other databases"),
    ("pg_advisory", "it takes advisory locks"),
    ("pg_try_advisory", "it takes advisory locks"),
    ("query_to_", "it runs SQL given as text, which cannot be checked"),
    ("cursor_to_", "it reads cursors by name"),
    ("table_to_", "it reads tables named in text"),
    ("schema_to_", "it reads schemas named in text"),
    ("database_to_", "it reads the whole database"),
    ("crosstab", "it runs SQL given as text, which cannot be checked"),
    ("pg_create_", "it administers the server"),
    ("pg_drop_", "it administers the server"),
    ("pg_copy_", "it administers replication"),
    ("pg_replication_", "it administers replication"),
    ("pg_logical_", "it administers replication"),
    ("pg_backup_", "it administers the server"),
    ("pg_stat_reset", "it resets statistics"),
    ("pg_restore_", "it changes planner statistics"),
    ("pg_clear_", "it changes planner statistics"),
    ("brin_summarize_", "it changes an index"),
)


def denied_function_reason(name: str) -> str | None:
    """Why a function may not be called from a query, or None when it may. `name` is the last
    part of a possibly qualified name; the comparison ignores case."""
    lowered = name.lower()
    reason = _DENIED_EXACT.get(lowered)
    if reason is not None:
        return reason
    for prefix, why in _DENIED_PREFIXES:
        if lowered.startswith(prefix):
            return why
    return None


# --------------------------------------------------------------------------------------------
# The lexer: PostgreSQL's reading of what is code, what is data and what is a comment.


class _Kind(Enum):
    WORD = "word"  # an unquoted name or keyword; value is ASCII-lowercased
    QUOTED = "quoted"  # a "quoted" name; value is its content
    STRING = "string"  # any string literal, dollar quotes included
    NUMBER = "number"
    PLACEHOLDER = "placeholder"  # value is the name, without the colon
    PARAM = "param"  # $1
    SEMICOLON = "semicolon"
    OP = "op"  # any other character (or `::`)


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    value: str
    start: int
    end: int  # exclusive


@dataclass(frozen=True)
class _Lexed:
    tokens: tuple[_Token, ...]
    comments: tuple[tuple[int, int], ...]  # (start, end exclusive)
    issues: tuple[tuple[str, int], ...]  # (message, offset)


_WHITESPACE = frozenset(" \t\n\r\f\v")
_DOLLAR_DELIMITER = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z_0-9\u0080-\U0010ffff]*)?\$")
_PLACEHOLDER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_LOOKALIKE_QUOTES = frozenset(
    "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2032\u2033\u2035\u2036\uff07\uff02`\u00b4"
)


def _ident_start(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z") or c >= "\x80"


def _ident_cont(c: str) -> bool:
    return _ident_start(c) or ("0" <= c <= "9") or c == "$"


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


class _Lexer:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.n = len(sql)
        self.tokens: list[_Token] = []
        self.comments: list[tuple[int, int]] = []
        self.issues: list[tuple[str, int]] = []

    def run(self) -> _Lexed:
        sql, n = self.sql, self.n
        i = 0
        while i < n:
            c = sql[i]
            nxt = sql[i + 1] if i + 1 < n else ""
            if c in _WHITESPACE:
                i += 1
            elif c == "-" and nxt == "-":
                i = self._line_comment(i)
            elif c == "/" and nxt == "*":
                i = self._block_comment(i)
            elif c == "'":
                i = self._quoted_string(i, i + 1, backslash_escapes=False)
            elif c in "eE" and nxt == "'":
                i = self._quoted_string(i, i + 2, backslash_escapes=True)
            elif c in "nN" and nxt == "'":
                i = self._quoted_string(i, i + 2, backslash_escapes=False)
            elif c in "bBxX" and nxt == "'":
                i = self._bit_string(i)
            elif c in "uU" and nxt == "&" and i + 2 < n and sql[i + 2] == "'":
                i = self._quoted_string(i, i + 3, backslash_escapes=False)
            elif c in "uU" and nxt == "&" and i + 2 < n and sql[i + 2] == '"':
                self.issues.append(
                    ('Unicode-escaped names (U&"…") are not allowed: write the name plainly or in double quotes', i)
                )
                i = self._quoted_identifier(i, i + 2)
            elif c == '"':
                i = self._quoted_identifier(i, i)
            elif c == "$":
                i = self._dollar(i)
            elif _ident_start(c):
                j = i + 1
                while j < n and _ident_cont(sql[j]):
                    j += 1
                self.tokens.append(_Token(_Kind.WORD, sql[i:j].translate(_ASCII_LOWER), i, j))
                i = j
            elif _is_digit(c) or (c == "." and _is_digit(nxt)):
                i = self._number(i)
            elif c == ":":
                i = self._colon(i)
            elif c == ";":
                self.tokens.append(_Token(_Kind.SEMICOLON, ";", i, i + 1))
                i += 1
            else:
                self.tokens.append(_Token(_Kind.OP, c, i, i + 1))
                i += 1
        return _Lexed(tuple(self.tokens), tuple(self.comments), tuple(self.issues))

    def _line_comment(self, i: int) -> int:
        j = i + 2
        while j < self.n and self.sql[j] not in "\r\n":
            j += 1
        self.comments.append((i, j))
        return j

    def _block_comment(self, i: int) -> int:
        # PostgreSQL's block comments nest: /* a /* b */ still a comment */.
        sql, n = self.sql, self.n
        depth, j = 1, i + 2
        while j < n:
            if sql.startswith("/*", j):
                depth, j = depth + 1, j + 2
            elif sql.startswith("*/", j):
                depth, j = depth - 1, j + 2
                if depth == 0:
                    self.comments.append((i, j))
                    return j
            else:
                j += 1
        self.issues.append(("unterminated /* comment", i))
        self.comments.append((i, n))
        return n

    def _quoted_string(self, start: int, body: int, *, backslash_escapes: bool) -> int:
        sql, n = self.sql, self.n
        j = body
        while j < n:
            c = sql[j]
            if backslash_escapes and c == "\\":
                j += 2
            elif c == "'":
                if j + 1 < n and sql[j + 1] == "'":
                    j += 2
                else:
                    self.tokens.append(_Token(_Kind.STRING, sql[body:j], start, j + 1))
                    return j + 1
            else:
                j += 1
        self.issues.append(("unterminated string literal", start))
        self.tokens.append(_Token(_Kind.STRING, sql[body:], start, n))
        return n

    def _bit_string(self, start: int) -> int:
        end = self.sql.find("'", start + 2)
        if end < 0:
            self.issues.append(("unterminated bit-string literal", start))
            self.tokens.append(_Token(_Kind.STRING, self.sql[start + 2 :], start, self.n))
            return self.n
        self.tokens.append(_Token(_Kind.STRING, self.sql[start + 2 : end], start, end + 1))
        return end + 1

    def _quoted_identifier(self, start: int, quote: int) -> int:
        sql, n = self.sql, self.n
        j = quote + 1
        while j < n:
            if sql[j] == '"':
                if j + 1 < n and sql[j + 1] == '"':
                    j += 2
                    continue
                value = sql[quote + 1 : j].replace('""', '"')
                if not value:
                    self.issues.append(("zero-length quoted name", start))
                self.tokens.append(_Token(_Kind.QUOTED, value, start, j + 1))
                return j + 1
            j += 1
        self.issues.append(("unterminated quoted name", start))
        self.tokens.append(_Token(_Kind.QUOTED, sql[quote + 1 :], start, n))
        return n

    def _dollar(self, i: int) -> int:
        sql, n = self.sql, self.n
        match = _DOLLAR_DELIMITER.match(sql, i)
        if match is not None:
            delimiter = match.group(0)
            end = sql.find(delimiter, match.end())
            if end < 0:
                self.issues.append((f"unterminated dollar-quoted string (no closing {delimiter})", i))
                self.tokens.append(_Token(_Kind.STRING, sql[match.end() :], i, n))
                return n
            self.tokens.append(_Token(_Kind.STRING, sql[match.end() : end], i, end + len(delimiter)))
            return end + len(delimiter)
        j = i + 1
        while j < n and _is_digit(sql[j]):
            j += 1
        if j > i + 1:
            self.tokens.append(_Token(_Kind.PARAM, sql[i:j], i, j))
            return j
        self.tokens.append(_Token(_Kind.OP, "$", i, i + 1))
        return i + 1

    def _number(self, i: int) -> int:
        # Digits, a fraction, an exponent, then any letters (0x1F, 1_000, and the "trailing junk"
        # PostgreSQL refuses). What matters here is only that a number never swallows a quote,
        # a `$`, a comment or a `:`.
        sql, n = self.sql, self.n
        j = i
        while j < n:
            c = sql[j]
            if _is_digit(c) or c == "_" or (c.isascii() and c.isalpha()):
                if c in "eE" and j + 1 < n and sql[j + 1] in "+-" and j + 2 < n and _is_digit(sql[j + 2]):
                    j += 2
                j += 1
            elif c == "." and j + 1 < n and sql[j + 1] != ".":
                j += 1
            else:
                break
        self.tokens.append(_Token(_Kind.NUMBER, sql[i:j], i, j))
        return j

    def _colon(self, i: int) -> int:
        sql, n = self.sql, self.n
        nxt = sql[i + 1] if i + 1 < n else ""
        if nxt == ":":
            self.tokens.append(_Token(_Kind.OP, "::", i, i + 2))
            return i + 2
        prev = sql[i - 1] if i > 0 else ""
        if _ident_start(nxt) and not (prev and (_ident_cont(prev) or prev in ":\\")):
            j = i + 2
            while j < n and _ident_cont(sql[j]):
                j += 1
            name = sql[i + 1 : j]
            if not _PLACEHOLDER_NAME.match(name):
                self.issues.append((f"invalid placeholder name :{name}: use letters, digits and _", i))
            self.tokens.append(_Token(_Kind.PLACEHOLDER, name, i, j))
            return j
        self.tokens.append(_Token(_Kind.OP, ":", i, i + 1))
        return i + 1


# --------------------------------------------------------------------------------------------
# Positions.


class _Positions:
    """Offsets to 1-based (line, column); lines end at "\\n" (columns count characters)."""

    def __init__(self, sql: str) -> None:
        self._starts = [0] + [i + 1 for i, c in enumerate(sql) if c == "\n"]
        self._size = len(sql)

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1

    def clamp(self, line: int, column: int) -> tuple[int, int]:
        """A position reported by someone else, moved inside the text (0, 0 stays unknown)."""
        if line <= 0:
            return 0, 0
        if line > len(self._starts):
            return self.at(self._size)
        line_end = self._starts[line] - 1 if line < len(self._starts) else self._size
        return line, max(1, min(column, line_end - self._starts[line - 1] + 1))


class _Issues:
    """Issues at most one per position (the first reason found wins), sorted by position."""

    def __init__(self, positions: _Positions) -> None:
        self._positions = positions
        self._items: dict[tuple[int, int], str] = {}
        self._unplaced: list[str] = []

    def at_offset(self, message: str, offset: int) -> None:
        self.at(message, *self._positions.at(offset))

    def at(self, message: str, line: int, column: int) -> None:
        if line <= 0:
            if message not in self._unplaced:
                self._unplaced.append(message)
            return
        self._items.setdefault((line, column), message)

    def __bool__(self) -> bool:
        return bool(self._items or self._unplaced)

    def result(self) -> tuple[SqlIssue, ...]:
        placed = [SqlIssue(message, line, column) for (line, column), message in sorted(self._items.items())]
        return tuple(placed + [SqlIssue(message) for message in self._unplaced])


# --------------------------------------------------------------------------------------------
# The checks.

_QUERY_STARTS = frozenset({"select", "with", "values", "table"})
_DML_WORDS = frozenset({"insert", "update", "delete", "merge"})
_LOCK_CLAUSES = (("update",), ("share",), ("no", "key", "update"), ("key", "share"))
_ONLY_READS = "only one read-only query is allowed (SELECT, WITH … SELECT, VALUES, or a UNION/INTERSECT/EXCEPT of them)"


def _exp_classes(*names: str) -> tuple[type[exp.Expr], ...]:
    found: list[type[exp.Expr]] = []
    for name in names:
        cls = getattr(exp, name, None)
        if isinstance(cls, type) and issubclass(cls, exp.Expr):
            found.append(cls)
    return tuple(found)


_ALLOWED_ROOTS = _exp_classes("Select", "SetOperation", "Values")
# Anything that writes, changes state or is opaque to sqlglot, wherever it sits in the tree.
_FORBIDDEN_NODES = _exp_classes(
    "DML",  # Insert, Update, Delete, Merge, Copy
    "DDL",  # Create
    "Create",
    "Drop",
    "Alter",
    "TruncateTable",
    "Command",
    "Set",
    "Into",
    "Lock",
    "Transaction",
    "Commit",
    "Rollback",
    "Grant",
    "Revoke",
    "Comment",
    "Analyze",
    "Use",
    "Pragma",
    "Kill",
    "LoadData",
    "Refresh",
    "Cache",
    "Uncache",
    "Describe",
    "Summarize",
    "Declare",
    "Execute",
)
_NODE_KEYWORDS: dict[str, str] = {
    "insert": "insert",
    "update": "update",
    "delete": "delete",
    "merge": "merge",
    "copy": "copy",
    "create": "create",
    "drop": "drop",
    "alter": "alter",
    "truncatetable": "truncate",
    "set": "set",
    "into": "into",
    "lock": "for",
    "grant": "grant",
    "revoke": "revoke",
    "comment": "comment",
    "analyze": "analyze",
}


def analyze(sql: str) -> SqlAnalysis:
    """Checks `sql` (see the module docstring). Never raises for any input text; every problem is
    an issue, with its position whenever it can be told."""
    positions = _Positions(sql)
    issues = _Issues(positions)
    lexed = _Lexer(sql).run()
    for message, offset in lexed.issues:
        issues.at_offset(message, offset)

    statement = _lexical_checks(lexed, issues)
    uses = tuple(PlaceholderUse(t.value, *positions.at(t.start)) for t in lexed.tokens if t.kind is _Kind.PLACEHOLDER)
    placeholders = tuple(dict.fromkeys(use.name for use in uses))

    output_columns: tuple[str, ...] | None = None
    if statement:
        root = _parse(sql, lexed, positions, issues)
        if root is not None:
            _tree_checks(root, statement, lexed, positions, issues)
            output_columns = _output_columns(root, {t.start: t for t in lexed.tokens})
    return SqlAnalysis(placeholders, issues.result(), output_columns, uses)


def _lexical_checks(lexed: _Lexed, issues: _Issues) -> list[_Token]:
    """The checks that need no parse tree; returns the tokens of the (first) statement."""
    tokens = lexed.tokens
    code = [t for t in tokens if t.kind is not _Kind.SEMICOLON]
    if not code:
        issues.at("the SQL is empty: write one SELECT", 1, 1)
        return []

    first_semicolon = next((k for k, t in enumerate(tokens) if t.kind is _Kind.SEMICOLON), len(tokens))
    statement = list(tokens[:first_semicolon])
    after = [t for t in tokens[first_semicolon:] if t.kind is not _Kind.SEMICOLON]
    if after:
        issues.at_offset(
            "only one statement is allowed: a second statement starts here (stacked queries are refused)",
            after[0].start,
        )
    if not statement:
        return []

    head = next((t for t in statement if not (t.kind is _Kind.OP and t.value == "(")), statement[0])
    if not (head.kind is _Kind.WORD and head.value in _QUERY_STARTS):
        issues.at_offset(f"{_ONLY_READS}; found {_describe(head)}", head.start)

    for k, token in enumerate(tokens):
        following = tokens[k + 1] if k + 1 < len(tokens) else None
        previous = tokens[k - 1] if k > 0 else None
        if token.kind is _Kind.WORD:
            if token.value == "into":
                if not (previous is not None and previous.kind is _Kind.WORD and previous.value in _DML_WORDS):
                    issues.at_offset("INTO is not allowed: a query must not create or fill tables", token.start)
            elif token.value == "for" and _is_lock_clause(tokens, k + 1):
                issues.at_offset("row locks (FOR UPDATE / FOR SHARE) are not allowed in a read-only query", token.start)
            elif (
                token.value in _DML_WORDS
                and previous is not None
                and previous.kind is _Kind.OP
                and previous.value == "("
            ):
                issues.at_offset(
                    f"{token.value.upper()} is not allowed: a query must not change data, also not inside WITH",
                    token.start,
                )
            # Look-alike quotes are not ASCII, so lowercasing left them (and their offsets) as written.
            for offset, char in enumerate(token.value):
                if char in _LOOKALIKE_QUOTES:
                    issues.at_offset(
                        f"typographic quote {char!r} outside a string: write strings in plain ASCII quotes ('…'); "
                        f"PostgreSQL would read {token.value!r} as a name",
                        token.start + offset,
                    )
                    break
        if token.kind in (_Kind.WORD, _Kind.QUOTED) and following is not None:
            if following.kind is _Kind.OP and following.value == "(":
                reason = denied_function_reason(token.value)
                if reason is not None:
                    issues.at_offset(f"function {token.value.lower()}() is not allowed: {reason}", token.start)
        elif token.kind is _Kind.OP and token.value == "`":
            issues.at_offset(
                "backticks are not quotes in PostgreSQL: write names in double quotes and strings in single quotes",
                token.start,
            )
        elif token.kind is _Kind.PARAM:
            issues.at_offset(
                f"positional parameters like {token.value} are not supported: use named placeholders (:name)",
                token.start,
            )
    return statement


def _is_lock_clause(tokens: tuple[_Token, ...], k: int) -> bool:
    for clause in _LOCK_CLAUSES:
        words = tokens[k : k + len(clause)]
        if len(words) == len(clause) and all(
            t.kind is _Kind.WORD and t.value == w for t, w in zip(words, clause, strict=True)
        ):
            return True
    return False


def _describe(token: _Token) -> str:
    if token.kind is _Kind.WORD:
        return token.value.upper()
    if token.kind is _Kind.QUOTED:
        return f'"{token.value}"'
    return repr(token.value)


def _parse(sql: str, lexed: _Lexed, positions: _Positions, issues: _Issues) -> exp.Expr | None:
    """Parses with sqlglot; a failure becomes an issue (with sqlglot's position when it has one)."""
    try:
        parsed = sqlglot.parse(sql, read="postgres")
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        line, column = positions.clamp(*_parse_error_position(first))
        description = str(first.get("description") or e).strip()
        highlight = str(first.get("highlight") or "").strip()
        near = f" near {highlight!r}" if highlight else ""
        issues.at(f"syntax error{near}: {description}", line, column)
        return None
    except TokenError as e:
        if not issues:  # the lexer's own message (with its position) is better when it has one
            offset = _token_error_offset(e, len(sql))
            if offset is None:
                issues.at("the SQL could not be read (tokenizer error)", 0, 0)
            else:
                issues.at_offset("the SQL could not be read (tokenizer error) near here", offset)
        return None
    except RecursionError:
        issues.at("the SQL is nested too deeply to be checked", 0, 0)
        return None
    except Exception as e:  # a parser bug must not become a server error
        issues.at(f"the SQL could not be parsed ({type(e).__name__})", 0, 0)
        return None

    statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    if len(statements) != 1:
        if not issues:  # the lexer saw one statement where sqlglot sees several (or none)
            issues.at("only one statement is allowed", 0, 0)
        return statements[0] if statements else None
    return statements[0]


def _parse_error_position(error: Mapping[str, object]) -> tuple[int, int]:
    # sqlglot reports the line and the column of the *last* character of the offending token.
    line, column = error.get("line"), error.get("col")
    if not isinstance(line, int) or not isinstance(column, int) or line <= 0:
        return 0, 0
    highlight = error.get("highlight")
    if isinstance(highlight, str) and highlight and "\n" not in highlight and column - len(highlight) >= 0:
        column = column - len(highlight) + 1
    return line, max(column, 1)


def _token_error_offset(error: TokenError, size: int) -> int | None:
    # sqlglot quotes sql[current - 50 : current + 50] around where it stopped.
    if error.start is None or error.end is None or size == 0:
        return None
    if error.start > 0:
        return min(error.start + 50, size - 1)
    if error.end < size - 1:
        return max(error.end - 50, 0)
    return None


def _tree_checks(
    root: exp.Expr, statement: list[_Token], lexed: _Lexed, positions: _Positions, issues: _Issues
) -> None:
    head = next((t for t in statement if not (t.kind is _Kind.OP and t.value == "(")), statement[0])
    words: dict[str, list[int]] = {}
    for token in lexed.tokens:
        if token.kind is _Kind.WORD:
            words.setdefault(token.value, []).append(token.start)
    used: Counter[str] = Counter()

    def locate(keyword: str | None) -> int:
        if keyword is None:
            return head.start
        found = words.get(keyword, [])
        k = used[keyword]
        used[keyword] += 1
        return found[min(k, len(found) - 1)] if found else head.start

    query = root
    while isinstance(query, exp.Subquery):
        query = query.this
    if not isinstance(query, _ALLOWED_ROOTS):
        if head.kind is _Kind.WORD and head.value not in _QUERY_STARTS:
            kind, offset = head.value.upper(), head.start  # DELETE …, DO …, VACUUM …
        else:
            kind, offset = query.key.upper(), locate(_NODE_KEYWORDS.get(query.key))  # WITH … DELETE
        issues.at_offset(f"{_ONLY_READS}; this statement is {kind}", offset)

    for node in root.walk():
        if isinstance(node, _FORBIDDEN_NODES) and node is not query:
            keyword = _NODE_KEYWORDS.get(node.key)
            issues.at_offset(_node_message(node), locate(keyword))
        elif isinstance(node, exp.Func):
            names = [node.name] if isinstance(node, exp.Anonymous) else list(type(node).sql_names())
            for name in names:
                reason = denied_function_reason(name)
                if reason is not None:
                    start = node.meta.get("start")
                    if isinstance(start, int):
                        issues.at_offset(f"function {name.lower()}() is not allowed: {reason}", start)
                    else:
                        issues.at(f"function {name.lower()}() is not allowed: {reason}", 0, 0)

    _placeholder_cross_check(root, lexed, positions, issues)


def _node_message(node: exp.Expr) -> str:
    key = node.key
    if key == "into":
        return "SELECT … INTO is not allowed: it creates a table"
    if key == "lock":
        return "row locks (FOR UPDATE / FOR SHARE) are not allowed in a read-only query"
    if key in ("insert", "update", "delete", "merge"):
        return f"{key.upper()} is not allowed: a query must not change data, also not inside WITH"
    if key == "copy":
        return "COPY is not allowed"
    if key == "command":
        return f"{str(node.this).upper()} is not allowed in a query"
    return f"{key.upper()} is not allowed in a query"


def _placeholder_cross_check(root: exp.Expr, lexed: _Lexed, positions: _Positions, issues: _Issues) -> None:
    parsed: Counter[str] = Counter()
    operators = iter([t.start for t in lexed.tokens if t.kind is _Kind.OP and t.value in "?%"])
    for node in root.find_all(exp.Placeholder):
        name = node.this
        if isinstance(name, str) and name:
            parsed[name] += 1
            continue
        if isinstance(name, exp.Identifier):
            message = f"%({name.name})s placeholders are not supported: write :{name.name}"
        else:
            message = "? and %s placeholders are not supported: use named placeholders (:name)"
        offset = next(operators, None)
        if offset is None:
            issues.at(message, 0, 0)
        else:
            issues.at_offset(message, offset)
    lexical: Counter[str] = Counter(t.value for t in lexed.tokens if t.kind is _Kind.PLACEHOLDER)
    for name in sorted(set(parsed) | set(lexical)):
        if parsed[name] == lexical[name]:
            continue
        first = next((t for t in lexed.tokens if t.kind is _Kind.PLACEHOLDER and t.value == name), None)
        message = (
            f"ambiguous :{name}: it reads both as a placeholder and as part of an array slice; "
            f"write slices without spaces (a[1:n]) and placeholders in parentheses (a[(:{name})])"
        )
        if first is not None:
            issues.at_offset(message, first.start)
        else:
            issues.at(message, 0, 0)


# --------------------------------------------------------------------------------------------
# Output columns.


def _output_columns(root: exp.Expr, tokens: Mapping[int, _Token]) -> tuple[str, ...] | None:
    query: exp.Expr = root
    while True:
        if isinstance(query, exp.Subquery):
            query = query.this
        elif isinstance(query, exp.SetOperation):
            query = query.this  # PostgreSQL names a set operation's columns after its first query
        else:
            break
    if isinstance(query, exp.Values):
        rows = query.expressions
        if not rows:
            return None
        first = rows[0]
        width = len(first.expressions) if isinstance(first, exp.Tuple) else 1
        return tuple(f"column{k + 1}" for k in range(width))
    if not isinstance(query, exp.Select):
        return None
    names: list[str] = []
    for projection in query.expressions:
        name = _column_name(projection, tokens)
        if name is None:
            return None
        names.append(name)
    return tuple(names)


def _column_name(node: exp.Expr, tokens: Mapping[int, _Token]) -> str | None:
    """PostgreSQL's name for an output column (FigureColname), where it is certain."""
    if isinstance(node, exp.Alias):
        return _identifier_name(node.args.get("alias"))
    if isinstance(node, exp.Column):
        if isinstance(node.this, exp.Star):
            return None
        return _identifier_name(node.this)
    if isinstance(node, exp.Star):
        return None
    if isinstance(node, exp.Cast):
        return _column_name(node.this, tokens) if isinstance(node.this, exp.Column | exp.Alias) else None
    if isinstance(node, exp.Case):
        return "case"
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        return _column_name(node.expression, tokens)
    if isinstance(node, exp.Func):
        # The function's name as written (sqlglot may have normalised it: now() -> CURRENT_TIMESTAMP).
        start = node.meta.get("start")
        token = tokens.get(start) if isinstance(start, int) else None
        if token is not None and token.kind in (_Kind.WORD, _Kind.QUOTED):
            return token.value
        return None
    return None


def _identifier_name(node: object) -> str | None:
    if isinstance(node, exp.Identifier):
        text = node.this
        if not isinstance(text, str):
            return None
        return text if node.quoted else text.translate(_ASCII_LOWER)
    if isinstance(node, str):
        return node.translate(_ASCII_LOWER)
    return None


# --------------------------------------------------------------------------------------------
# Parameters.


def check_parameters(analysis: SqlAnalysis, declared: Mapping[str, int]) -> list[SqlIssue]:
    """Placeholders against the declared parameters (`name -> ParameterType`).

    Every placeholder must be declared, and every declared parameter used. A DATE_RANGE parameter
    `p` is used through `:p_start` and `:p_end` (both must appear; `:p` itself is an error).
    `:facility_id` needs no declaration, and declaring it is an error."""
    issues: list[SqlIssue] = []
    ranges = {name for name, kind in declared.items() if kind == _DATE_RANGE}
    range_parts = {f"{name}{suffix}": name for name in ranges for suffix in _RANGE_SUFFIXES}

    if FACILITY_PLACEHOLDER in declared:
        issues.append(
            SqlIssue(f"{FACILITY_PLACEHOLDER} is reserved: the server binds :{FACILITY_PLACEHOLDER} to your facility")
        )
    for part, owner in range_parts.items():
        if part in declared:
            issues.append(SqlIssue(f"parameter {part} clashes with the date range {owner}, which binds :{part}"))

    seen: set[str] = set()
    for use in analysis.uses:
        if use.name in seen:
            continue
        seen.add(use.name)
        if use.name == FACILITY_PLACEHOLDER or use.name in range_parts:
            continue
        if use.name in ranges:
            issues.append(
                SqlIssue(
                    f":{use.name} is a date range: use :{use.name}_start and :{use.name}_end",
                    use.line,
                    use.column,
                )
            )
        elif use.name not in declared:
            issues.append(SqlIssue(f"placeholder :{use.name} is not a declared parameter", use.line, use.column))

    for name in declared:
        if name == FACILITY_PLACEHOLDER:
            continue
        if name in ranges:
            missing = [f":{name}{suffix}" for suffix in _RANGE_SUFFIXES if f"{name}{suffix}" not in seen]
            if missing:
                issues.append(SqlIssue(f"date range parameter {name} is declared but {' and '.join(missing)} unused"))
        elif name not in seen:
            issues.append(SqlIssue(f"parameter {name} is declared but :{name} is not used"))
    return issues


# --------------------------------------------------------------------------------------------
# Binding.


def to_pyformat(sql: str) -> str:
    """The driver's form of checked SQL (psycopg's `%(name)s` paramstyle), from the same lexer that
    found the placeholders: each placeholder becomes `%(name)s`, every other `%` is doubled (also
    inside strings: psycopg reads the whole text), comments become a space and trailing semicolons
    are dropped, so the result can also be embedded as a subquery. Execute it with a mapping (even
    an empty one) holding every placeholder's value. Raises ValueError for SQL that `analyze`
    refuses lexically; call it only on SQL that passed `analyze`."""
    lexed = _Lexer(sql).run()
    if lexed.issues:
        raise ValueError(f"the SQL has lexical problems: {lexed.issues[0][0]}")
    semicolons = [t for t in lexed.tokens if t.kind is _Kind.SEMICOLON]
    code = [t for t in lexed.tokens if t.kind is not _Kind.SEMICOLON]
    if semicolons and code and semicolons[0].start < code[-1].start:
        raise ValueError("the SQL holds more than one statement")
    end = semicolons[0].start if semicolons else len(sql)

    edits = [(t.start, t.end, f"%({t.value})s") for t in code if t.kind is _Kind.PLACEHOLDER]
    edits += [(start, stop, " ") for start, stop in lexed.comments]
    edits.sort()
    out: list[str] = []
    position = 0
    for start, stop, replacement in edits:
        if start >= end:
            break
        out.append(sql[position:start].replace("%", "%%"))
        out.append(replacement)
        position = stop
    out.append(sql[position:end].replace("%", "%%"))
    return "".join(out).strip()


def driver_form(sql: str) -> tuple[str, tuple[str, ...]]:
    """`to_pyformat(sql)` and the placeholder names in order of first use: what the executor
    sends to the driver, from the very lexer the save-time checks used."""
    lexed = _Lexer(sql).run()
    names = dict.fromkeys(t.value for t in lexed.tokens if t.kind is _Kind.PLACEHOLDER)
    return to_pyformat(sql), tuple(names)
