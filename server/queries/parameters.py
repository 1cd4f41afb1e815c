"""Typed query parameters: save-time checks of their declarations (`check_specs`), run-time
validation of values and their conversion into driver bind values (`bind`), and a canonical text
of bound values for cache keys (`canonical`).

Values are never formatted into SQL: `bind` only produces Python values (str, int, float, bool,
datetime.date, UTC datetime.datetime, lists of these, None) that the driver sends separately from
the statement. A string such as `' OR 1=1 --` comes back unchanged, as data.

Rules:
- STRING: min_length/max_length in characters (max_length 0 means 4096), `pattern` must match the
  whole value, `allowed_values` (when given) is an allow-list. NUL characters are refused
  (PostgreSQL text cannot hold them).
- ENUM: one of `allowed_values` (required at save time).
- INT: int_value; FLOAT: double_value, or int_value (converted); finite. min/max inclusive.
- BOOL: bool_value. DATE: a full calendar date; TIMESTAMP: an instant (to microseconds, UTC).
- DATE_RANGE `p`: date_range_value with both ends, start <= end, min/max (dates) apply to both
  ends; binds `p_start` and `p_end`. It cannot be a list.
- `list`: a list_value of elements of the type, each checked; at most max_items (0: 1000); nested
  lists are refused.
- A parameter without a value (or with an empty ParameterValue) takes its default; without a
  default it is an error when required and None otherwise.
- `facility_id` is reserved: the server binds it, it cannot be declared or given.

Patterns: the contract says RE2; server/queries/regex.py checks and matches them (in time linear
in the value's length).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from dashboard.v1 import common_pb2, query_pb2
from server.errors import FieldViolation, ViolationCollector
from server.queries.regex import MAX_PATTERN_LENGTH, PatternError, Regex, compile_pattern

__all__ = ["RESERVED_PARAMETER", "PatternError", "bind", "canonical", "check_specs", "compile_pattern"]

RESERVED_PARAMETER: Final = "facility_id"

_Q = query_pb2
_STRING, _INT, _FLOAT, _BOOL = (
    _Q.PARAMETER_TYPE_STRING,
    _Q.PARAMETER_TYPE_INT,
    _Q.PARAMETER_TYPE_FLOAT,
    _Q.PARAMETER_TYPE_BOOL,
)
_DATE, _TIMESTAMP, _DATE_RANGE, _ENUM = (
    _Q.PARAMETER_TYPE_DATE,
    _Q.PARAMETER_TYPE_TIMESTAMP,
    _Q.PARAMETER_TYPE_DATE_RANGE,
    _Q.PARAMETER_TYPE_ENUM,
)
_TYPE_NAMES: Final[dict[int, str]] = {
    _STRING: "STRING",
    _INT: "INT",
    _FLOAT: "FLOAT",
    _BOOL: "BOOL",
    _DATE: "DATE",
    _TIMESTAMP: "TIMESTAMP",
    _DATE_RANGE: "DATE_RANGE",
    _ENUM: "ENUM",
}
_EXPECTED_KIND: Final[dict[int, str]] = {
    _STRING: "string_value",
    _INT: "int_value",
    _FLOAT: "double_value (or int_value)",
    _BOOL: "bool_value",
    _DATE: "date_value",
    _TIMESTAMP: "timestamp_value",
    _DATE_RANGE: "date_range_value",
    _ENUM: "string_value",
}
_ORDERED = frozenset({_INT, _FLOAT, _DATE, _TIMESTAMP, _DATE_RANGE})

MAX_STRING_LENGTH: Final = 4096
MAX_LIST_ITEMS: Final = 1000
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_RANGE_SUFFIXES = ("_start", "_end")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIN_SECONDS = -62135596800  # 0001-01-01T00:00:00Z
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


# --------------------------------------------------------------------------------------------
# Save time.


def check_specs(specs: Sequence[query_pb2.ParameterSpec], path: str = "query.parameters") -> list[FieldViolation]:
    """Every problem with the declarations, as field violations (`query.parameters[2].max`)."""
    out = ViolationCollector()
    first_index: dict[str, int] = {}
    for i, spec in enumerate(specs):
        at = f"{path}[{i}]"
        _check_spec(spec, at, out)
        if spec.name in first_index:
            out.add(
                f"{at}.name",
                f'duplicate parameter name "{spec.name}" (also {path}[{first_index[spec.name]}])',
                "DUPLICATE_PARAMETER",
            )
        else:
            first_index[spec.name] = i
    for spec in specs:
        if spec.type != _DATE_RANGE:
            continue
        for suffix in _RANGE_SUFFIXES:
            other = first_index.get(spec.name + suffix)
            if other is not None:
                out.add(
                    f"{path}[{other}].name",
                    f'"{spec.name}{suffix}" clashes with the date range parameter "{spec.name}", '
                    f"which binds :{spec.name}{suffix}",
                    "PARAMETER_NAME_CONFLICT",
                )
    return out.violations


def _check_spec(spec: query_pb2.ParameterSpec, at: str, out: ViolationCollector) -> None:
    if not _NAME.match(spec.name):
        out.add(f"{at}.name", f"invalid parameter name {spec.name!r}: expected {_NAME.pattern[:-2]}", "INVALID_NAME")
    elif spec.name == RESERVED_PARAMETER:
        out.add(
            f"{at}.name",
            f'"{RESERVED_PARAMETER}" is reserved: the server binds :{RESERVED_PARAMETER} to the caller\'s facility',
            "RESERVED_PARAMETER",
        )
    kind = spec.type
    if kind not in _TYPE_NAMES:
        out.add(f"{at}.type", "the parameter needs a type", "INVALID_TYPE")
        return
    type_name = _TYPE_NAMES[kind]

    def inapplicable(field: str, what: str) -> None:
        out.add(f"{at}.{field}", f"{what} does not apply to a {type_name} parameter", "INAPPLICABLE_CONSTRAINT")

    if spec.list and kind == _DATE_RANGE:
        out.add(f"{at}.list", "a date range parameter cannot be a list", "UNSUPPORTED")
    if spec.max_items and not spec.list:
        inapplicable("max_items", "max_items")
    if not 0 <= spec.max_items <= MAX_LIST_ITEMS:
        out.add(f"{at}.max_items", f"max_items must be between 0 and {MAX_LIST_ITEMS}", "OUT_OF_RANGE")

    if kind not in (_STRING, _ENUM) and spec.allowed_values:
        inapplicable("allowed_values", "allowed_values")
    if kind == _ENUM and not spec.allowed_values:
        out.add(f"{at}.allowed_values", "an ENUM parameter needs allowed_values", "MISSING_ALLOWED_VALUES")

    if kind != _STRING:
        if spec.min_length or spec.max_length:
            inapplicable("min_length" if spec.min_length else "max_length", "a length bound")
        if spec.pattern:
            inapplicable("pattern", "a pattern")
    else:
        if not 0 <= spec.min_length <= MAX_STRING_LENGTH:
            out.add(f"{at}.min_length", f"min_length must be between 0 and {MAX_STRING_LENGTH}", "OUT_OF_RANGE")
        if not 0 <= spec.max_length <= MAX_STRING_LENGTH:
            out.add(f"{at}.max_length", f"max_length must be between 0 and {MAX_STRING_LENGTH}", "OUT_OF_RANGE")
        elif spec.min_length > (spec.max_length or MAX_STRING_LENGTH):
            out.add(f"{at}.min_length", "min_length is greater than max_length", "INVALID_RANGE")
        if spec.pattern:
            if len(spec.pattern) > MAX_PATTERN_LENGTH:
                out.add(f"{at}.pattern", f"the pattern is longer than {MAX_PATTERN_LENGTH} characters", "TOO_LONG")
            else:
                try:
                    compile_pattern(spec.pattern)
                except PatternError as e:
                    out.add(f"{at}.pattern", f"invalid pattern: {e}", "INVALID_PATTERN")

    bounds: dict[str, object] = {}
    for field in ("min", "max"):
        if not spec.HasField(field):
            continue
        if kind not in _ORDERED:
            inapplicable(field, field)
            continue
        value = _bound_value(kind, getattr(spec, field))
        if value is None:
            expected = "date_value" if kind == _DATE_RANGE else _EXPECTED_KIND[kind]
            out.add(f"{at}.{field}", f"{field} of a {type_name} parameter must be a valid {expected}", "WRONG_TYPE")
        else:
            bounds[field] = value
    low, high = bounds.get("min"), bounds.get("max")
    if low is not None and high is not None and _greater(low, high):
        out.add(f"{at}.min", f"min ({_show(low)}) is greater than max ({_show(high)})", "INVALID_RANGE")

    rules = _Rules.of(spec)
    seen_allowed: set[str] = set()
    for k, allowed in enumerate(spec.allowed_values):
        if allowed in seen_allowed:
            out.add(f"{at}.allowed_values[{k}]", f"{allowed!r} is listed twice", "DUPLICATE_ALLOWED_VALUE")
        seen_allowed.add(allowed)
        if kind == _STRING:  # an allowed value the other rules refuse could never be chosen
            _check_string(allowed, rules, f"allowed value {allowed!r}", f"{at}.allowed_values[{k}]", out, enum=False)

    if spec.HasField("default_value"):
        _convert(spec, rules, spec.default_value, f"{at}.default_value", "the default value", out)


# --------------------------------------------------------------------------------------------
# Run time.


def bind(
    specs: Sequence[query_pb2.ParameterSpec],
    values: Mapping[str, common_pb2.ParameterValue],
    path: str = "parameter_values",
) -> dict[str, object]:
    """Validates `values` against `specs` and returns the driver's bind values: one key per
    parameter, two (`<name>_start`, `<name>_end`) per DATE_RANGE. Raises InvalidArgument with
    every violation (fields like `parameter_values["limit"]`) when anything is wrong."""
    out = ViolationCollector()
    declared: dict[str, query_pb2.ParameterSpec] = {}
    for spec in specs:
        if spec.name != RESERVED_PARAMETER:  # check_specs refuses it; never bind it from input
            declared.setdefault(spec.name, spec)

    for name in values:
        if name not in declared:
            if name == RESERVED_PARAMETER:
                description = f'"{RESERVED_PARAMETER}" is reserved: the server supplies the caller\'s facility'
            else:
                known = ", ".join(sorted(declared)) or "none"
                description = f'unknown parameter "{name}" (this query declares: {known})'
            out.add(_key(path, name), description, "UNKNOWN_PARAMETER")

    bound: dict[str, object] = {}
    for name, spec in declared.items():
        at = _key(path, name)
        if spec.type not in _TYPE_NAMES:
            out.add(at, f'parameter "{name}" has no valid type in the query', "INVALID_PARAMETER_SPEC")
            continue
        value = values.get(name)
        label = f'parameter "{name}"'
        if value is None or value.WhichOneof("kind") is None:
            if not spec.HasField("default_value"):
                if spec.required:
                    out.add(at, f'parameter "{name}" is required', "REQUIRED_PARAMETER")
                _put(bound, spec, None)
                continue
            value, label = spec.default_value, f'the default value of parameter "{name}"'
        result = _convert(spec, _Rules.of(spec), value, at, label, out)
        _put(bound, spec, None if result is _INVALID else result)
    out.raise_if_any("invalid parameter values")
    return bound


def _put(bound: dict[str, object], spec: query_pb2.ParameterSpec, value: object) -> None:
    if spec.type == _DATE_RANGE:
        start, end = value if isinstance(value, tuple) else (None, None)
        bound[f"{spec.name}_start"], bound[f"{spec.name}_end"] = start, end
    else:
        bound[spec.name] = value


def _key(path: str, name: str) -> str:
    return f"{path}[{json.dumps(name)}]"


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Final = _Invalid()


@dataclass(frozen=True)
class _Rules:
    """A spec's constraints in checkable form; constraints that are themselves invalid (reported
    by check_specs) are left out."""

    min_length: int
    max_length: int
    regex: Regex | None
    low: object | None
    high: object | None
    allowed: frozenset[str]
    max_items: int

    @classmethod
    def of(cls, spec: query_pb2.ParameterSpec) -> _Rules:
        regex: Regex | None = None
        if spec.type == _STRING and spec.pattern and len(spec.pattern) <= MAX_PATTERN_LENGTH:
            try:
                regex = compile_pattern(spec.pattern)
            except PatternError:
                regex = None
        low = _bound_value(spec.type, spec.min) if spec.HasField("min") else None
        high = _bound_value(spec.type, spec.max) if spec.HasField("max") else None
        min_length = spec.min_length if 0 < spec.min_length <= MAX_STRING_LENGTH else 0
        max_length = spec.max_length if 0 < spec.max_length <= MAX_STRING_LENGTH else MAX_STRING_LENGTH
        max_items = spec.max_items if 0 < spec.max_items <= MAX_LIST_ITEMS else MAX_LIST_ITEMS
        return cls(min_length, max_length, regex, low, high, frozenset(spec.allowed_values), max_items)


def _convert(
    spec: query_pb2.ParameterSpec,
    rules: _Rules,
    value: common_pb2.ParameterValue,
    at: str,
    label: str,
    out: ViolationCollector,
) -> object:
    """The bind value of `value` (a list for list parameters, (start, end) for a date range), or
    _INVALID after adding violations."""
    kind = value.WhichOneof("kind")
    type_name = _TYPE_NAMES[spec.type]
    if not spec.list:
        if kind == "list_value":
            out.add(at, f"{label} is a single {type_name}: give {_EXPECTED_KIND[spec.type]}, not a list", "WRONG_TYPE")
            return _INVALID
        return _scalar(spec, rules, value, at, label, out)

    if kind != "list_value":
        out.add(at, f"{label} is a list of {type_name}: give list_value, not {kind}", "WRONG_TYPE")
        return _INVALID
    items = value.list_value.values
    if len(items) > rules.max_items:
        out.add(at, f"{label} has {len(items)} items; at most {rules.max_items} are allowed", "TOO_MANY_ITEMS")
        return _INVALID
    converted: list[object] = []
    valid = True
    for k, item in enumerate(items):
        item_at, item_label = f"{at}.list_value.values[{k}]", f"{label}, item {k}"
        item_kind = item.WhichOneof("kind")
        if item_kind == "list_value":
            out.add(item_at, f"{item_label} is a list: nested lists are refused", "WRONG_TYPE")
            result: object = _INVALID
        elif item_kind is None:
            out.add(item_at, f"{item_label} has no value", "WRONG_TYPE")
            result = _INVALID
        else:
            result = _scalar(spec, rules, item, item_at, item_label, out)
        valid = valid and result is not _INVALID
        converted.append(result)
    return converted if valid else _INVALID


def _scalar(
    spec: query_pb2.ParameterSpec,
    rules: _Rules,
    value: common_pb2.ParameterValue,
    at: str,
    label: str,
    out: ViolationCollector,
) -> object:
    kind = value.WhichOneof("kind")
    t = spec.type
    expected = _EXPECTED_KIND[t]

    def wrong(detail: str = "") -> _Invalid:
        out.add(at, detail or f"{label} is {_a(_TYPE_NAMES[t])}: give {expected}, not {kind}", "WRONG_TYPE")
        return _INVALID

    if t in (_STRING, _ENUM):
        if kind != "string_value":
            return wrong()
        return _check_string(value.string_value, rules, label, at, out, enum=t == _ENUM)
    if t == _INT:
        if kind != "int_value":
            return wrong()
        return _check_bounds(value.int_value, rules, label, at, out)
    if t == _FLOAT:
        if kind == "double_value":
            number = value.double_value
        elif kind == "int_value":
            number = float(value.int_value)
        else:
            return wrong()
        if not math.isfinite(number):
            out.add(at, f"{label} must be a finite number", "OUT_OF_RANGE")
            return _INVALID
        return _check_bounds(number, rules, label, at, out)
    if t == _BOOL:
        return value.bool_value if kind == "bool_value" else wrong()
    if t == _DATE:
        if kind != "date_value":
            return wrong()
        day = _date(value.date_value)
        if day is None:
            return wrong(f"{label} is not a valid calendar date")
        return _check_bounds(day, rules, label, at, out)
    if t == _TIMESTAMP:
        if kind != "timestamp_value":
            return wrong()
        instant = _timestamp(value.timestamp_value)
        if instant is None:
            return wrong(f"{label} is not a valid timestamp (years 1 to 9999)")
        return _check_bounds(instant, rules, label, at, out)
    # DATE_RANGE
    if kind != "date_range_value":
        return wrong()
    span = value.date_range_value
    ends: list[dt.date | None] = []
    for part in ("start", "end"):
        day = _date(getattr(span, part)) if span.HasField(part) else None
        if day is None:
            out.add(f"{at}.date_range_value.{part}", f"{label} needs a valid {part} date", "WRONG_TYPE")
        ends.append(day)
    start, end = ends
    if start is None or end is None:
        return _INVALID
    if start > end:
        out.add(at, f"{label}: start {start.isoformat()} is after end {end.isoformat()}", "INVALID_RANGE")
        return _INVALID
    if _check_bounds(start, rules, f"{label} (start)", at, out) is _INVALID:
        return _INVALID
    if _check_bounds(end, rules, f"{label} (end)", at, out) is _INVALID:
        return _INVALID
    return (start, end)


def _check_string(text: str, rules: _Rules, label: str, at: str, out: ViolationCollector, *, enum: bool) -> object:
    if enum:
        if text not in rules.allowed:
            out.add(at, f"{label} must be one of: {_choices(rules.allowed)}", "NOT_ALLOWED")
            return _INVALID
        return text
    if "\x00" in text:
        out.add(at, f"{label} contains a NUL character", "INVALID_CHARACTER")
        return _INVALID
    spec_ok = True
    if len(text) > rules.max_length:
        out.add(at, f"{label} has {len(text)} characters; at most {rules.max_length} are allowed", "TOO_LONG")
        return _INVALID  # the other checks on an over-long value would only waste time
    if len(text) < rules.min_length:
        out.add(at, f"{label} has {len(text)} characters; at least {rules.min_length} are needed", "TOO_SHORT")
        spec_ok = False
    if rules.allowed and text not in rules.allowed:
        out.add(at, f"{label} must be one of: {_choices(rules.allowed)}", "NOT_ALLOWED")
        spec_ok = False
    if rules.regex is not None and not rules.regex.fullmatch(text):
        out.add(at, f"{label} does not match the pattern {rules.regex.pattern!r}", "PATTERN_MISMATCH")
        spec_ok = False
    return text if spec_ok else _INVALID


def _check_bounds(value: Any, rules: _Rules, label: str, at: str, out: ViolationCollector) -> object:
    if rules.low is not None and _comparable(value, rules.low) and _greater(rules.low, value):
        out.add(at, f"{label} must be at least {_show(rules.low)} (got {_show(value)})", "OUT_OF_RANGE")
        return _INVALID
    if rules.high is not None and _comparable(value, rules.high) and _greater(value, rules.high):
        out.add(at, f"{label} must be at most {_show(rules.high)} (got {_show(value)})", "OUT_OF_RANGE")
        return _INVALID
    return value


def _comparable(a: object, b: object) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return not isinstance(a, bool) and not isinstance(b, bool)
    if isinstance(a, dt.datetime) or isinstance(b, dt.datetime):
        return isinstance(a, dt.datetime) and isinstance(b, dt.datetime)
    return isinstance(a, dt.date) and isinstance(b, dt.date)


def _greater(a: Any, b: Any) -> bool:
    return bool(a > b)


def _bound_value(kind: int, value: common_pb2.ParameterValue) -> object | None:
    """A min/max bound in the parameter's terms, or None when it has the wrong kind."""
    which = value.WhichOneof("kind")
    if kind == _INT and which == "int_value":
        return value.int_value
    if kind == _FLOAT and which == "double_value" and math.isfinite(value.double_value):
        return value.double_value
    if kind == _FLOAT and which == "int_value":
        return float(value.int_value)
    if kind in (_DATE, _DATE_RANGE) and which == "date_value":
        return _date(value.date_value)
    if kind == _TIMESTAMP and which == "timestamp_value":
        return _timestamp(value.timestamp_value)
    return None


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date(int(value.year), int(value.month), int(value.day))
    except ValueError:
        return None


