"""Query results as a typed, columnar `DataFrame`, losslessly.

How each PostgreSQL type travels (see `column_type_for`):

    bool                                  BOOL        bool_values
    int2, int4, int8, oid                 INT64       int64_values
    float4, float8                        FLOAT64     double_values (NaN and +-Infinity included)
    numeric                               DECIMAL     string_values: PostgreSQL's exact text ('12.3400', 'NaN')
    date                                  DATE        date_values: days since 1970-01-01
    timestamp                             TIMESTAMP   timestamp_values: microseconds since 1970-01-01 00:00
    timestamptz                           TIMESTAMP_TZ timestamp_values: microseconds since the Unix epoch, UTC
    json, jsonb                           JSON        string_values: canonical JSON (`canonical_json`)
    uuid                                  UUID        string_values: canonical lowercase text
    bytea                                 BYTES       bytes_values
    interval                              INTERVAL    string_values: ISO 8601 ('P1Y2M-3DT4H5M6.5S', 'PT0S')
    text, varchar, bpchar, name, citext,  STRING      string_values: PostgreSQL's text output
    enums, arrays, ranges, inet, ... (anything else)

Reading a frame back (`frame_to_rows`, `column_texts`, the text forms) is the client's decoder,
tessera_client/frames.py, re-exported here: one decoder for the client and the server.

Decisions worth knowing:

* Infinite dates and timestamps. psycopg refuses them (and any year outside 1..9999); PostgreSQL's
  own binary format stores them as the extreme integers, and so do we: date 'infinity' is
  INT32_MAX, '-infinity' INT32_MIN; timestamp 'infinity' is INT64_MAX, '-infinity' INT64_MIN
  (`DATE_INFINITY` and friends). Every finite PostgreSQL date fits strictly between those. The
  finite timestamps from 294247-01-10T04:00:54.775807Z to PostgreSQL's maximum (year 294276) do
  not fit in int64 microseconds since 1970: building such a frame raises `UnrepresentableValue`
  rather than bending the value.
* psycopg's default loaders are lossy for interval (a timedelta: '1 mon' becomes 30 days, '1 year'
  365), json (floats: 1.00000000000000000001 becomes 1.0) and raise DataError for the dates above.
  `register_frame_loaders` therefore makes a cursor return PostgreSQL's text for every type
  except those psycopg loads exactly (bool, integers, floats, text types, bytea); `build_frame`
  parses that text with integer arithmetic only. The executor sets DateStyle to ISO and
  IntervalStyle to iso_8601 for its transaction, so the text is in the form parsed here (psycopg's
  own interval loader refuses iso_8601: another reason not to use it); the postgres
  IntervalStyle is understood too.
* `build_frame` also accepts Python objects (Decimal, date, datetime, timedelta, UUID, dict/list),
  so it can be fed from anywhere. A `str` in a JSON column is JSON *text*; a naive datetime in a
  TIMESTAMP_TZ column (or an aware one in a TIMESTAMP column) is refused as ambiguous.
* Canonical JSON is `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` of the
  parsed document, except that a number a Python float cannot carry exactly
  (1.0000000000000000001, 1e400) keeps its original digits. Duplicate keys in a `json` value keep
  the last (as jsonb does). A document with an unpaired surrogate escape is written with
  ensure_ascii=True (protobuf strings must be valid UTF-8).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from psycopg import postgres
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import AdaptersMap, Loader

from dashboard.v1 import common_pb2
from dashboard.v1.common_pb2 import ColumnType, DataFrame
from tessera_client.frames import (
    DATE_INFINITY,
    DATE_MINUS_INFINITY,
    EPOCH_NAIVE,
    EPOCH_ORDINAL,
    EPOCH_UTC,
    TIMESTAMP_INFINITY,
    TIMESTAMP_MINUS_INFINITY,
    US_PER_DAY,
    US_PER_SECOND,
    civil_from_days,
    column_texts,
    date_text,
    frame_to_rows,
    interval_text,
    timestamp_text,
)

__all__ = [
    "DATE_INFINITY",
    "DATE_MINUS_INFINITY",
    "TIMESTAMP_INFINITY",
    "TIMESTAMP_MINUS_INFINITY",
    "UnrepresentableValue",
    "build_frame",
    "canonical_json",
    "civil_from_days",
    "column_texts",
    "column_type_for",
    "date_text",
    "frame_to_rows",
    "interval_text",
    "register_frame_loaders",
    "timestamp_text",
    "type_name_for",
]


class UnrepresentableValue(ValueError):
    """A value the frame cannot carry exactly (or a value of the wrong kind for its column)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"column {column!r}: {message}")
        self.column = column


