"""What an error about a query may show, and to whom: the one list of reasons whose messages may
quote data, and how such a message is cut down for a caller without PHI access and for the
waiters of a single-flight computation (who may be anyone that reads the widget)."""

from __future__ import annotations

from server.errors import InvalidArgument, TesseraError

__all__ = ["DATA_BEARING_REASONS", "for_caller", "for_waiter"]

# Reasons whose messages may quote values from the data: PostgreSQL's own text ('invalid input
# syntax for type integer: "<value>"'), a driver's message about a value it cannot send, a value
# the frame cannot carry.
DATA_BEARING_REASONS = frozenset({"QUERY_FAILED", "QUERY_PARAMETER_INVALID", "QUERY_RESULT_UNREPRESENTABLE"})
# SQLSTATE class 42 (syntax errors, unknown columns, tables, functions, type mismatches): the
# message quotes only the SQL text, which a caller who runs the query may read anyway.
_SQL_TEXT_ONLY_CLASSES = ("42",)


def for_caller(exc: TesseraError, can_read_phi: bool) -> TesseraError:
    """The error for the caller whose principal ran the query: unchanged with PHI access (or when
    it cannot quote data); otherwise only the reason, the SQLSTATE and the column."""
    sqlstate = exc.metadata.get("sqlstate", "")
    if can_read_phi or exc.reason not in DATA_BEARING_REASONS or sqlstate.startswith(_SQL_TEXT_ONLY_CLASSES):
        return exc
    metadata = {k: v for k, v in exc.metadata.items() if k in ("sqlstate", "column")}
    what = f"SQLSTATE {sqlstate}" if sqlstate else "a value it cannot carry"
    return InvalidArgument(
        f"the query failed on the database ({what}); the message is withheld because it may quote data "
        "and the caller has no PHI access",
        reason=exc.reason,
        metadata=metadata,
    )


def for_waiter(exc: TesseraError) -> tuple[str, dict[str, str]]:
    """The message and metadata for callers other than the one whose principal ran the query,
    whoever they are: a message that may quote data is cut to the reason and SQLSTATE."""
    message = exc.message
    if exc.reason in DATA_BEARING_REASONS:
        sqlstate = exc.metadata.get("sqlstate", "")
        message = f"the query failed on the database (SQLSTATE {sqlstate})" if sqlstate else "the query failed"
    return message, {k: v for k, v in exc.metadata.items() if k in ("sqlstate", "timeout_seconds")}
