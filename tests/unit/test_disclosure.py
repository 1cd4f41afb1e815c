"""The one list of error reasons whose messages may quote data, and what each audience sees of
such an error: the caller whose principal ran the query (with or without PHI access) and the
waiters of that computation (anyone). tests/integration/test_widget_data.py shows the same over
real channels with PostgreSQL's own message."""

from __future__ import annotations

import pytest

from server.errors import DeadlineExceeded, InvalidArgument, TesseraError
from server.queries.disclosure import DATA_BEARING_REASONS, for_caller, for_waiter

SECRET = "123-45-6789"


def quoting(reason: str, sqlstate: str = "22P02") -> InvalidArgument:
    metadata = {"sqlstate": sqlstate, "column": "ssn", "detail": SECRET} if sqlstate else {"column": "ssn"}
    return InvalidArgument(f"the query failed: invalid input syntax: {SECRET!r}", reason=reason, metadata=metadata)


def test_the_list_is_every_reason_that_carries_a_database_or_driver_message() -> None:
    # QUERY_FAILED: PostgreSQL's text; QUERY_PARAMETER_INVALID: the driver's; QUERY_RESULT_UNREPRESENTABLE:
    # a value the frame cannot carry (server/queries/execute.py raises all three).
    assert (
        frozenset({"QUERY_FAILED", "QUERY_PARAMETER_INVALID", "QUERY_RESULT_UNREPRESENTABLE"}) == DATA_BEARING_REASONS
    )


@pytest.mark.parametrize("reason", sorted(DATA_BEARING_REASONS))
@pytest.mark.parametrize("sqlstate", ["22P02", ""])
def test_data_bearing_errors(reason: str, sqlstate: str) -> None:
    exc = quoting(reason, sqlstate)
    assert for_caller(exc, can_read_phi=True) is exc  # a PHI reader who ran it sees it all

    withheld = for_caller(exc, can_read_phi=False)
    assert SECRET not in withheld.message and SECRET not in str(withheld.metadata)
    assert (withheld.code_name, withheld.reason) == ("INVALID_ARGUMENT", reason)
    assert withheld.metadata == ({"sqlstate": sqlstate, "column": "ssn"} if sqlstate else {"column": "ssn"})
    assert (f"SQLSTATE {sqlstate}" if sqlstate else "a value it cannot carry") in withheld.message

    message, metadata = for_waiter(exc)  # whoever waits, with PHI access or not
    assert SECRET not in message and SECRET not in str(metadata)
    assert metadata == ({"sqlstate": sqlstate} if sqlstate else {})
    assert message == (f"the query failed on the database (SQLSTATE {sqlstate})" if sqlstate else "the query failed")


def test_a_syntax_error_quotes_only_the_sql_which_its_caller_may_read() -> None:
    exc = quoting("QUERY_FAILED", sqlstate="42703")
    assert for_caller(exc, can_read_phi=False) is exc
    assert SECRET not in for_waiter(exc)[0]  # a waiter may be a viewer, who never sees SQL


@pytest.mark.parametrize(
    "exc",
    [
        DeadlineExceeded("the query ran longer than 5 s", reason="QUERY_TIMEOUT", metadata={"timeout_seconds": "5"}),
        InvalidArgument("parameter_values: missing 'unit'", reason="QUERY_PARAMETER_MISSING"),
    ],
)
def test_other_errors_are_shown_as_they_are(exc: TesseraError) -> None:
    assert for_caller(exc, can_read_phi=False) is exc
    assert for_waiter(exc) == (exc.message, {k: v for k, v in exc.metadata.items() if k == "timeout_seconds"})