# ---------------------------------------------------------------------------------------------
# Types


def _oid(name: str) -> int:
    return postgres.types[name].oid


_TYPE_BY_OID: dict[int, ColumnType] = {
    _oid("bool"): common_pb2.COLUMN_TYPE_BOOL,
    _oid("int2"): common_pb2.COLUMN_TYPE_INT64,
    _oid("int4"): common_pb2.COLUMN_TYPE_INT64,
    _oid("int8"): common_pb2.COLUMN_TYPE_INT64,
    _oid("oid"): common_pb2.COLUMN_TYPE_INT64,
    _oid("float4"): common_pb2.COLUMN_TYPE_FLOAT64,
    _oid("float8"): common_pb2.COLUMN_TYPE_FLOAT64,
    _oid("numeric"): common_pb2.COLUMN_TYPE_DECIMAL,
    _oid("date"): common_pb2.COLUMN_TYPE_DATE,
    _oid("timestamp"): common_pb2.COLUMN_TYPE_TIMESTAMP,
    _oid("timestamptz"): common_pb2.COLUMN_TYPE_TIMESTAMP_TZ,
    _oid("json"): common_pb2.COLUMN_TYPE_JSON,
    _oid("jsonb"): common_pb2.COLUMN_TYPE_JSON,
    _oid("uuid"): common_pb2.COLUMN_TYPE_UUID,
    _oid("bytea"): common_pb2.COLUMN_TYPE_BYTES,
    _oid("interval"): common_pb2.COLUMN_TYPE_INTERVAL,
}

# Types whose default psycopg loader is exact; every other type is loaded as its text.
_NATIVE_OIDS = frozenset(
    _oid(name)
    for name in (
        "bool",
        "int2",
        "int4",
        "int8",
        "oid",
        "float4",
        "float8",
        "text",
        "varchar",
        "bpchar",
        "name",
        "bytea",
    )
)


def column_type_for(oid: int, type_name: str) -> ColumnType:
    """The logical column type of a PostgreSQL type. `type_name` is used only when the oid is 0
    (unknown), so synthetic callers can name a built-in type; anything unmapped is STRING."""
    found = _TYPE_BY_OID.get(oid)
    if found is not None:
        return found
    if oid == 0:
        info = postgres.types.get(type_name)
        if info is not None and info.name == type_name:
            return _TYPE_BY_OID.get(info.oid, common_pb2.COLUMN_TYPE_STRING)
    return common_pb2.COLUMN_TYPE_STRING


def type_name_for(oid: int) -> str | None:
    """The name of a built-in type ('int4', 'timestamptz', 'int4[]' for arrays), or None when the
    oid is not built in (enums, domains' arrays, extension types: ask pg_type)."""
    info = postgres.types.get(oid)
    if info is None:
        return None
    return f"{info.name}[]" if oid == info.array_oid and oid != info.oid else info.name


class _TextLoader(Loader):
    """Any type as its PostgreSQL text output."""

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        encoding = self.connection.info.encoding if self.connection is not None else "utf-8"
        # SQL_ASCII databases promise no encoding at all: read as UTF-8, replacing what is not.
        self._encoding, self._errors = ("utf-8", "replace") if encoding == "ascii" else (encoding, "strict")

    def load(self, data: Buffer) -> str:
        return bytes(data).decode(self._encoding, self._errors)


