"""Python values to and from the protos: parameter values, durations, result rows.

parameter_value(65)                      ParameterValue(int_value=65)
parameter_value(["ICU", "ER"])           a list value
parameter_value(date(2026, 1, 1))        a date value
date_range(date(2026, 1, 1), date(2026, 1, 31))
rows(widget_data.frame)                  [{"unit": "ICU", "n": 12}, ...]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

from google.protobuf import duration_pb2, timestamp_pb2
from google.type import date_pb2

from dashboard.v1 import common_pb2
from tessera_client.frames import column_texts, frame_to_rows

__all__ = ["ParameterInput", "date_range", "duration", "parameter_map", "parameter_value", "rows", "table"]

ParameterInput: TypeAlias = (
    "common_pb2.ParameterValue | bool | int | float | str | dt.date | dt.datetime | Sequence[ParameterInput]"
)


def _date(value: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def date_range(start: dt.date, end: dt.date) -> common_pb2.ParameterValue:
    """A DATE_RANGE value (both ends inclusive)."""
    if end < start:
        raise ValueError(f"date range ends ({end}) before it starts ({start})")
    return common_pb2.ParameterValue(date_range_value=common_pb2.DateRange(start=_date(start), end=_date(end)))


def parameter_value(value: ParameterInput, *, name: str = "value") -> common_pb2.ParameterValue:
    """The ParameterValue for a Python value: bool, int, float, str, date, aware datetime (a
    TIMESTAMP), a list or tuple of those (a list parameter), or a ParameterValue as it is.
    `name` only labels the error for a value that has no parameter type."""
    if isinstance(value, common_pb2.ParameterValue):
        return value
    if isinstance(value, bool):  # before int: bool is an int
        return common_pb2.ParameterValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.ParameterValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.ParameterValue(double_value=value)
    if isinstance(value, str):
        return common_pb2.ParameterValue(string_value=value)
    if isinstance(value, dt.datetime):  # before date: datetime is a date
        if value.tzinfo is None:
            raise ValueError(f"{name}: a naive datetime is ambiguous; give it a timezone")
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(value.astimezone(dt.UTC))
        return common_pb2.ParameterValue(timestamp_value=stamp)
    if isinstance(value, dt.date):
        return common_pb2.ParameterValue(date_value=_date(value))
    if isinstance(value, list | tuple):
        items = [parameter_value(item, name=f"{name}[{i}]") for i, item in enumerate(value)]
        if any(item.HasField("list_value") for item in items):
            raise ValueError(f"{name}: nested lists are not parameter values")
        return common_pb2.ParameterValue(list_value=common_pb2.ParameterValueList(values=items))
    raise TypeError(f"{name}: {type(value).__name__} is not a parameter value")


def parameter_map(values: Mapping[str, ParameterInput] | None) -> dict[str, common_pb2.ParameterValue]:
    return {key: parameter_value(value, name=key) for key, value in (values or {}).items()}


def duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def seconds(value: duration_pb2.Duration) -> float:
    return value.seconds + value.nanos / 1e9


def rows(frame: common_pb2.DataFrame) -> list[dict[str, object]]:
    """The frame's rows as dicts of Python values (int, float, Decimal, date, datetime, dict for
    JSON, UUID, bytes, None for NULL); the server decodes with the same code, so nothing is lost."""
    return frame_to_rows(frame)


def table(frame: common_pb2.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Column names and every row as display text (NULL as ''), for printing."""
    names = [column.name for column in frame.columns]
    texts = [_with_nulls(column_texts(column), column.nulls) for column in frame.columns]
    return names, [list(row) for row in zip(*texts, strict=True)] if texts else []


def _with_nulls(texts: Iterable[str], nulls: Sequence[bool]) -> list[str]:
    values = list(texts)
    return [("" if nulls[i] else text) for i, text in enumerate(values)] if nulls else values