def _timestamp(value: Any) -> dt.datetime | None:
    seconds, nanos = int(value.seconds), int(value.nanos)
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        return None
    return _EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


def _show(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value)


def _choices(allowed: frozenset[str]) -> str:
    shown = sorted(allowed)
    text = ", ".join(repr(a) for a in shown[:20])
    return text + (f" (and {len(shown) - 20} more)" if len(shown) > 20 else "")


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "AEIOU" else f"a {word}"


# --------------------------------------------------------------------------------------------
# Cache keys.


def canonical(bound: Mapping[str, object]) -> str:
    """One deterministic text for bound values (sorted keys, type-tagged, dates ISO 8601,
    instants in UTC, floats by their shortest round-trip repr), for cache keys. Equal inputs give
    equal texts; values of different types never collide (1, 1.0, True and "1" differ)."""
    return json.dumps(
        [[key, _tagged(bound[key])] for key in sorted(bound)],
        ensure_ascii=True,
        separators=(",", ":"),
        allow_nan=False,
    )


def _tagged(value: object) -> list[object]:
    if value is None:
        return ["null"]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return ["datetime", value.isoformat(timespec="microseconds")]
        return ["timestamp", value.astimezone(dt.UTC).isoformat(timespec="microseconds")]
    if isinstance(value, dt.date):
        return ["date", value.isoformat()]
    if isinstance(value, list | tuple):
        return ["list", [_tagged(item) for item in value]]
    raise TypeError(f"cannot make a canonical text of {type(value).__name__}")