def register_frame_loaders(adapters: AdaptersMap, oids: Iterable[int] | None = None) -> None:
    """Make `adapters` (a cursor's, normally) return what `build_frame` reads losslessly: the
    default loaders for the natively exact types, PostgreSQL's text for every other type of
    `oids` (a result's columns), or without them for every type (known ones, their arrays, and,
    through oid 0, types psycopg has never heard of). For a result already received, naming its
    columns costs a few registrations instead of about two hundred (psycopg loads rows when they
    are fetched, with the loaders of that moment)."""
    if oids is None:
        every = {0}
        for info in adapters.types:
            every.add(info.oid)
            if info.array_oid:
                every.add(info.array_oid)
        oids = every
    for oid in set(oids) - _NATIVE_OIDS:
        adapters.register_loader(oid, _TextLoader)


# ---------------------------------------------------------------------------------------------
# Calendar arithmetic (proleptic Gregorian, astronomical years: 1 BC is year 0), as PostgreSQL


def _days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _checked_days(year: int, month: int, day: int, bc: bool) -> int:
    if bc:
        year = 1 - year
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    length = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= month <= 12 or not 1 <= day <= length[month - 1]:
        raise ValueError(f"no such day: {year}-{month}-{day}")
    return _days_from_civil(year, month, day)


_DATE_RE = re.compile(r"(\d{4,})-(\d\d)-(\d\d)( BC)?")
_TIMESTAMP_RE = re.compile(
    r"(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
    r"(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?( BC)?"
)


def _date_days(value: object) -> int:
    if isinstance(value, str):
        if len(value) == 10 and value[4] == "-":
            return dt.date.fromisoformat(value).toordinal() - EPOCH_ORDINAL
        if value == "infinity":
            return DATE_INFINITY
        if value == "-infinity":
            return DATE_MINUS_INFINITY
        match = _DATE_RE.fullmatch(value)
        if match is None:
            raise ValueError(f"not an ISO date: {value!r}")
        days = _checked_days(int(match[1]), int(match[2]), int(match[3]), match[4] is not None)
        if not DATE_MINUS_INFINITY < days < DATE_INFINITY:
            raise ValueError(f"date out of range: {value!r}")
        return days
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.toordinal() - EPOCH_ORDINAL
    raise TypeError(f"expected a date or its ISO text, got {type(value).__name__}")


def _delta_micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def _timestamp_micros(value: object, with_tz: bool) -> int:
    if isinstance(value, str):
        if value == "infinity":
            return TIMESTAMP_INFINITY
        if value == "-infinity":
            return TIMESTAMP_MINUS_INFINITY
        if len(value) >= 19 and value[4] == "-" and value[-1].isdigit():
            value = dt.datetime.fromisoformat(value)  # the common case: a four-digit year AD
        else:
            return _parse_far_timestamp(value, with_tz)
    if isinstance(value, dt.datetime):
        if (value.tzinfo is not None) != with_tz:
            raise ValueError(
                "a timestamptz needs an aware datetime" if with_tz else "a timestamp needs a naive datetime"
            )
        return _delta_micros(value - (EPOCH_UTC if with_tz else EPOCH_NAIVE))
    raise TypeError(f"expected a datetime or its ISO text, got {type(value).__name__}")


def _parse_far_timestamp(text: str, with_tz: bool) -> int:
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO timestamp: {text!r}")
    if (match[8] is not None) != with_tz:
        raise ValueError(f"{'missing' if with_tz else 'unexpected'} time zone offset in {text!r}")
    days = _checked_days(int(match[1]), int(match[2]), int(match[3]), match[12] is not None)
    hour, minute, second = int(match[4]), int(match[5]), int(match[6])
    if hour > 24 or minute > 59 or second > 60:
        raise ValueError(f"no such time: {text!r}")
    fraction = int((match[7] or "").ljust(6, "0"))
    micros = days * US_PER_DAY + ((hour * 60 + minute) * 60 + second) * US_PER_SECOND + fraction
    if match[8] is not None:
        offset = (int(match[9]) * 60 + int(match[10] or 0)) * 60 + int(match[11] or 0)
        micros -= (offset if match[8] == "+" else -offset) * US_PER_SECOND
    if not TIMESTAMP_MINUS_INFINITY < micros < TIMESTAMP_INFINITY:
        raise ValueError(f"{text!r} is outside int64 microseconds since 1970")
    return micros


