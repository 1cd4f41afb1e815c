"""Reading a `DataFrame` (dashboard.v1.common) back into Python values and canonical texts: the
one decoder, used by the client and by the server (masking, exports). The encoding, and the
representation of each PostgreSQL type, are the server's (server/queries/frame.py says how)."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from dashboard.v1 import common_pb2
from dashboard.v1.common_pb2 import DataFrame

__all__ = [
    "DATE_INFINITY",
    "DATE_MINUS_INFINITY",
    "EPOCH_NAIVE",
    "EPOCH_ORDINAL",
    "EPOCH_UTC",
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "TIMESTAMP_INFINITY",
    "TIMESTAMP_MINUS_INFINITY",
    "US_PER_DAY",
    "US_PER_SECOND",
    "column_texts",
    "date_text",
    "frame_to_rows",
    "interval_text",
    "timestamp_text",
]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DATE_INFINITY, DATE_MINUS_INFINITY = INT32_MAX, INT32_MIN
TIMESTAMP_INFINITY, TIMESTAMP_MINUS_INFINITY = INT64_MAX, INT64_MIN

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
EPOCH_NAIVE = dt.datetime(1970, 1, 1)
EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _civil_from_days(days: int) -> tuple[int, int, int]:
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


# ---------------------------------------------------------------------------------------------
# Text forms (PostgreSQL's ISO output, in UTC for timestamptz)


def date_text(days: int) -> str:
    """PostgreSQL's ISO text of a date given as days since 1970-01-01."""
    if days == DATE_INFINITY:
        return "infinity"
    if days == DATE_MINUS_INFINITY:
        return "-infinity"
    year, month, day = _civil_from_days(days)
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d} BC"
    return f"{year:04d}-{month:02d}-{day:02d}"


def timestamp_text(micros: int, with_tz: bool) -> str:
    """PostgreSQL's ISO text of a timestamp ('+00' appended for timestamptz, which is in UTC)."""
    if micros == TIMESTAMP_INFINITY:
        return "infinity"
    if micros == TIMESTAMP_MINUS_INFINITY:
        return "-infinity"
    days, rest = divmod(micros, US_PER_DAY)
    seconds, fraction = divmod(rest, US_PER_SECOND)
    year, month, day = _civil_from_days(days)
    text = f"{abs(year) + 1 if year <= 0 else year:04d}-{month:02d}-{day:02d} "
    text += f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if fraction:
        text += f".{fraction:06d}".rstrip("0")
    if with_tz:
        text += "+00"
    return text + " BC" if year <= 0 else text


def _trunc_divmod(value: int, unit: int) -> tuple[int, int]:
    """divmod rounding toward zero, as C does (PostgreSQL's interval fields share its sign)."""
    quotient = abs(value) // unit
    quotient = quotient if value >= 0 else -quotient
    return quotient, value - quotient * unit


def interval_text(months: int, days: int, micros: int) -> str:
    """An interval as PostgreSQL's iso_8601 IntervalStyle prints it."""
    years, months = _trunc_divmod(months, 12)
    hours, rest = _trunc_divmod(micros, 3600 * US_PER_SECOND)
    minutes, rest = _trunc_divmod(rest, 60 * US_PER_SECOND)
    seconds, fraction = _trunc_divmod(rest, US_PER_SECOND)
    if not (years or months or days or hours or minutes or seconds or fraction):
        return "PT0S"
    text = "P"
    for amount, unit in ((years, "Y"), (months, "M"), (days, "D")):
        if amount:
            text += f"{amount}{unit}"
    if hours or minutes or seconds or fraction:
        text += "T"
        for amount, unit in ((hours, "H"), (minutes, "M")):
            if amount:
                text += f"{amount}{unit}"
        if seconds or fraction:
            text += "-" if seconds < 0 or fraction < 0 else ""
            text += str(abs(seconds))
            if fraction:
                text += f".{abs(fraction):06d}".rstrip("0")
            text += "S"
    return text


def _values_of(column: common_pb2.Column) -> list[Any]:
    member = column.WhichOneof("values")
    return list(getattr(column, member).values) if member else []


