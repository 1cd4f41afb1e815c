"""What one evaluation decides, with no I/O: the column reduced to a number, the comparison, and
the state machine OK -> PENDING -> FIRING -> RESOLVED (ERROR when the data cannot be read or
reduced; it never fires)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from dashboard.v1 import alert_pb2 as a
from dashboard.v1.common_pb2 import DataFrame
from tessera_client.frames import frame_to_rows

__all__ = ["NOTIFIED", "Reduction", "holds", "next_state", "reduce_frame"]

NOTIFIED = frozenset({a.ALERT_STATE_FIRING, a.ALERT_STATE_RESOLVED})
COMPARE: dict[int, Callable[[float, float], bool]] = {
    a.ALERT_COMPARISON_GREATER: lambda v, t: v > t,
    a.ALERT_COMPARISON_GREATER_OR_EQUAL: lambda v, t: v >= t,
    a.ALERT_COMPARISON_LESS: lambda v, t: v < t,
    a.ALERT_COMPARISON_LESS_OR_EQUAL: lambda v, t: v <= t,
    a.ALERT_COMPARISON_EQUAL: lambda v, t: v == t,
    a.ALERT_COMPARISON_NOT_EQUAL: lambda v, t: v != t,
}


class Reduction(ValueError):
    """The frame cannot give the rule a number (no such column, not numbers, no rows)."""


def _numbers(values: Sequence[object], column: str) -> list[float]:
    out: list[float] = []
    for value in values:
        if value is None:
            continue  # NULLs are skipped, as SQL aggregates skip them
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise Reduction(f"column {column!r} holds {type(value).__name__} values, not numbers")
        out.append(float(value))
    return out


def reduce_frame(frame: DataFrame, column: str, reducer: int) -> float:
    rows = frame_to_rows(frame)
    names = [c.name for c in frame.columns]
    if column not in names:
        raise Reduction(f"the widget's data has no column {column!r} (it has {', '.join(names) or 'none'})")
    values = _numbers([row[column] for row in rows], column)
    if reducer == a.ALERT_REDUCER_SUM:
        return math.fsum(values)
    if not values:
        raise Reduction(f"column {column!r} has no values to reduce")
    if reducer == a.ALERT_REDUCER_LAST:
        return values[-1]
    if reducer == a.ALERT_REDUCER_MIN:
        return min(values)
    if reducer == a.ALERT_REDUCER_MAX:
        return max(values)
    return math.fsum(values) / len(values)


def holds(value: float, comparison: int, threshold: float) -> bool:
    return COMPARE[comparison](value, threshold)


def next_state(state: int, since: datetime | None, condition: bool | None, now: datetime, hold: timedelta) -> int:
    """The state after an evaluation at `now`; `condition` None means the evaluation failed."""
    if condition is None:
        return a.ALERT_STATE_ERROR
    if condition:
        if state == a.ALERT_STATE_FIRING:
            return state
        if state == a.ALERT_STATE_PENDING:
            return a.ALERT_STATE_FIRING if since is not None and now - since >= hold else state
        return a.ALERT_STATE_FIRING if hold <= timedelta(0) else a.ALERT_STATE_PENDING
    if state == a.ALERT_STATE_FIRING:
        return a.ALERT_STATE_RESOLVED
    if state == a.ALERT_STATE_RESOLVED:
        return state
    return a.ALERT_STATE_OK
