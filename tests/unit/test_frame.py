"""DataFrame building (server.queries.frame) and PHI masking (server.queries.masking), pure:
synthetic rows in the forms psycopg produces with the frame loaders, and as Python objects."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import postgres
from psycopg.adapt import AdaptersMap

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import query_pb2 as q
from server.queries import frame as fr
from server.queries.frame import (
    DATE_INFINITY,
    DATE_MINUS_INFINITY,
    TIMESTAMP_INFINITY,
    TIMESTAMP_MINUS_INFINITY,
    UnrepresentableValue,
    build_frame,
    canonical_json,
    column_texts,
    column_type_for,
    date_text,
    frame_to_rows,
    interval_text,
    register_frame_loaders,
    timestamp_text,
)
from server.queries.masking import MASKING_LEVEL_MASKED, MASKING_LEVEL_NONE, REDACTED, hash_text, mask_frame
from tessera_client import frames

UTC = dt.UTC


def oid(name: str) -> int:
    return postgres.types[name].oid


def col(name: str, type_name: str) -> tuple[str, int, str]:
    return (name, _array_oid(type_name) if type_name.endswith("[]") else oid(type_name), type_name)


def _array_oid(type_name: str) -> int:
    return postgres.types[type_name.removesuffix("[]")].array_oid


def one(type_name: str, *values: object) -> c.Column:
    return build_frame([col("v", type_name)], [(v,) for v in values], False).columns[0]


# --- types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("bool", c.COLUMN_TYPE_BOOL),
        ("int2", c.COLUMN_TYPE_INT64),
        ("int4", c.COLUMN_TYPE_INT64),
        ("int8", c.COLUMN_TYPE_INT64),
        ("oid", c.COLUMN_TYPE_INT64),
        ("float4", c.COLUMN_TYPE_FLOAT64),
        ("float8", c.COLUMN_TYPE_FLOAT64),
        ("numeric", c.COLUMN_TYPE_DECIMAL),
        ("text", c.COLUMN_TYPE_STRING),
        ("varchar", c.COLUMN_TYPE_STRING),
        ("bpchar", c.COLUMN_TYPE_STRING),
        ("name", c.COLUMN_TYPE_STRING),
        ("date", c.COLUMN_TYPE_DATE),
        ("timestamp", c.COLUMN_TYPE_TIMESTAMP),
        ("timestamptz", c.COLUMN_TYPE_TIMESTAMP_TZ),
        ("json", c.COLUMN_TYPE_JSON),
        ("jsonb", c.COLUMN_TYPE_JSON),
        ("uuid", c.COLUMN_TYPE_UUID),
        ("bytea", c.COLUMN_TYPE_BYTES),
        ("interval", c.COLUMN_TYPE_INTERVAL),
        ("inet", c.COLUMN_TYPE_STRING),
        ("time", c.COLUMN_TYPE_STRING),
    ],
)
def test_column_type_for_builtin_types(type_name: str, expected: int) -> None:
    assert column_type_for(oid(type_name), type_name) == expected
    assert column_type_for(0, type_name) == expected  # a synthetic caller may name the type instead


def test_arrays_enums_and_extension_types_are_strings() -> None:
    assert column_type_for(_array_oid("int4[]"), "int4[]") == c.COLUMN_TYPE_STRING
    assert column_type_for(987654, "citext") == c.COLUMN_TYPE_STRING
    assert column_type_for(987655, "mood") == c.COLUMN_TYPE_STRING
    assert column_type_for(0, "no_such_type") == c.COLUMN_TYPE_STRING
    assert fr.type_name_for(_array_oid("int4[]")) == "int4[]"
    assert fr.type_name_for(oid("timestamptz")) == "timestamptz"
    assert fr.type_name_for(987654) is None


def test_frame_loaders_keep_exact_defaults_and_read_everything_else_as_text() -> None:
    adapters = AdaptersMap(psycopg.adapters)
    defaults = {name: adapters.get_loader(oid(name), psycopg.pq.Format.TEXT) for name in ("int4", "text", "bytea")}
    register_frame_loaders(adapters)
    for name, loader in defaults.items():
        assert adapters.get_loader(oid(name), psycopg.pq.Format.TEXT) is loader
    for name in ("numeric", "date", "timestamp", "timestamptz", "interval", "json", "jsonb", "uuid", "inet"):
        assert adapters.get_loader(oid(name), psycopg.pq.Format.TEXT) is fr._TextLoader
    assert adapters.get_loader(_array_oid("int4[]"), psycopg.pq.Format.TEXT) is fr._TextLoader
    assert adapters.get_loader(0, psycopg.pq.Format.TEXT) is fr._TextLoader
    # the global map is untouched
    assert psycopg.adapters.get_loader(oid("numeric"), psycopg.pq.Format.TEXT) is not fr._TextLoader


def test_frame_loaders_for_a_results_columns_cover_exactly_those_columns() -> None:
    adapters = AdaptersMap(psycopg.adapters)
    default_int4 = adapters.get_loader(oid("int4"), psycopg.pq.Format.TEXT)
    default_date = adapters.get_loader(oid("date"), psycopg.pq.Format.TEXT)
    register_frame_loaders(adapters, [oid("int4"), oid("numeric"), _array_oid("int4[]"), 987654])
    assert adapters.get_loader(oid("int4"), psycopg.pq.Format.TEXT) is default_int4
    for column in (oid("numeric"), _array_oid("int4[]"), 987654):  # 987654: a type psycopg never heard of
        assert adapters.get_loader(column, psycopg.pq.Format.TEXT) is fr._TextLoader
    assert adapters.get_loader(oid("date"), psycopg.pq.Format.TEXT) is default_date  # not a column: untouched


# --- building --------------------------------------------------------------------------------


def test_every_type_from_text_forms() -> None:
    columns = [
        col("b", "bool"),
        col("i", "int8"),
        col("f", "float8"),
        col("n", "numeric"),
        col("s", "text"),
        col("d", "date"),
        col("ts", "timestamp"),
        col("tz", "timestamptz"),
        col("j", "jsonb"),
        col("u", "uuid"),
        col("by", "bytea"),
        col("iv", "interval"),
        col("a", "int4[]"),
    ]
    row = (
        True,
        2**63 - 1,
        0.1,
        "12.3400",
        "héllo",
        "2024-02-29",
        "2024-02-29 23:59:59.999999",
        "2024-02-29 23:59:59.5+05:30",
        '{"b": 1.10, "a": [1, 2]}',
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        b"\x00\xff",
        "P1Y2M-3DT4H5M6.5S",
        "{1,NULL,3}",
    )
    frame = build_frame(columns, [row], truncated=True)
    assert frame.row_count == 1 and frame.truncated
    by_name = {column.name: column for column in frame.columns}
    assert [column.db_type for column in frame.columns][:3] == ["bool", "int8", "float8"]
    assert by_name["i"].int64_values.values[0] == 2**63 - 1
    assert by_name["n"].string_values.values[0] == "12.3400"
    assert by_name["d"].date_values.values[0] == (dt.date(2024, 2, 29) - dt.date(1970, 1, 1)).days
    assert by_name["ts"].timestamp_values.values[0] == 1709251199999999
    assert by_name["tz"].timestamp_values.values[0] == 1709251199500000 - (5 * 3600 + 1800) * 10**6
    assert by_name["j"].string_values.values[0] == '{"a":[1,2],"b":1.1}'
    assert by_name["a"].type == c.COLUMN_TYPE_STRING and by_name["a"].db_type == "int4[]"
    assert all(not column.nulls for column in frame.columns)
    assert frame_to_rows(frame) == [
        {
            "b": True,
            "i": 2**63 - 1,
            "f": 0.1,
            "n": Decimal("12.3400"),
            "s": "héllo",
            "d": dt.date(2024, 2, 29),
            "ts": dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
            "tz": dt.datetime(2024, 2, 29, 18, 29, 59, 500000, tzinfo=UTC),
            "j": {"a": [1, 2], "b": 1.1},
            "u": uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            "by": b"\x00\xff",
            "iv": "P1Y2M-3DT4H5M6.5S",
            "a": "{1,NULL,3}",
        }
    ]


def test_python_objects_build_the_same_frame_as_text_forms() -> None:
    columns = [col("n", "numeric"), col("d", "date"), col("ts", "timestamp"), col("tz", "timestamptz")]
    columns += [col("j", "json"), col("u", "uuid"), col("iv", "interval"), col("by", "bytea")]
    text_row = (
        "0.0000001",
        "1999-12-31",
        "2000-01-01 00:00:00.000001",
        "2000-01-01 00:00:00+00",
        '{"x": [true, null]}',
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "P-1DT23H59M59.5S",
        b"ab",
    )
    python_row = (
        Decimal("1E-7"),
        dt.date(1999, 12, 31),
        dt.datetime(2000, 1, 1, 0, 0, 0, 1),
        dt.datetime(2000, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        {"x": [True, None]},
        uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        dt.timedelta(seconds=-0.5),
        memoryview(b"ab"),
    )
    assert build_frame(columns, [text_row], False) == build_frame(columns, [python_row], False)


def test_nulls_are_flagged_and_hold_the_zero_value() -> None:
    columns = [col("i", "int4"), col("s", "text"), col("d", "date"), col("j", "jsonb"), col("x", "int4")]
    rows = [(1, None, "2024-01-01", None, 7), (None, "a", None, "[]", 8), (3, "b", "2024-01-02", "{}", 9)]
    frame = build_frame(columns, rows, False)
    i, s, d, j, x = frame.columns
    assert list(i.nulls) == [False, True, False] and list(i.int64_values.values) == [1, 0, 3]
    assert list(s.nulls) == [True, False, False] and list(s.string_values.values) == ["", "a", "b"]
    assert list(d.nulls) == [False, True, False] and d.date_values.values[1] == 0
    assert list(j.nulls) == [True, False, False] and list(j.string_values.values) == ["", "[]", "{}"]
    assert list(x.nulls) == []  # no NULLs: left empty
    assert [row["s"] for row in frame_to_rows(frame)] == [None, "a", "b"]
    assert [row["i"] for row in frame_to_rows(frame)] == [1, None, 3]


def test_all_null_and_empty_columns_still_name_their_values_member() -> None:
    frame = build_frame([col("t", "timestamptz"), col("b", "bytea")], [(None, None)], False)
    assert frame.columns[0].WhichOneof("values") == "timestamp_values"
    assert list(frame.columns[0].nulls) == [True]
    empty = build_frame([col("i", "int8"), col("s", "text"), col("d", "date")], [], False)
    assert empty.row_count == 0
    assert [column.WhichOneof("values") for column in empty.columns] == [
        "int64_values",
        "string_values",
        "date_values",
    ]
    assert frame_to_rows(empty) == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("12.3400"), "12.3400"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("1.2E+3"), "1200"),
        (Decimal("-0.000"), "-0.000"),
        (Decimal("123456789012345678901234567890.123456789012345678901234567890"), None),
        (Decimal("NaN"), "NaN"),
        (Decimal("Infinity"), "Infinity"),
        (Decimal("-Infinity"), "-Infinity"),
        (10**40, "1" + "0" * 40),
        ("98765432109876543210.000000000000000000001", None),
    ],
)
def test_decimals_are_exact_text(value: object, text: str | None) -> None:
    expected = text if text is not None else str(value)
    assert one("numeric", value).string_values.values[0] == expected
    back = frame_to_rows(build_frame([col("v", "numeric")], [(value,)], False))[0]["v"]
    assert isinstance(back, Decimal) and format(back, "f") == expected


def test_floats_keep_specials() -> None:
    values = list(one("float8", 1.5, float("nan"), float("inf"), -float("inf"), 5e-324).double_values.values)
    assert values[0] == 1.5 and math.isnan(values[1]) and values[2:4] == [math.inf, -math.inf] and values[4] == 5e-324


def test_timestamps_are_exact_microseconds() -> None:
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
    micros = one("timestamp", moment, "2024-05-06 07:08:09.123456", "2024-05-06 07:08:09.1").timestamp_values.values
    expected = (
        ((moment.toordinal() - dt.date(1970, 1, 1).toordinal()) * 86400 + 7 * 3600 + 8 * 60 + 9) * 10**6
    ) + 123456
    assert list(micros) == [expected, expected, expected - 23456]
    before_epoch = one("timestamp", "1969-12-31 23:59:59.999999").timestamp_values.values[0]
    assert before_epoch == -1
    # an offset with seconds (local mean time, as PostgreSQL prints for 1850 in many zones)
    lmt = one("timestamptz", "1850-01-01 05:53:28+05:53:28").timestamp_values.values[0]
    assert lmt == (dt.datetime(1850, 1, 1, tzinfo=UTC) - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(
        microseconds=1
    )


def test_naive_and_aware_are_not_mixed_up() -> None:
    with pytest.raises(UnrepresentableValue, match="'v'"):
        one("timestamptz", dt.datetime(2024, 1, 1))
    with pytest.raises(UnrepresentableValue):
        one("timestamp", dt.datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(UnrepresentableValue):
        one("timestamptz", "2024-01-01 00:00:00")
    with pytest.raises(UnrepresentableValue):
        one("date", dt.datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("infinity", DATE_INFINITY),
        ("-infinity", DATE_MINUS_INFINITY),
        ("0001-12-31 BC", -719163),  # 1 BC is the year before 1 AD (no year 0)
        ("4714-11-24 BC", -2440588),  # PostgreSQL's first date: Julian day 0
        ("5874897-12-31", 2145042905),  # PostgreSQL's last date
        ("12345-06-07", None),
        ("0044-03-15 BC", None),
    ],
)
def test_far_and_infinite_dates(text: str, days: int | None) -> None:
    value = one("date", text).date_values.values[0]
    if days is not None:
        assert value == days
    assert date_text(value) == text
    back = frame_to_rows(build_frame([col("v", "date")], [(text,)], False))[0]["v"]
    assert back == text  # outside Python's dates: PostgreSQL's text


@pytest.mark.parametrize(
    "text",
    [
        "infinity",
        "-infinity",
        "0044-03-15 12:00:00.5 BC",
        "4714-11-24 00:00:00 BC",
        "12345-01-02 03:04:05.000006",
        "294246-12-31 23:59:59.999999",
    ],
)
def test_far_and_infinite_timestamps(text: str) -> None:
    value = one("timestamp", text).timestamp_values.values[0]
    assert timestamp_text(value, False) == text
    assert frame_to_rows(build_frame([col("v", "timestamp")], [(text,)], False))[0]["v"] == text


def test_infinite_timestamps_use_the_int64_extremes_and_far_tz_values_are_utc() -> None:
    assert list(one("timestamptz", "infinity", "-infinity").timestamp_values.values) == [
        TIMESTAMP_INFINITY,
        TIMESTAMP_MINUS_INFINITY,
    ]
    value = one("timestamptz", "0044-03-15 12:00:00+01 BC").timestamp_values.values[0]
    assert timestamp_text(value, True) == "0044-03-15 11:00:00+00 BC"


def test_timestamps_beyond_int64_microseconds_are_refused_not_bent() -> None:
    with pytest.raises(UnrepresentableValue, match="int64"):
        one("timestamp", "294276-12-31 23:59:59.999999")


@given(st.integers(min_value=-210866803200000000, max_value=9223372036854775806), st.booleans())
def test_timestamp_text_round_trips(micros: int, with_tz: bool) -> None:
    assert fr._timestamp_micros(timestamp_text(micros, with_tz), with_tz) == micros


@given(st.dates())
def test_calendar_matches_python(day: dt.date) -> None:
    days = day.toordinal() - dt.date(1970, 1, 1).toordinal()
    assert fr._days_from_civil(day.year, day.month, day.day) == days
    assert frames.civil_from_days(days) == (day.year, day.month, day.day)
    assert fr._date_days(date_text(days)) == days


@given(st.datetimes(timezones=st.just(UTC)))
def test_aware_datetimes_round_trip(moment: dt.datetime) -> None:
    frame = build_frame([col("v", "timestamptz")], [(moment,)], False)
    assert frame_to_rows(frame)[0]["v"] == moment


def test_malformed_dates_are_refused() -> None:
    for text in ("2023-02-29 BC", "2024-13-01", "yesterday", "01/02/2024"):
        with pytest.raises(UnrepresentableValue):
            one("date", text)


# --- JSON ------------------------------------------------------------------------------------


def test_json_is_canonical() -> None:
    text = '{"b": {"z": 1, "y": [3, 2, 1]}, "a": "é ✓", "c": null, "d": 1.50, "e": 1e2}'
    assert canonical_json(text) == '{"a":"é ✓","b":{"y":[3,2,1],"z":1},"c":null,"d":1.5,"e":100.0}'
    assert canonical_json(text) == json.dumps(
        json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert canonical_json({"b": 1, "a": [True]}) == '{"a":[true],"b":1}'
    assert canonical_json('"just a string"') == '"just a string"'


def test_json_numbers_a_float_cannot_hold_keep_their_digits() -> None:
    text = '{"big": 12345678901234567890123456789, "precise": 1.00000000000000000001, "huge": 1e400}'
    assert canonical_json(text) == '{"big":12345678901234567890123456789,"huge":1e400,"precise":1.00000000000000000001}'
    long_int = "9" * 5000
    assert canonical_json(f"[{long_int}]") == f"[{long_int}]"


def test_json_with_an_unpaired_surrogate_stays_valid_utf8() -> None:
    text = canonical_json('{"s": "\\ud800", "é": 1}')
    text.encode("utf-8")
    assert json.loads(text) == {"s": "\ud800", "é": 1}


# --- intervals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("months", "days", "micros", "text"),
    [
        (0, 0, 0, "PT0S"),
        (14, -3, (4 * 3600 + 5 * 60 + 6) * 10**6 + 500000, "P1Y2M-3DT4H5M6.5S"),
        (0, 1, (2 * 3600 + 3 * 60 + 4) * 10**6 + 500000, "P1DT2H3M4.5S"),
        (0, 0, -(10**6), "PT-1S"),
        (0, 0, -500000, "PT-0.5S"),
        (-13, 0, 0, "P-1Y-1M"),
        (0, 0, -(3600 * 10**6) - 1, "PT-1H-0.000001S"),
        (0, 0, 100 * 3600 * 10**6, "PT100H"),
    ],
)
def test_interval_text_matches_postgresql_iso_8601(months: int, days: int, micros: int, text: str) -> None:
    assert interval_text(months, days, micros) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("P1Y2M-3DT4H5M6.5S", "P1Y2M-3DT4H5M6.5S"),
        ("1 year 2 mons -3 days +04:05:06.5", "P1Y2M-3DT4H5M6.5S"),
        ("-1 days +23:59:59", "P-1DT23H59M59S"),
        ("00:00:00", "PT0S"),
        ("-00:00:01", "PT-1S"),
        ("3 days", "P3D"),
        (dt.timedelta(days=1, hours=2, minutes=3, seconds=4.5), "P1DT2H3M4.5S"),
        (dt.timedelta(microseconds=-1), "P-1DT23H59M59.999999S"),
    ],
)
def test_intervals_become_iso_8601(value: object, text: str) -> None:
    assert one("interval", value).string_values.values[0] == text


# --- reading back ----------------------------------------------------------------------------


def test_repeated_column_names_are_suffixed_when_read_back() -> None:
    frame = build_frame([col("a", "int4"), col("a", "int4"), col("a_2", "int4")], [(1, 2, 3)], False)
    assert frame_to_rows(frame) == [{"a": 1, "a_3": 2, "a_2": 3}]


def test_wrong_values_are_refused_with_the_column_named() -> None:
    with pytest.raises(UnrepresentableValue, match="'v'"):
        one("int8", 1.5)
    with pytest.raises(UnrepresentableValue):
        one("bool", "t")
    with pytest.raises(ValueError, match="row has"):
        build_frame([col("a", "int4")], [(1, 2)], False)


def test_ten_thousand_rows_by_ten_columns_build() -> None:
    columns = [col(f"c{i}", t) for i, t in enumerate(["int8", "float8", "numeric", "text", "bool"] * 2)]
    rows = [(i, i / 3, f"{i}.25", f"row {i}", i % 2 == 0) * 2 for i in range(10_000)]
    frame = build_frame(columns, rows, False)
    assert frame.row_count == 10_000 and len(frame.columns[9].bool_values.values) == 10_000
    assert frame_to_rows(frame)[9999]["c3"] == "row 9999"


# --- masking ---------------------------------------------------------------------------------

KEY = b"test-masking-key"


def phi_frame() -> c.DataFrame:
    columns = [col("id", "int4"), col("ssn", "text"), col("dob", "date"), col("note", "text"), col("mrn", "int8")]
    rows = [
        (1, "123-45-6789", "1980-04-12", "ok", 1234567),
        (2, None, "1975-01-01", None, 42),
        (3, "123-45-6789", None, "x", 1234567),
    ]
    return build_frame(columns, rows, False)


def test_redact_replaces_values_keeps_nulls_and_makes_strings() -> None:
    frame = phi_frame()
    masked = mask_frame(frame, {"ssn": q.MASKING_STRATEGY_REDACT, "dob": q.MASKING_STRATEGY_UNSPECIFIED}, KEY)
    ssn, dob = masked.columns[1], masked.columns[2]
    assert ssn.masked and ssn.type == c.COLUMN_TYPE_STRING and ssn.db_type == "text"
    assert list(ssn.string_values.values) == [REDACTED, "", REDACTED] and list(ssn.nulls) == [False, True, False]
    assert dob.type == c.COLUMN_TYPE_STRING and dob.WhichOneof("values") == "string_values"
    assert [row["dob"] for row in frame_to_rows(masked)] == [REDACTED, REDACTED, None]


def test_hash_keeps_equal_values_equal_and_reveals_nothing() -> None:
    masked = mask_frame(phi_frame(), {"ssn": q.MASKING_STRATEGY_HASH, "mrn": q.MASKING_STRATEGY_HASH}, KEY)
    ssn = list(masked.columns[1].string_values.values)
    assert ssn[0] == ssn[2] == hash_text("123-45-6789", KEY) and len(ssn[0]) == 16
    assert int(ssn[0], 16) >= 0 and "6789" not in ssn[0]
    mrn = list(masked.columns[4].string_values.values)
    assert mrn[0] == mrn[2] != mrn[1] and masked.columns[4].type == c.COLUMN_TYPE_STRING
    again = mask_frame(phi_frame(), {"ssn": q.MASKING_STRATEGY_HASH}, KEY)
    assert list(again.columns[1].string_values.values) == ssn  # stable across requests
    other_key = mask_frame(phi_frame(), {"ssn": q.MASKING_STRATEGY_HASH}, b"another-key")
    assert other_key.columns[1].string_values.values[0] != ssn[0]
    with pytest.raises(ValueError, match="key"):
        mask_frame(phi_frame(), {"ssn": q.MASKING_STRATEGY_HASH}, b"")


def test_partial_keeps_the_last_four_characters() -> None:
    masked = mask_frame(phi_frame(), {"ssn": q.MASKING_STRATEGY_PARTIAL, "note": q.MASKING_STRATEGY_PARTIAL}, KEY)
    assert list(masked.columns[1].string_values.values) == ["*******6789", "", "*******6789"]
    assert list(masked.columns[3].string_values.values) == ["**", "", "*"]  # short values fully starred
    dob = mask_frame(phi_frame(), {"dob": q.MASKING_STRATEGY_PARTIAL}, KEY).columns[2]
    assert list(dob.string_values.values)[:2] == ["******4-12", "******1-01"]


def test_masking_leaves_the_input_and_other_columns_alone() -> None:
    frame = phi_frame()
    before = frame.SerializeToString()
    masked = mask_frame(frame, {"ssn": q.MASKING_STRATEGY_REDACT, "unknown_column": q.MASKING_STRATEGY_HASH}, KEY)
    assert frame.SerializeToString() == before
    for index in (0, 2, 3, 4):
        assert masked.columns[index] == frame.columns[index] and not masked.columns[index].masked
    assert masked.row_count == frame.row_count
    assert mask_frame(frame, {}, KEY) is frame
    assert mask_frame(frame, {"nothing_here": q.MASKING_STRATEGY_REDACT}, KEY) is frame


def test_masking_matches_names_case_insensitively_and_is_idempotent() -> None:
    masked = mask_frame(phi_frame(), {"SSN": q.MASKING_STRATEGY_PARTIAL, "Ssn": q.MASKING_STRATEGY_REDACT}, KEY)
    assert masked.columns[1].string_values.values[0] == REDACTED  # the stricter declaration wins
    assert mask_frame(masked, {"ssn": q.MASKING_STRATEGY_HASH}, KEY) is masked
    assert mask_frame(phi_frame(), {"ssn": 99}, KEY).columns[1].string_values.values[0] == REDACTED


def test_canonical_texts_of_every_type() -> None:
    columns = [col("b", "bool"), col("f", "float8"), col("tz", "timestamptz"), col("by", "bytea"), col("n", "numeric")]
    frame = build_frame(columns, [(True, float("nan"), "2024-01-02 03:04:05.5+01", b"\x01\xab", "1.50")], False)
    assert [column_texts(column)[0] for column in frame.columns] == [
        "true",
        "NaN",
        "2024-01-02 02:04:05.5+00",
        "\\x01ab",
        "1.50",
    ]


def test_masking_levels() -> None:
    assert (MASKING_LEVEL_NONE, MASKING_LEVEL_MASKED) == (0, 1)