_POSTGRES_INTERVAL_RE = re.compile(
    r"(?:([+-]?\d+) years? ?)?(?:([+-]?\d+) mons? ?)?(?:([+-]?\d+) days? ?)?"
    r"(?:([+-]?)(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?"
)


def _interval_iso(value: object) -> str:
    if isinstance(value, str):
        if value.startswith("P"):
            return value  # already iso_8601 (what the executor asks PostgreSQL for)
        match = _POSTGRES_INTERVAL_RE.fullmatch(value)
        if not value or match is None:
            raise ValueError(f"not an interval in the iso_8601 or postgres style: {value!r}")
        years, months, days = (int(group or 0) for group in match.groups()[:3])
        micros = 0
        if match[5] is not None:
            micros = (int(match[5]) * 3600 + int(match[6]) * 60 + int(match[7])) * US_PER_SECOND
            micros += int((match[8] or "").ljust(6, "0"))
            micros = -micros if match[4] == "-" else micros
        return interval_text(years * 12 + months, days, micros)
    if isinstance(value, dt.timedelta):
        return interval_text(0, value.days, value.seconds * US_PER_SECOND + value.microseconds)
    raise TypeError(f"expected an interval's text or a timedelta, got {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# JSON


class _RawNumber:
    """A JSON number a Python float cannot hold exactly; written back with its own digits."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


def _exact_float(token: str) -> float | _RawNumber:
    number = float(token)
    if math.isfinite(number):
        shortest = repr(number)
        if shortest == token or Decimal(shortest) == Decimal(token):
            return number
    return _RawNumber(token)


_DECODER = json.JSONDecoder(parse_float=_exact_float)
_DECODER_LONG_INTS = json.JSONDecoder(parse_float=_exact_float, parse_int=lambda token: _RawNumber(token))
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_ASCII_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_json(value: object) -> str:
    """Canonical JSON. `str`/`bytes` values are JSON documents (PostgreSQL's text of a json or
    jsonb value); anything else is a Python value to serialise (dict, list, str inside, ...)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8")
    if not isinstance(value, str):
        return _dump_canonical(value)
    try:
        document = _DECODER.decode(value)
    except ValueError as exc:
        if "digits" not in str(exc):  # Python refuses to convert integers of more than 4300 digits
            raise
        document = _DECODER_LONG_INTS.decode(value)
    text = _dump_canonical(document)
    if "\\u" in value and not _is_utf8_safe(text):
        text = _dump_canonical(document, ensure_ascii=True)
    return text


def _is_utf8_safe(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dump_canonical(document: object, *, ensure_ascii: bool = False) -> str:
    try:
        return (_ASCII_ENCODER if ensure_ascii else _ENCODER).encode(document)
    except TypeError:
        if not _contains_raw(document):
            raise
    parts: list[str] = []
    _dump_into(document, parts, ensure_ascii)
    return "".join(parts)


def _contains_raw(value: object) -> bool:
    if isinstance(value, _RawNumber):
        return True
    if isinstance(value, dict):
        return any(_contains_raw(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_raw(item) for item in value)
    return False


def _dump_into(value: object, parts: list[str], ensure_ascii: bool) -> None:
    if isinstance(value, _RawNumber):
        parts.append(value.token)
    elif isinstance(value, dict):
        parts.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                parts.append(",")
            parts.append(json.dumps(key, ensure_ascii=ensure_ascii))
            parts.append(":")
            _dump_into(value[key], parts, ensure_ascii)
        parts.append("}")
    elif isinstance(value, list):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _dump_into(item, parts, ensure_ascii)
        parts.append("]")
    else:
        parts.append(json.dumps(value, ensure_ascii=ensure_ascii))


# ---------------------------------------------------------------------------------------------
# Building


def _decimal_text(value: object) -> str:
    if isinstance(value, str):
        return value  # numeric's text output is already exact
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return format(Decimal(value), "f")  # 'f' never uses exponents; NaN and Infinity keep their names
    raise TypeError(f"expected a Decimal or numeric text, got {type(value).__name__}")


def _string_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _uuid_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"expected a UUID, got {type(value).__name__}")


def _bytes_value(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"expected bytes, got {type(value).__name__}")


def _strict_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected a bool, got {type(value).__name__}")


def _strict_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an int, got {type(value).__name__}")


def _float(value: object) -> float:
    if isinstance(value, (float, int, Decimal)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a float, got {type(value).__name__}")


# Per logical type: the `values` member, the converter, the zero value a NULL row holds, and
# whether a list of already-typed values can be handed to protobuf unconverted.
_Spec = tuple[str, Callable[[Any], Any], object, bool]
_SPECS: dict[int, _Spec] = {
    common_pb2.COLUMN_TYPE_BOOL: ("bool_values", _strict_bool, False, True),
    common_pb2.COLUMN_TYPE_INT64: ("int64_values", _strict_int, 0, True),
    common_pb2.COLUMN_TYPE_FLOAT64: ("double_values", _float, 0.0, True),
    common_pb2.COLUMN_TYPE_DECIMAL: ("string_values", _decimal_text, "", False),
    common_pb2.COLUMN_TYPE_STRING: ("string_values", _string_text, "", True),
    common_pb2.COLUMN_TYPE_DATE: ("date_values", _date_days, 0, False),
    common_pb2.COLUMN_TYPE_TIMESTAMP: ("timestamp_values", lambda v: _timestamp_micros(v, False), 0, False),
    common_pb2.COLUMN_TYPE_TIMESTAMP_TZ: ("timestamp_values", lambda v: _timestamp_micros(v, True), 0, False),
    common_pb2.COLUMN_TYPE_JSON: ("string_values", canonical_json, "", False),
    common_pb2.COLUMN_TYPE_UUID: ("string_values", _uuid_text, "", False),
    common_pb2.COLUMN_TYPE_BYTES: ("bytes_values", _bytes_value, b"", True),
    common_pb2.COLUMN_TYPE_INTERVAL: ("string_values", _interval_iso, "", False),
}


def _fill(column: common_pb2.Column, values: Sequence[object]) -> None:
    member, convert, zero, passthrough = _SPECS[column.type]
    holder = getattr(column, member)
    holder.SetInParent()  # the oneof names the type even when there are no rows
    target = holder.values
    if None in values:
        column.nulls.extend([value is None for value in values])
        target.extend([zero if value is None else convert(value) for value in values])
        return
    if passthrough:
        try:
            target.extend(values)  # the fast path: psycopg already produced the exact Python type
            return
        except (TypeError, ValueError):
            del target[:]
    target.extend([convert(value) for value in values])


def build_frame(
    columns: Sequence[tuple[str, int, str]], rows: Sequence[Sequence[object]], truncated: bool
) -> DataFrame:
    """A DataFrame from result columns (name, type oid, type name) and rows of values as
    `register_frame_loaders` makes psycopg produce them (or the equivalent Python objects).
    Raises `UnrepresentableValue` (a ValueError) naming the column of a value it cannot carry."""
    width = len(columns)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row has {len(row)} values for {width} columns")
    frame = DataFrame(row_count=len(rows), truncated=truncated)
    data: Iterable[Sequence[object]] = zip(*rows, strict=True) if rows else [() for _ in columns]
    for (name, oid, type_name), values in zip(columns, data, strict=True):
        column = frame.columns.add(name=name, type=column_type_for(oid, type_name), db_type=type_name)
        try:
            _fill(column, values)
        except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
            raise UnrepresentableValue(name, str(exc)) from exc
    return frame
