"""Typed parameters, table-driven: save-time checks of declarations (every type and constraint,
with field paths), run-time binding (types, constraints, lists, date ranges, defaults, unknown
and missing names, all violations at once), SQL-injection strings as values (they come back as
the same Python string: data, never SQL), and canonical texts. The pattern matcher has its own
tests (test_regex.py)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from google.type import date_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.v1 import common_pb2, query_pb2
from server.errors import InvalidArgument
from server.queries.parameters import bind, canonical, check_specs

Q = query_pb2
STRING, INT, FLOAT, BOOL = Q.PARAMETER_TYPE_STRING, Q.PARAMETER_TYPE_INT, Q.PARAMETER_TYPE_FLOAT, Q.PARAMETER_TYPE_BOOL
DATE, TIMESTAMP, DATE_RANGE, ENUM = (
    Q.PARAMETER_TYPE_DATE,
    Q.PARAMETER_TYPE_TIMESTAMP,
    Q.PARAMETER_TYPE_DATE_RANGE,
    Q.PARAMETER_TYPE_ENUM,
)
UTC = dt.UTC


def spec(name: str, type: int, **kw: Any) -> query_pb2.ParameterSpec:
    return query_pb2.ParameterSpec(name=name, type=type, **kw)  # type: ignore[arg-type]


def S(text: str) -> common_pb2.ParameterValue:
    return common_pb2.ParameterValue(string_value=text)


def I(number: int) -> common_pb2.ParameterValue:  # noqa: E743
    return common_pb2.ParameterValue(int_value=number)


def F(number: float) -> common_pb2.ParameterValue:
    return common_pb2.ParameterValue(double_value=number)


def B(flag: bool) -> common_pb2.ParameterValue:
    return common_pb2.ParameterValue(bool_value=flag)


def gdate(year: int, month: int, day: int) -> date_pb2.Date:
    return date_pb2.Date(year=year, month=month, day=day)


def D(year: int, month: int, day: int) -> common_pb2.ParameterValue:
    return common_pb2.ParameterValue(date_value=gdate(year, month, day))


def T(seconds: int, nanos: int = 0) -> common_pb2.ParameterValue:
    return common_pb2.ParameterValue(timestamp_value=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))


def TS(when: dt.datetime) -> common_pb2.ParameterValue:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return common_pb2.ParameterValue(timestamp_value=stamp)


def RNG(start: tuple[int, int, int] | None, end: tuple[int, int, int] | None) -> common_pb2.ParameterValue:
    span = common_pb2.DateRange()
    if start is not None:
        span.start.CopyFrom(gdate(*start))
    if end is not None:
        span.end.CopyFrom(gdate(*end))
    return common_pb2.ParameterValue(date_range_value=span)


def L(*items: common_pb2.ParameterValue) -> common_pb2.ParameterValue:
    return common_pb2.ParameterValue(list_value=common_pb2.ParameterValueList(values=items))


EMPTY = common_pb2.ParameterValue()


def pairs(violations: Any) -> list[tuple[str, str]]:
    return [(v.field, v.reason) for v in violations]


def bind_error(
    specs: list[query_pb2.ParameterSpec], values: Mapping[str, common_pb2.ParameterValue]
) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        bind(specs, values)
    return caught.value


# ---------------------------------------------------------------------------------------------
# check_specs: declarations.

P = "query.parameters"
VALID_SPECS = [
    spec("s", STRING, min_length=1, max_length=10, pattern="[a-z]+", default_value=S("abc")),
    spec("s_allow", STRING, allowed_values=["a", "b"], default_value=S("a")),
    spec("i", INT, min=I(1), max=I(10), default_value=I(5), required=True),
    spec("f", FLOAT, min=I(0), max=F(1.5), default_value=I(1)),
    spec("b", BOOL, default_value=B(False)),
    spec("d", DATE, min=D(2020, 1, 1), max=D(2030, 12, 31), default_value=D(2024, 2, 29)),
    spec("t", TIMESTAMP, min=T(0), max=T(2_000_000_000), default_value=T(1_700_000_000)),
    spec("r", DATE_RANGE, min=D(2020, 1, 1), default_value=RNG((2024, 1, 1), (2024, 1, 31))),
    spec("e", ENUM, allowed_values=["low", "high"], default_value=S("low")),
    spec("ids", INT, list=True, max_items=3, min=I(1), default_value=L(I(1), I(2))),
    spec("tags", STRING, list=True, pattern="[a-z]{1,5}", default_value=L()),
    spec("levels", ENUM, list=True, allowed_values=["a", "b"]),
    spec("redos", STRING, pattern=r"(\w+\s?)*$"),  # safe: the matcher is linear-time
]


def test_valid_specs_have_no_violations() -> None:
    assert check_specs(VALID_SPECS) == []


SPEC_CASES: list[tuple[str, list[query_pb2.ParameterSpec], list[tuple[str, str]]]] = [
    (
        "duplicate names",
        [spec("a", INT), spec("a", STRING)],
        [(f"{P}[1].name", "DUPLICATE_PARAMETER")],
    ),
    ("reserved facility_id", [spec("facility_id", STRING)], [(f"{P}[0].name", "RESERVED_PARAMETER")]),
    ("invalid name", [spec("Bad-Name", STRING)], [(f"{P}[0].name", "INVALID_NAME")]),
    ("empty name", [spec("", STRING)], [(f"{P}[0].name", "INVALID_NAME")]),
    ("name too long", [spec("a" * 64, STRING)], [(f"{P}[0].name", "INVALID_NAME")]),
    ("no type", [spec("a", Q.PARAMETER_TYPE_UNSPECIFIED)], [(f"{P}[0].type", "INVALID_TYPE")]),
    ("unknown type", [spec("a", 99)], [(f"{P}[0].type", "INVALID_TYPE")]),
    ("enum without values", [spec("a", ENUM)], [(f"{P}[0].allowed_values", "MISSING_ALLOWED_VALUES")]),
    (
        "allowed values on INT",
        [spec("a", INT, allowed_values=["1"])],
        [(f"{P}[0].allowed_values", "INAPPLICABLE_CONSTRAINT")],
    ),
    (
        "duplicate allowed values",
        [spec("a", ENUM, allowed_values=["x", "x"])],
        [(f"{P}[0].allowed_values[1]", "DUPLICATE_ALLOWED_VALUE")],
    ),
    ("pattern on INT", [spec("a", INT, pattern="\\d+")], [(f"{P}[0].pattern", "INAPPLICABLE_CONSTRAINT")]),
    (
        "pattern on ENUM",
        [spec("a", ENUM, allowed_values=["x"], pattern="x")],
        [(f"{P}[0].pattern", "INAPPLICABLE_CONSTRAINT")],
    ),
    ("length on INT", [spec("a", INT, max_length=3)], [(f"{P}[0].max_length", "INAPPLICABLE_CONSTRAINT")]),
    ("min on STRING", [spec("a", STRING, min=S("a"))], [(f"{P}[0].min", "INAPPLICABLE_CONSTRAINT")]),
    ("max on BOOL", [spec("a", BOOL, max=B(True))], [(f"{P}[0].max", "INAPPLICABLE_CONSTRAINT")]),
    ("min of the wrong kind", [spec("a", INT, min=S("1"))], [(f"{P}[0].min", "WRONG_TYPE")]),
    ("float min as double for INT", [spec("a", INT, max=F(1.5))], [(f"{P}[0].max", "WRONG_TYPE")]),
    ("non-finite FLOAT bound", [spec("a", FLOAT, max=F(float("inf")))], [(f"{P}[0].max", "WRONG_TYPE")]),
    ("invalid DATE bound", [spec("a", DATE, min=D(2023, 2, 30))], [(f"{P}[0].min", "WRONG_TYPE")]),
    ("timestamp bound for DATE", [spec("a", DATE, min=T(0))], [(f"{P}[0].min", "WRONG_TYPE")]),
    ("int min > max", [spec("a", INT, min=I(5), max=I(4))], [(f"{P}[0].min", "INVALID_RANGE")]),
    ("float min > max", [spec("a", FLOAT, min=F(0.5), max=I(0))], [(f"{P}[0].min", "INVALID_RANGE")]),
    ("date min > max", [spec("a", DATE, min=D(2024, 1, 2), max=D(2024, 1, 1))], [(f"{P}[0].min", "INVALID_RANGE")]),
    ("timestamp min > max", [spec("a", TIMESTAMP, min=T(10), max=T(9))], [(f"{P}[0].min", "INVALID_RANGE")]),
    ("invalid pattern", [spec("a", STRING, pattern="(")], [(f"{P}[0].pattern", "INVALID_PATTERN")]),
    ("backreference", [spec("a", STRING, pattern="(a)\\1")], [(f"{P}[0].pattern", "INVALID_PATTERN")]),
    ("look-ahead", [spec("a", STRING, pattern="(?=a)a")], [(f"{P}[0].pattern", "INVALID_PATTERN")]),
    ("POSIX class", [spec("a", STRING, pattern="[[:alpha:]]+")], [(f"{P}[0].pattern", "INVALID_PATTERN")]),
    ("pattern too long", [spec("a", STRING, pattern="a" * 513)], [(f"{P}[0].pattern", "TOO_LONG")]),
    ("pattern too complex", [spec("a", STRING, pattern="(?:a{40}){60}")], [(f"{P}[0].pattern", "INVALID_PATTERN")]),
    (
        "min_length > max_length",
        [spec("a", STRING, min_length=5, max_length=4)],
        [(f"{P}[0].min_length", "INVALID_RANGE")],
    ),
    ("max_length too big", [spec("a", STRING, max_length=5000)], [(f"{P}[0].max_length", "OUT_OF_RANGE")]),
    ("negative min_length", [spec("a", STRING, min_length=-1)], [(f"{P}[0].min_length", "OUT_OF_RANGE")]),
    ("max_items without list", [spec("a", INT, max_items=3)], [(f"{P}[0].max_items", "INAPPLICABLE_CONSTRAINT")]),
    ("max_items too big", [spec("a", INT, list=True, max_items=2000)], [(f"{P}[0].max_items", "OUT_OF_RANGE")]),
    ("list of date ranges", [spec("a", DATE_RANGE, list=True)], [(f"{P}[0].list", "UNSUPPORTED")]),
    (
        "range part clashes",
        [spec("p", DATE_RANGE), spec("p_start", INT), spec("p_end", DATE)],
        [(f"{P}[1].name", "PARAMETER_NAME_CONFLICT"), (f"{P}[2].name", "PARAMETER_NAME_CONFLICT")],
    ),
    (
        "allowed value against the pattern",
        [spec("a", STRING, pattern="[a-z]+", allowed_values=["ok", "NO"])],
        [(f"{P}[0].allowed_values[1]", "PATTERN_MISMATCH")],
    ),
    (
        "allowed value too long",
        [spec("a", STRING, max_length=2, allowed_values=["abc"])],
        [(f"{P}[0].allowed_values[0]", "TOO_LONG")],
    ),
    # defaults must have the type and satisfy the constraints
    ("default of the wrong type", [spec("a", INT, default_value=S("5"))], [(f"{P}[0].default_value", "WRONG_TYPE")]),
    ("default list for a scalar", [spec("a", INT, default_value=L(I(1)))], [(f"{P}[0].default_value", "WRONG_TYPE")]),
    (
        "default scalar for a list",
        [spec("a", INT, list=True, default_value=I(1))],
        [(f"{P}[0].default_value", "WRONG_TYPE")],
    ),
    ("default below min", [spec("a", INT, min=I(1), default_value=I(0))], [(f"{P}[0].default_value", "OUT_OF_RANGE")]),
    (
        "default above max",
        [spec("a", DATE, max=D(2020, 1, 1), default_value=D(2021, 1, 1))],
        [(f"{P}[0].default_value", "OUT_OF_RANGE")],
    ),
    (
        "default too long",
        [spec("a", STRING, max_length=2, default_value=S("abc"))],
        [(f"{P}[0].default_value", "TOO_LONG")],
    ),
    (
        "default too short",
        [spec("a", STRING, min_length=2, default_value=S("a"))],
        [(f"{P}[0].default_value", "TOO_SHORT")],
    ),
    (
        "default against the pattern",
        [spec("a", STRING, pattern="\\d+", default_value=S("x"))],
        [(f"{P}[0].default_value", "PATTERN_MISMATCH")],
    ),
    (
        "default not allowed",
        [spec("a", ENUM, allowed_values=["x"], default_value=S("y"))],
        [(f"{P}[0].default_value", "NOT_ALLOWED")],
    ),
    (
        "default list element",
        [spec("a", INT, list=True, default_value=L(I(1), S("2")))],
        [(f"{P}[0].default_value.list_value.values[1]", "WRONG_TYPE")],
    ),
    (
        "default list too long",
        [spec("a", INT, list=True, max_items=1, default_value=L(I(1), I(2)))],
        [(f"{P}[0].default_value", "TOO_MANY_ITEMS")],
    ),
    (
        "default range reversed",
        [spec("a", DATE_RANGE, default_value=RNG((2024, 2, 1), (2024, 1, 1)))],
        [(f"{P}[0].default_value", "INVALID_RANGE")],
    ),
    (
        "default range half",
        [spec("a", DATE_RANGE, default_value=RNG((2024, 2, 1), None))],
        [(f"{P}[0].default_value.date_range_value.end", "WRONG_TYPE")],
    ),
    (
        "default invalid date",
        [spec("a", DATE, default_value=D(2024, 13, 1))],
        [(f"{P}[0].default_value", "WRONG_TYPE")],
    ),
    (
        "every problem at once",
        [spec("facility_id", INT, min=I(3), max=I(2), default_value=S("x")), spec("e", ENUM)],
        [
            (f"{P}[0].name", "RESERVED_PARAMETER"),
            (f"{P}[0].min", "INVALID_RANGE"),
            (f"{P}[0].default_value", "WRONG_TYPE"),
            (f"{P}[1].allowed_values", "MISSING_ALLOWED_VALUES"),
        ],
    ),
]


@pytest.mark.parametrize(("specs", "expected"), [(s, e) for _, s, e in SPEC_CASES], ids=[i for i, _, _ in SPEC_CASES])
def test_check_specs(specs: list[query_pb2.ParameterSpec], expected: list[tuple[str, str]]) -> None:
    assert pairs(check_specs(specs)) == expected


def test_check_specs_uses_the_given_path_and_names_the_problem() -> None:
    [violation] = check_specs([spec("n", INT, min=I(2), max=I(1))], "parameters")
    assert violation.field == "parameters[0].min"
    assert violation.description == "min (2) is greater than max (1)"


# ---------------------------------------------------------------------------------------------
# bind: run-time values.

WHEN = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
BIND_OK: list[tuple[str, query_pb2.ParameterSpec, common_pb2.ParameterValue | None, dict[str, object]]] = [
    ("string", spec("x", STRING), S("hello"), {"x": "hello"}),
    ("empty string", spec("x", STRING), S(""), {"x": ""}),
    ("string at max length", spec("x", STRING, max_length=3), S("abc"), {"x": "abc"}),
    ("default max length", spec("x", STRING), S("a" * 4096), {"x": "a" * 4096}),
    ("string pattern", spec("x", STRING, pattern="[A-Z]{2}-\\d{3}"), S("AB-123"), {"x": "AB-123"}),
    ("string allow-list", spec("x", STRING, allowed_values=["a", "b"]), S("b"), {"x": "b"}),
    ("int", spec("x", INT), I(-42), {"x": -42}),
    ("int64 extremes", spec("x", INT), I(2**63 - 1), {"x": 2**63 - 1}),
    ("int bounds inclusive", spec("x", INT, min=I(1), max=I(3)), I(3), {"x": 3}),
    ("float", spec("x", FLOAT), F(2.5), {"x": 2.5}),
    ("int for float", spec("x", FLOAT), I(2), {"x": 2.0}),
    ("float bounds", spec("x", FLOAT, min=I(0), max=F(1.0)), F(1.0), {"x": 1.0}),
    ("bool true", spec("x", BOOL), B(True), {"x": True}),
    ("bool false", spec("x", BOOL), B(False), {"x": False}),
    ("date", spec("x", DATE), D(2024, 2, 29), {"x": dt.date(2024, 2, 29)}),
    ("date bounds", spec("x", DATE, min=D(2024, 1, 1), max=D(2024, 12, 31)), D(2024, 1, 1), {"x": dt.date(2024, 1, 1)}),
    ("timestamp", spec("x", TIMESTAMP), TS(WHEN), {"x": WHEN}),
    (
        "timestamp nanos truncated",
        spec("x", TIMESTAMP),
        T(0, 1_999),
        {"x": dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)},
    ),
    ("timestamp before 1970", spec("x", TIMESTAMP), T(-86400), {"x": dt.datetime(1969, 12, 31, tzinfo=UTC)}),
    (
        "timestamp bounds",
        spec("x", TIMESTAMP, min=T(0), max=T(10)),
        T(10),
        {"x": dt.datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC)},
    ),
    (
        "date range",
        spec("r", DATE_RANGE),
        RNG((2024, 1, 1), (2024, 1, 31)),
        {"r_start": dt.date(2024, 1, 1), "r_end": dt.date(2024, 1, 31)},
    ),
    (
        "one-day range",
        spec("r", DATE_RANGE, min=D(2024, 1, 1), max=D(2024, 1, 1)),
        RNG((2024, 1, 1), (2024, 1, 1)),
        {"r_start": dt.date(2024, 1, 1), "r_end": dt.date(2024, 1, 1)},
    ),
    ("enum", spec("x", ENUM, allowed_values=["low", "high"]), S("high"), {"x": "high"}),
    ("int list", spec("x", INT, list=True), L(I(1), I(2), I(3)), {"x": [1, 2, 3]}),
    ("empty list", spec("x", INT, list=True), L(), {"x": []}),
    ("list at max_items", spec("x", STRING, list=True, max_items=2), L(S("a"), S("b")), {"x": ["a", "b"]}),
    ("float list mixing ints", spec("x", FLOAT, list=True), L(I(1), F(0.5)), {"x": [1.0, 0.5]}),
    ("date list", spec("x", DATE, list=True), L(D(2024, 1, 1)), {"x": [dt.date(2024, 1, 1)]}),
    ("bool list", spec("x", BOOL, list=True), L(B(True), B(False)), {"x": [True, False]}),
    ("timestamp list", spec("x", TIMESTAMP, list=True), L(TS(WHEN)), {"x": [WHEN]}),
    ("enum list", spec("x", ENUM, list=True, allowed_values=["a", "b"]), L(S("b"), S("a")), {"x": ["b", "a"]}),
    # defaults and absence
    ("default", spec("x", INT, default_value=I(7)), None, {"x": 7}),
    ("default for an empty value", spec("x", INT, default_value=I(7)), EMPTY, {"x": 7}),
    ("required with default", spec("x", INT, required=True, default_value=I(7)), None, {"x": 7}),
    ("optional without default", spec("x", INT), None, {"x": None}),
    ("optional list without default", spec("x", INT, list=True), None, {"x": None}),
    ("optional range without default", spec("r", DATE_RANGE), None, {"r_start": None, "r_end": None}),
    (
        "range default",
        spec("r", DATE_RANGE, default_value=RNG((2024, 1, 1), (2024, 1, 2))),
        None,
        {"r_start": dt.date(2024, 1, 1), "r_end": dt.date(2024, 1, 2)},
    ),
    ("list default", spec("x", STRING, list=True, default_value=L(S("a"))), None, {"x": ["a"]}),
]


@pytest.mark.parametrize(
    ("parameter", "value", "expected"), [(s, v, e) for _, s, v, e in BIND_OK], ids=[i for i, _, _, _ in BIND_OK]
)
def test_bind_converts_to_driver_values(
    parameter: query_pb2.ParameterSpec, value: common_pb2.ParameterValue | None, expected: dict[str, object]
) -> None:
    values = {} if value is None else {parameter.name: value}
    bound = bind([parameter], values)
    assert bound == expected
    for key, got in bound.items():
        assert type(got) is type(expected[key])  # no int where a float is due, no naive datetimes
        if isinstance(got, dt.datetime):
            assert got.tzinfo is UTC


def key(name: str) -> str:
    return f'parameter_values["{name}"]'


BIND_BAD: list[tuple[str, query_pb2.ParameterSpec, common_pb2.ParameterValue | None, list[tuple[str, str]]]] = [
    ("missing required", spec("x", INT, required=True), None, [(key("x"), "REQUIRED_PARAMETER")]),
    ("empty value for required", spec("x", INT, required=True), EMPTY, [(key("x"), "REQUIRED_PARAMETER")]),
    ("required range", spec("r", DATE_RANGE, required=True), None, [(key("r"), "REQUIRED_PARAMETER")]),
    ("string for INT", spec("x", INT), S("5"), [(key("x"), "WRONG_TYPE")]),
    ("double for INT", spec("x", INT), F(5.0), [(key("x"), "WRONG_TYPE")]),
    ("bool for INT", spec("x", INT), B(True), [(key("x"), "WRONG_TYPE")]),
    ("string for FLOAT", spec("x", FLOAT), S("1.5"), [(key("x"), "WRONG_TYPE")]),
    ("int for BOOL", spec("x", BOOL), I(1), [(key("x"), "WRONG_TYPE")]),
    ("string for BOOL", spec("x", BOOL), S("true"), [(key("x"), "WRONG_TYPE")]),
    ("int for STRING", spec("x", STRING), I(1), [(key("x"), "WRONG_TYPE")]),
    ("string for DATE", spec("x", DATE), S("2024-01-01"), [(key("x"), "WRONG_TYPE")]),
    ("timestamp for DATE", spec("x", DATE), T(0), [(key("x"), "WRONG_TYPE")]),
    ("date for TIMESTAMP", spec("x", TIMESTAMP), D(2024, 1, 1), [(key("x"), "WRONG_TYPE")]),
    ("date for DATE_RANGE", spec("r", DATE_RANGE), D(2024, 1, 1), [(key("r"), "WRONG_TYPE")]),
    ("int for ENUM", spec("x", ENUM, allowed_values=["1"]), I(1), [(key("x"), "WRONG_TYPE")]),
    ("invalid date", spec("x", DATE), D(2023, 2, 29), [(key("x"), "WRONG_TYPE")]),
    ("year zero", spec("x", DATE), D(0, 1, 1), [(key("x"), "WRONG_TYPE")]),
    ("timestamp beyond 9999", spec("x", TIMESTAMP), T(253402300800), [(key("x"), "WRONG_TYPE")]),
    ("negative nanos", spec("x", TIMESTAMP), T(0, -1), [(key("x"), "WRONG_TYPE")]),
    ("NaN", spec("x", FLOAT), F(float("nan")), [(key("x"), "OUT_OF_RANGE")]),
    ("infinity", spec("x", FLOAT), F(float("-inf")), [(key("x"), "OUT_OF_RANGE")]),
    ("int below min", spec("x", INT, min=I(1)), I(0), [(key("x"), "OUT_OF_RANGE")]),
    ("int above max", spec("x", INT, max=I(10)), I(11), [(key("x"), "OUT_OF_RANGE")]),
    ("float below min", spec("x", FLOAT, min=F(0.5)), I(0), [(key("x"), "OUT_OF_RANGE")]),
    ("float above max", spec("x", FLOAT, max=I(1)), F(1.0000001), [(key("x"), "OUT_OF_RANGE")]),
    ("date below min", spec("x", DATE, min=D(2024, 1, 1)), D(2023, 12, 31), [(key("x"), "OUT_OF_RANGE")]),
    ("timestamp above max", spec("x", TIMESTAMP, max=T(10)), T(10, 1000), [(key("x"), "OUT_OF_RANGE")]),
    (
        "range start below min",
        spec("r", DATE_RANGE, min=D(2024, 1, 1)),
        RNG((2023, 1, 1), (2024, 1, 2)),
        [(key("r"), "OUT_OF_RANGE")],
    ),
    (
        "range end above max",
        spec("r", DATE_RANGE, max=D(2024, 1, 1)),
        RNG((2024, 1, 1), (2024, 1, 2)),
        [(key("r"), "OUT_OF_RANGE")],
    ),
    ("range reversed", spec("r", DATE_RANGE), RNG((2024, 1, 2), (2024, 1, 1)), [(key("r"), "INVALID_RANGE")]),
    (
        "range without end",
        spec("r", DATE_RANGE),
        RNG((2024, 1, 2), None),
        [(f"{key('r')}.date_range_value.end", "WRONG_TYPE")],
    ),
    (
        "range with invalid start",
        spec("r", DATE_RANGE),
        RNG((2024, 2, 30), (2024, 3, 1)),
        [(f"{key('r')}.date_range_value.start", "WRONG_TYPE")],
    ),
    ("too long", spec("x", STRING, max_length=3), S("abcd"), [(key("x"), "TOO_LONG")]),
    ("longer than 4096", spec("x", STRING), S("a" * 4097), [(key("x"), "TOO_LONG")]),
    ("too short", spec("x", STRING, min_length=2), S("a"), [(key("x"), "TOO_SHORT")]),
    ("pattern mismatch", spec("x", STRING, pattern="\\d+"), S("12a"), [(key("x"), "PATTERN_MISMATCH")]),
    ("pattern is anchored", spec("x", STRING, pattern="\\d+"), S("a12"), [(key("x"), "PATTERN_MISMATCH")]),
    ("not in the enum", spec("x", ENUM, allowed_values=["low", "high"]), S("LOW"), [(key("x"), "NOT_ALLOWED")]),
    ("not in the allow-list", spec("x", STRING, allowed_values=["a"]), S("b"), [(key("x"), "NOT_ALLOWED")]),
    ("NUL character", spec("x", STRING), S("a\x00b"), [(key("x"), "INVALID_CHARACTER")]),
    ("scalar for a list", spec("x", INT, list=True), I(1), [(key("x"), "WRONG_TYPE")]),
    ("list for a scalar", spec("x", INT), L(I(1)), [(key("x"), "WRONG_TYPE")]),
    ("too many items", spec("x", INT, list=True, max_items=2), L(I(1), I(2), I(3)), [(key("x"), "TOO_MANY_ITEMS")]),
    (
        "more than 1000 items",
        spec("x", INT, list=True),
        L(*[I(k) for k in range(1001)]),
        [(key("x"), "TOO_MANY_ITEMS")],
    ),
    ("nested list", spec("x", INT, list=True), L(I(1), L(I(2))), [(f"{key('x')}.list_value.values[1]", "WRONG_TYPE")]),
    ("empty element", spec("x", INT, list=True), L(EMPTY), [(f"{key('x')}.list_value.values[0]", "WRONG_TYPE")]),
    (
        "every bad element",
        spec("x", INT, list=True, min=I(0)),
        L(I(1), S("2"), I(-1)),
        [(f"{key('x')}.list_value.values[1]", "WRONG_TYPE"), (f"{key('x')}.list_value.values[2]", "OUT_OF_RANGE")],
    ),
    (
        "element pattern",
        spec("x", STRING, list=True, pattern="[a-z]+"),
        L(S("ok"), S("NO")),
        [(f"{key('x')}.list_value.values[1]", "PATTERN_MISMATCH")],
    ),
    (
        "element not allowed",
        spec("x", ENUM, list=True, allowed_values=["a"]),
        L(S("b")),
        [(f"{key('x')}.list_value.values[0]", "NOT_ALLOWED")],
    ),
]


@pytest.mark.parametrize(
    ("parameter", "value", "expected"), [(s, v, e) for _, s, v, e in BIND_BAD], ids=[i for i, _, _, _ in BIND_BAD]
)
def test_bind_refuses_bad_values(
    parameter: query_pb2.ParameterSpec, value: common_pb2.ParameterValue | None, expected: list[tuple[str, str]]
) -> None:
    error = bind_error([parameter], {} if value is None else {parameter.name: value})
    assert pairs(error.violations) == expected
    assert f'parameter "{parameter.name}"' in error.violations[0].description  # it names the parameter
    assert error.message.startswith(f"invalid parameter values: {expected[0][0]}")


def test_unknown_and_reserved_names_are_refused() -> None:
    error = bind_error(
        [spec("a", INT)], {"a": I(1), "b": I(2), "facility_id": S("other-facility"), "r_start": D(2024, 1, 1)}
    )
    assert pairs(error.violations) == [
        (key("b"), "UNKNOWN_PARAMETER"),
        (key("facility_id"), "UNKNOWN_PARAMETER"),
        (key("r_start"), "UNKNOWN_PARAMETER"),
    ]
    assert "reserved" in error.violations[1].description
    assert "this query declares: a" in error.violations[0].description


def test_a_declared_facility_id_is_never_bound_from_input() -> None:
    # check_specs refuses the declaration; bind must not trust it either (say, in old data).
    error = bind_error([spec("facility_id", STRING)], {"facility_id": S("someone-elses")})
    assert pairs(error.violations) == [(key("facility_id"), "UNKNOWN_PARAMETER")]
    assert bind([spec("facility_id", STRING)], {}) == {}


def test_all_violations_are_reported_together() -> None:
    specs = [
        spec("a", INT, required=True),
        spec("b", STRING, max_length=1),
        spec("c", DATE_RANGE),
        spec("d", ENUM, allowed_values=["x"]),
    ]
    error = bind_error(specs, {"b": S("long"), "c": RNG((2024, 1, 2), (2024, 1, 1)), "d": S("y"), "zz": I(1)})
    assert pairs(error.violations) == [
        (key("zz"), "UNKNOWN_PARAMETER"),
        (key("a"), "REQUIRED_PARAMETER"),
        (key("b"), "TOO_LONG"),
        (key("c"), "INVALID_RANGE"),
        (key("d"), "NOT_ALLOWED"),
    ]
    assert error.reason == "INVALID_ARGUMENT"
    assert "(and 4 more)" in error.message


def test_bind_uses_the_given_path_and_quotes_names() -> None:
    error = bind_error([], {'we"ird': I(1)})
    assert error.violations[0].field == 'parameter_values["we\\"ird"]'
    with pytest.raises(InvalidArgument) as caught:
        bind([spec("x", INT, required=True)], {}, "run.values")
    assert caught.value.violations[0].field == 'run.values["x"]'


def test_bind_binds_every_parameter_of_a_mixed_query() -> None:
    specs = [
        spec("clinic", STRING, required=True),
        spec("period", DATE_RANGE, default_value=RNG((2024, 1, 1), (2024, 1, 31))),
        spec("wards", INT, list=True),
        spec("limit", INT, default_value=I(100), max=I(1000)),
        spec("note", STRING),
    ]
    assert bind(specs, {"clinic": S("north"), "wards": L(I(3), I(4))}) == {
        "clinic": "north",
        "period_start": dt.date(2024, 1, 1),
        "period_end": dt.date(2024, 1, 31),
        "wards": [3, 4],
        "limit": 100,
        "note": None,
    }


# ---------------------------------------------------------------------------------------------
# Injection strings are values: they come back unchanged, as data.

INJECTION = [
    "' OR 1=1 --",
    "' OR '1'='1",
    "admin'--",
    "'; DROP TABLE patients; --",
    "1; select pg_sleep(10)",
    "'); DROP TABLE students;--",
    '" OR ""="',
    "\\'; DROP TABLE x; --",
    "$$; drop table x; $$",
    "$tag$ ; delete from t; $tag$",
    "/* */ ; delete from t",
    "*/ ; delete from t; /*",
    "-- comment",
    "1 UNION SELECT password FROM users",
    ":facility_id",
    "%(facility_id)s",
    "%s%s%s",
    "?",
    "$1",
    "\u2018 OR 1=1 --",
    "\uff07 OR 1=1 --",
    "'; COPY (select 1) TO PROGRAM 'id'; --",
    "'; select set_config('role', 'postgres', false); --",
    "x' AND pg_sleep(10) IS NULL --",
    "'; with x as (delete from t returning *) select 1; --",
    "\r\n; delete from t",
    "ünïcödé 日本 🙂",
    "a" * 4096,
]


@pytest.mark.parametrize("payload", INJECTION, ids=[f"payload{k}" for k in range(len(INJECTION))])
def test_injection_strings_are_returned_as_the_same_data(payload: str) -> None:
    specs = [
        spec("s", STRING),
        spec("e", ENUM, allowed_values=[payload, "other"]),
        spec("l", STRING, list=True),
    ]
    bound = bind(specs, {"s": S(payload), "e": S(payload), "l": L(S(payload), S("plain"))})
    assert bound == {"s": payload, "e": payload, "l": [payload, "plain"]}
    assert type(bound["s"]) is str


@pytest.mark.parametrize("payload", INJECTION[:10], ids=[f"payload{k}" for k in range(10)])
@pytest.mark.parametrize("type_", [INT, FLOAT, BOOL, DATE, TIMESTAMP, DATE_RANGE])
def test_injection_strings_never_pass_as_other_types(payload: str, type_: int) -> None:
    error = bind_error([spec("x", type_)], {"x": S(payload)})
    assert pairs(error.violations) == [(key("x"), "WRONG_TYPE")]


@pytest.mark.parametrize("payload", INJECTION[:10], ids=[f"payload{k}" for k in range(10)])
def test_injection_strings_are_refused_by_constraints_not_rewritten(payload: str) -> None:
    specs = [spec("x", STRING, pattern="[A-Za-z0-9 ]*"), spec("e", ENUM, allowed_values=["a"])]
    error = bind_error(specs, {"x": S(payload), "e": S(payload)})
    assert [r for _, r in pairs(error.violations)] == ["PATTERN_MISMATCH", "NOT_ALLOWED"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200).filter(lambda s: "\x00" not in s))
def test_any_string_value_is_bound_unchanged(text: str) -> None:
    assert bind([spec("x", STRING)], {"x": S(text)}) == {"x": text}


# ---------------------------------------------------------------------------------------------
# Patterns on the binding path (the matcher itself: test_regex.py).


@pytest.mark.parametrize("pattern", [r"(\w+\s?)*$", r"(a+)+b", r"(a|aa)*c", r"\d*\d*\d*x", r".*a.*b.*c.*d"])
def test_catastrophic_patterns_run_in_linear_time(pattern: str) -> None:
    started = time.perf_counter()
    parameter = spec("x", STRING, pattern=pattern)
    outcomes = []
    for text in ["a" * 4095 + "!", "1" * 4096, "ab" * 2048, "a b " * 1023 + "!"]:
        try:
            bind([parameter], {"x": S(text)})
            outcomes.append(True)
        except InvalidArgument as e:
            assert pairs(e.violations) == [(key("x"), "PATTERN_MISMATCH")]
            outcomes.append(False)
    assert outcomes == [re.fullmatch(pattern, t) is not None for t in ["a!", "11", "abab", "a b !"]]
    assert time.perf_counter() - started < 2.0  # Python's re takes minutes on some of these


# ---------------------------------------------------------------------------------------------
# canonical: cache keys.


def test_canonical_is_sorted_and_type_tagged() -> None:
    text = canonical({"b": 1, "a": "x", "c": None})
    assert text == '[["a",["str","x"]],["b",["int","1"]],["c",["null"]]]'
    assert canonical({"c": None, "a": "x", "b": 1}) == text


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (1, 1.0),
        (1, True),
        (1, "1"),
        (0, False),
        (0.0, -0.0),
        ("2024-01-01", dt.date(2024, 1, 1)),
        (dt.date(2024, 1, 1), dt.datetime(2024, 1, 1, tzinfo=UTC)),
        ([1], (1,) and [1.0]),
        ([], None),
        ("", None),
    ],
)
def test_canonical_tells_types_apart(left: object, right: object) -> None:
    assert canonical({"x": left}) != canonical({"x": right})


def test_canonical_normalises_instants_to_utc() -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    assert canonical({"t": dt.datetime(2024, 1, 1, 13, tzinfo=cet)}) == canonical(
        {"t": dt.datetime(2024, 1, 1, 12, tzinfo=UTC)}
    )
    assert '"timestamp","2024-01-01T12:00:00.000000+00:00"' in canonical({"t": dt.datetime(2024, 1, 1, 12, tzinfo=UTC)})


def test_canonical_of_bound_values_round_trips_every_type() -> None:
    bound = bind(VALID_SPECS, {})
    assert canonical(bound) == canonical(dict(reversed(list(bound.items()))))
    assert '["r_start",["date","2024-01-01"]]' in canonical(bound)
    assert '["ids",["list",[["int","1"],["int","2"]]]]' in canonical(bound)


def test_canonical_keeps_strings_exact() -> None:
    payload = '\' OR 1=1 --\n"ünï"'
    assert canonical({"s": payload}) == canonical({"s": payload})
    assert canonical({"s": payload}) != canonical({"s": payload + " "})


def test_canonical_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        canonical({"x": object()})
