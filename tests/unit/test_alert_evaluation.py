"""The alert state machine and reducers, with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard.v1 import alert_pb2 as a
from dashboard.v1 import common_pb2 as c
from server.alerts.evaluate import Reduction, holds, next_state, reduce_frame

OK, PENDING, FIRING, RESOLVED, ERROR = (
    a.ALERT_STATE_OK,
    a.ALERT_STATE_PENDING,
    a.ALERT_STATE_FIRING,
    a.ALERT_STATE_RESOLVED,
    a.ALERT_STATE_ERROR,
)
T0 = datetime(2026, 12, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _frame(*values: float | None) -> c.DataFrame:
    column = c.Column(name="v", type=c.COLUMN_TYPE_FLOAT64)
    column.double_values.values.extend(0.0 if v is None else v for v in values)
    if any(v is None for v in values):
        column.nulls.extend(v is None for v in values)
    text = c.Column(name="label", type=c.COLUMN_TYPE_STRING)
    text.string_values.values.extend("x" for _ in values)
    return c.DataFrame(columns=[column, text], row_count=len(values))


@pytest.mark.parametrize(
    ("reducer", "expected"),
    [
        (a.ALERT_REDUCER_LAST, 4.0),
        (a.ALERT_REDUCER_MIN, 1.0),
        (a.ALERT_REDUCER_MAX, 6.0),
        (a.ALERT_REDUCER_MEAN, 11 / 3),
        (a.ALERT_REDUCER_SUM, 11.0),
    ],
)
def test_reducers_skip_nulls(reducer: int, expected: float) -> None:
    assert reduce_frame(_frame(1, 6, None, 4), "v", reducer) == pytest.approx(expected)


def test_what_cannot_be_reduced_is_an_error() -> None:
    with pytest.raises(Reduction, match="no column"):
        reduce_frame(_frame(1), "w", a.ALERT_REDUCER_LAST)
    with pytest.raises(Reduction, match="not numbers"):
        reduce_frame(_frame(1), "label", a.ALERT_REDUCER_LAST)
    with pytest.raises(Reduction, match="no values"):
        reduce_frame(_frame(None), "v", a.ALERT_REDUCER_MAX)
    assert reduce_frame(_frame(), "v", a.ALERT_REDUCER_SUM) == 0.0


def test_comparisons() -> None:
    assert holds(5, a.ALERT_COMPARISON_GREATER, 4) and not holds(4, a.ALERT_COMPARISON_GREATER, 4)
    assert holds(4, a.ALERT_COMPARISON_GREATER_OR_EQUAL, 4) and holds(3, a.ALERT_COMPARISON_LESS, 4)
    assert holds(4, a.ALERT_COMPARISON_LESS_OR_EQUAL, 4) and holds(4, a.ALERT_COMPARISON_EQUAL, 4)
    assert holds(3, a.ALERT_COMPARISON_NOT_EQUAL, 4)


def test_the_state_machine() -> None:
    hold = 2 * MINUTE
    assert next_state(a.ALERT_STATE_UNSPECIFIED, None, False, T0, hold) == OK
    assert next_state(OK, T0, True, T0, hold) == PENDING
    assert next_state(PENDING, T0, True, T0 + MINUTE, hold) == PENDING
    assert next_state(PENDING, T0, True, T0 + hold, hold) == FIRING
    assert next_state(PENDING, T0, False, T0 + MINUTE, hold) == OK
    assert next_state(FIRING, T0, True, T0 + hold, hold) == FIRING
    assert next_state(FIRING, T0, False, T0 + hold, hold) == RESOLVED
    assert next_state(RESOLVED, T0, False, T0 + hold, hold) == RESOLVED
    assert next_state(RESOLVED, T0, True, T0 + hold, hold) == PENDING
    assert next_state(OK, T0, True, T0, timedelta(0)) == FIRING  # no `for`: at once
    for state in (OK, PENDING, FIRING, RESOLVED):
        assert next_state(state, T0, None, T0, hold) == ERROR  # never FIRING on an error
    assert next_state(ERROR, T0, True, T0, hold) == PENDING
    assert next_state(ERROR, T0, False, T0, hold) == OK