def _python_date(days: int) -> dt.date | str:
    ordinal = days + EPOCH_ORDINAL
    if 1 <= ordinal <= dt.date.max.toordinal() and DATE_MINUS_INFINITY < days < DATE_INFINITY:
        return dt.date.fromordinal(ordinal)
    return date_text(days)


def _python_timestamp(micros: int, with_tz: bool) -> dt.datetime | str:
    if TIMESTAMP_MINUS_INFINITY < micros < TIMESTAMP_INFINITY:
        try:
            return (EPOCH_UTC if with_tz else EPOCH_NAIVE) + dt.timedelta(microseconds=micros)
        except OverflowError:
            pass
    return timestamp_text(micros, with_tz)


_DECODERS: dict[int, Callable[[Any], object]] = {
    common_pb2.COLUMN_TYPE_DECIMAL: Decimal,
    common_pb2.COLUMN_TYPE_DATE: _python_date,
    common_pb2.COLUMN_TYPE_TIMESTAMP: lambda v: _python_timestamp(v, False),
    common_pb2.COLUMN_TYPE_TIMESTAMP_TZ: lambda v: _python_timestamp(v, True),
    common_pb2.COLUMN_TYPE_JSON: json.loads,
    common_pb2.COLUMN_TYPE_UUID: uuid.UUID,
}


def _decoded(column: common_pb2.Column, row_count: int) -> list[object]:
    values = _values_of(column)
    if len(values) != row_count:
        raise ValueError(f"column {column.name!r} has {len(values)} values for {row_count} rows")
    nulls = list(column.nulls)
    decode = _DECODERS.get(column.type)
    if nulls:
        return [None if null else (decode(v) if decode else v) for null, v in zip(nulls, values, strict=True)]
    return [decode(v) for v in values] if decode else values


def _unique_names(names: Sequence[str]) -> list[str]:
    taken = set(names)
    seen: set[str] = set()
    unique: list[str] = []
    for name in names:
        candidate, suffix = name, 1
        while candidate in seen or (candidate != name and candidate in taken):
            suffix += 1
            candidate = f"{name}_{suffix}"
        seen.add(candidate)
        unique.append(candidate)
    return unique


def frame_to_rows(frame: DataFrame) -> list[dict[str, object]]:
    """The frame's rows as Python values: int, float, bool, str, bytes, Decimal (numeric), date,
    datetime (naive for TIMESTAMP, aware UTC for TIMESTAMP_TZ), JSON as dict/list/..., uuid.UUID,
    ISO 8601 text for intervals and PostgreSQL text for everything else; None for NULL. Dates and
    timestamps Python cannot hold (infinity, BC, year > 9999) come back as PostgreSQL's ISO text
    ('infinity', '0044-03-15 BC'). A repeated column name gets a suffix ('a', 'a_2') that no other
    column has."""
    names = _unique_names([column.name for column in frame.columns])
    columns = [_decoded(column, frame.row_count) for column in frame.columns]
    if not columns:
        return [{} for _ in range(frame.row_count)]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


_TEXT_FORMS: dict[int, Callable[[Any], str]] = {
    common_pb2.COLUMN_TYPE_BOOL: lambda v: "true" if v else "false",
    common_pb2.COLUMN_TYPE_INT64: str,
    common_pb2.COLUMN_TYPE_FLOAT64: _float_text,
    common_pb2.COLUMN_TYPE_DATE: date_text,
    common_pb2.COLUMN_TYPE_TIMESTAMP: lambda v: timestamp_text(v, False),
    common_pb2.COLUMN_TYPE_TIMESTAMP_TZ: lambda v: timestamp_text(v, True),
    common_pb2.COLUMN_TYPE_BYTES: lambda v: "\\x" + v.hex(),
}


def column_texts(column: common_pb2.Column) -> list[str]:
    """One canonical text per row (NULL rows give the zero value's text): the string itself for
    text-carrying types, PostgreSQL's text form (timestamptz in UTC, bytea as \\x hex) otherwise.
    Stable across requests, so masking by hash keeps equal values equal."""
    values = _values_of(column)
    form = _TEXT_FORMS.get(column.type)
    return [form(value) for value in values] if form else values
