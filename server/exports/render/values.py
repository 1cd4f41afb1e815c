"""Text and numbers for the export page: cells, NumberFormat, filter values, chart data.

Without a NumberFormat a value is shown exactly as the widget-data rpc carries it (the frame's
canonical text: ints as ints, NUMERIC's exact text, floats in their shortest round-trip form).
With one, the exact decimal is rounded half away from zero, which is what people expect of
"2 decimals" (2.675 shows 2.68: the float's shortest text is rounded, not its binary value).
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, InvalidOperation

from dashboard.v1 import common_pb2, widget_pb2
from server.queries.frame import (
    DATE_INFINITY,
    DATE_MINUS_INFINITY,
    TIMESTAMP_INFINITY,
    TIMESTAMP_MINUS_INFINITY,
    column_texts,
)
from tessera_client.formats import effective_format, number_text

__all__ = [
    "NUMERIC_TYPES",
    "TEMPORAL_TYPES",
    "cell_texts",
    "chart_values",
    "exact_decimal",
    "format_number",
    "parameter_text",
    "signed_text",
    "utc_text",
]

NUMERIC_TYPES = frozenset(
    {common_pb2.COLUMN_TYPE_INT64, common_pb2.COLUMN_TYPE_FLOAT64, common_pb2.COLUMN_TYPE_DECIMAL}
)
TEMPORAL_TYPES = frozenset(
    {common_pb2.COLUMN_TYPE_DATE, common_pb2.COLUMN_TYPE_TIMESTAMP, common_pb2.COLUMN_TYPE_TIMESTAMP_TZ}
)
_MS_PER_DAY = 86_400_000


def cell_texts(column: common_pb2.Column) -> list[str | None]:
    """The frame's canonical text of each row, None for NULL."""
    texts: list[str | None] = list(column_texts(column))
    for row, is_null in enumerate(column.nulls):
        if is_null:
            texts[row] = None
    return texts


def exact_decimal(text: str) -> Decimal | None:
    """The finite number a numeric cell's text denotes, or None (NaN, infinities, not a number)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def format_number(text: str, number_format: widget_pb2.NumberFormat) -> str:
    """A numeric cell's text as `number_format` says: the sign first, then prefix, the rounded,
    optionally grouped digits and the suffix ("-$1,234.50"). Text that is no finite number
    (NaN, Infinity, a masked value) is returned unchanged."""
    value = exact_decimal(text)
    if value is None:
        return text
    return number_text(value, effective_format(None, number_format))


def signed_text(value: Decimal, value_format: widget_pb2.ValueFormat | None) -> str:
    """A difference with its sign always shown ("+12", "-3.5"), formatted when a format is given,
    exact otherwise."""
    text = number_text(value, value_format)
    return text if text.startswith("-") or value == 0 else "+" + text


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _date_text(date: object) -> str:
    year, month, day = (getattr(date, name) for name in ("year", "month", "day"))
    return f"{year:04d}-{month:02d}-{day:02d}"


def utc_text(moment: dt.datetime) -> str:
    """'2026-05-01 09:30:00 UTC'. A naive datetime is refused: its zone would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("generated_at must be timezone-aware")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parameter_text(value: common_pb2.ParameterValue) -> str:
    """A filter value as people read it; an unset value is empty."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return _float_text(value.double_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "date_value":
        return _date_text(value.date_value)
    if kind == "timestamp_value":
        return utc_text(value.timestamp_value.ToDatetime(tzinfo=dt.UTC))
    if kind == "date_range_value":
        return f"{_date_text(value.date_range_value.start)} \u2013 {_date_text(value.date_range_value.end)}"
    if kind == "list_value":
        return ", ".join(parameter_text(item) for item in value.list_value.values)
    return ""


def chart_values(column: common_pb2.Column) -> list[object]:
    """JSON values for a Vega-Lite data table: numbers as numbers (NaN, infinities and NULL as
    null, which Vega-Lite leaves out), dates and timestamps as epoch milliseconds (UTC), every
    other type as its canonical text."""
    kind = column.WhichOneof("values")
    values: list[object]
    if column.type == common_pb2.COLUMN_TYPE_INT64 and kind == "int64_values":
        values = list(column.int64_values.values)
    elif column.type == common_pb2.COLUMN_TYPE_FLOAT64 and kind == "double_values":
        values = [v if math.isfinite(v) else None for v in column.double_values.values]
    elif column.type == common_pb2.COLUMN_TYPE_DECIMAL and kind == "string_values":
        numbers = (exact_decimal(text) for text in column.string_values.values)
        values = [float(number) if number is not None else None for number in numbers]
    elif column.type == common_pb2.COLUMN_TYPE_DATE and kind == "date_values":
        values = [
            None if days in (DATE_INFINITY, DATE_MINUS_INFINITY) else days * _MS_PER_DAY
            for days in column.date_values.values
        ]
    elif column.type in TEMPORAL_TYPES and kind == "timestamp_values":
        values = [
            None if micros in (TIMESTAMP_INFINITY, TIMESTAMP_MINUS_INFINITY) else micros // 1000
            for micros in column.timestamp_values.values
        ]
    else:
        values = list(column_texts(column))
    for row, is_null in enumerate(column.nulls):
        if is_null:
            values[row] = None
    return values
