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

Patterns: the contract says RE2, checked here with Python's `re` syntax minus what RE2 lacks
(backreferences, look-around, conditionals, atomic groups, possessive quantifiers) and minus POSIX
classes (`[[:alpha:]]`), which the two engines read differently. Values are matched by a small
Thompson-NFA simulation of the parsed pattern, in time linear in the value's length, because
Python's backtracking matcher can take minutes on patterns like `(\\w+\\s?)*$` against a value
chosen by whoever runs the query.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from dashboard.v1 import common_pb2, query_pb2
from server.errors import FieldViolation, ViolationCollector

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
MAX_PATTERN_LENGTH: Final = 512
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
    regex: _Regex | None
    low: object | None
    high: object | None
    allowed: frozenset[str]
    max_items: int

    @classmethod
    def of(cls, spec: query_pb2.ParameterSpec) -> _Rules:
        regex: _Regex | None = None
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


# --------------------------------------------------------------------------------------------
# Patterns: Python's `re` syntax (checked by `re.compile` and `re._parser`), matched by a Thompson
# NFA simulation, linear in the length of the text.


class PatternError(ValueError):
    """A pattern that cannot be used: a syntax error, a feature RE2 lacks, or too complex."""


_sre: Any = importlib.import_module("re._parser")  # the parser `re` itself uses; no stub ships
_MAXREPEAT: Final[int] = int(_sre.MAXREPEAT)
_MAX_STATES: Final = 2000
_CACHE_LIMIT: Final = 4096
_POSIX_CLASS = re.compile(r"\[:\^?[a-z]+:\]")
_UNSUPPORTED: Final[dict[str, str]] = {
    "GROUPREF": "backreferences",
    "GROUPREF_EXISTS": "conditional groups",
    "ASSERT": "look-ahead and look-behind",
    "ASSERT_NOT": "look-ahead and look-behind",
    "ATOMIC_GROUP": "atomic groups",
    "POSSESSIVE_REPEAT": "possessive quantifiers",
}

_ASSERTIONS = frozenset(
    {"AT_BEGINNING", "AT_BEGINNING_STRING", "AT_END", "AT_END_STRING", "AT_BOUNDARY", "AT_NON_BOUNDARY"}
)
_CHAR, _SPLIT, _ASSERT, _MATCH = 0, 1, 2, 3
_Test = Callable[[str], bool]


def _fold(c: str) -> str:
    lowered = c.lower()
    return lowered if len(lowered) == 1 else c


def _upper(c: str) -> str:
    raised = c.upper()
    return raised if len(raised) == 1 else c


def _fold_ascii(c: str) -> str:
    return c.lower() if c.isascii() else c


def _is_word(c: str, ascii_only: bool) -> bool:
    if ascii_only and not c.isascii():
        return False
    return c.isalnum() or c == "_"


@functools.lru_cache(maxsize=256)
def _compile_cached(pattern: str) -> _Regex | str:
    try:
        return _Regex(pattern)
    except PatternError as e:
        return str(e)


def compile_pattern(pattern: str) -> _Regex:
    """The matcher for `pattern`; raises PatternError (with a reason) when it cannot be used."""
    result = _compile_cached(pattern)
    if isinstance(result, str):
        raise PatternError(result)
    return result


class _Regex:
    """A compiled pattern: `fullmatch(text)` in O(len(text) x states)."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise PatternError(f"longer than {MAX_PATTERN_LENGTH} characters")
        if _POSIX_CLASS.search(pattern):
            raise PatternError("POSIX classes like [:alpha:] are not supported: use \\d, \\w, \\s or ranges")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # FutureWarning: a set that RE2 would read differently
                re.compile(pattern)
                parsed = _sre.parse(pattern, 0)
        except re.error as e:
            raise PatternError(f"{e.msg} at position {e.pos}") from None
        except (FutureWarning, DeprecationWarning) as e:
            raise PatternError(str(e)) from None
        except RecursionError:
            raise PatternError("too deeply nested") from None
        self.pattern = pattern
        self._kinds: list[int] = []
        self._tests: list[_Test | None] = []
        self._asserts: list[tuple[str, bool, bool]] = []  # (code, multiline, ascii)
        self._out1: list[int] = []
        self._out2: list[int] = []
        match = self._node(_MATCH)
        self._start = self._sequence(list(parsed), int(parsed.state.flags), match)
        self._match = match
        self._has_asserts = _ASSERT in self._kinds
        self._cache: dict[tuple[object, ...], frozenset[int]] = {}

    # -- building ------------------------------------------------------------------------------

    def _node(
        self,
        kind: int,
        out1: int = -1,
        out2: int = -1,
        test: _Test | None = None,
        at: tuple[str, bool, bool] = ("", False, False),
    ) -> int:
        if len(self._kinds) >= _MAX_STATES:
            raise PatternError("too complex (it expands to too many states)")
        self._kinds.append(kind)
        self._tests.append(test)
        self._asserts.append(at)
        self._out1.append(out1)
        self._out2.append(out2)
        return len(self._kinds) - 1

    def _sequence(self, items: list[Any], flags: int, follow: int) -> int:
        for item in reversed(items):
            follow = self._item(item, flags, follow)
        return follow

    def _item(self, item: Any, flags: int, follow: int) -> int:
        op, av = item
        name = str(op)
        if name in _UNSUPPORTED:
            raise PatternError(f"{_UNSUPPORTED[name]} are not supported (RE2 has none)")
        if name in ("LITERAL", "NOT_LITERAL"):
            test = self._literal(chr(av), flags)
            if name == "NOT_LITERAL":
                positive = test
                test = lambda c: not positive(c)  # noqa: E731
            return self._node(_CHAR, follow, test=test)
        if name == "ANY":
            dotall = bool(flags & re.DOTALL)
            return self._node(_CHAR, follow, test=(lambda c: True) if dotall else (lambda c: c != "\n"))
        if name == "IN":
            return self._node(_CHAR, follow, test=self._charset(list(av), flags))
        if name == "BRANCH":
            starts = [self._sequence(list(alternative), flags, follow) for alternative in av[1]]
            state = starts[-1]
            for start in reversed(starts[:-1]):
                state = self._node(_SPLIT, start, state)
            return state
        if name == "SUBPATTERN":
            _group, add_flags, del_flags, sub = av
            return self._sequence(list(sub), (flags | int(add_flags)) & ~int(del_flags), follow)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, sub = int(av[0]), int(av[1]), list(av[2])
            if high == _MAXREPEAT:
                loop = self._node(_SPLIT, -1, follow)
                self._out1[loop] = self._sequence(sub, flags, loop)
                tail = loop
            else:
                tail = follow
                for _ in range(high - low):
                    tail = self._node(_SPLIT, self._sequence(sub, flags, tail), follow)
            for _ in range(low):
                tail = self._sequence(sub, flags, tail)
            return tail
        if name == "AT":
            if str(av) not in _ASSERTIONS:
                raise PatternError(f"the assertion {str(av).lower()} is not supported")
            return self._node(_ASSERT, follow, at=(str(av), bool(flags & re.MULTILINE), bool(flags & re.ASCII)))
        raise PatternError(f"{name.lower()} is not supported")

    @staticmethod
    def _literal(char: str, flags: int) -> _Test:
        if not flags & re.IGNORECASE:
            return lambda c: c == char
        fold = _fold_ascii if flags & re.ASCII else _fold
        target = fold(char)
        return lambda c: fold(c) == target or fold(_upper(c)) == target

    @staticmethod
    def _charset(items: list[Any], flags: int) -> _Test:
        negate = False
        chars: set[str] = set()
        ranges: list[tuple[str, str]] = []
        categories: list[_Test] = []
        ascii_only = bool(flags & re.ASCII)
        for op, av in items:
            name = str(op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                chars.add(chr(av))
            elif name == "RANGE":
                ranges.append((chr(av[0]), chr(av[1])))
            elif name == "CATEGORY":
                categories.append(_category(str(av), ascii_only))
            else:
                raise PatternError(f"{name.lower()} in a character set is not supported")

        def member(c: str) -> bool:
            return c in chars or any(low <= c <= high for low, high in ranges) or any(t(c) for t in categories)

        if flags & re.IGNORECASE:
            plain = member

            def member(c: str) -> bool:
                return plain(c) or plain(_fold(c)) or plain(_upper(c))

        if negate:
            positive = member
            return lambda c: not positive(c)
        return member

    # -- matching ------------------------------------------------------------------------------

    def fullmatch(self, text: str) -> bool:
        n = len(text)
        current = self._closure((self._start,), text, 0)
        for p, char in enumerate(text):
            if not current:
                return False
            key: tuple[object, ...] = (
                (current, char, text[p + 1] if p + 1 < n else None, p + 2 == n)
                if self._has_asserts
                else (current, char)
            )
            following = self._cache.get(key)
            if following is None:
                moved = [self._out1[s] for s in current if self._kinds[s] == _CHAR and self._call(s, char)]
                following = self._closure(moved, text, p + 1)
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = following
            current = following
        return self._match in current

    def _call(self, state: int, char: str) -> bool:
        test = self._tests[state]
        return test is not None and test(char)

    def _closure(self, states: Sequence[int], text: str, position: int) -> frozenset[int]:
        found: set[int] = set()
        seen: set[int] = set()
        stack = list(states)
        while stack:
            state = stack.pop()
            if state in seen or state < 0:
                continue
            seen.add(state)
            kind = self._kinds[state]
            if kind == _SPLIT:
                stack.append(self._out2[state])
                stack.append(self._out1[state])
            elif kind == _ASSERT:
                if _holds(self._asserts[state], text, position):
                    stack.append(self._out1[state])
            else:
                found.add(state)
        return frozenset(found)


def _category(code: str, ascii_only: bool) -> _Test:
    negative = "_NOT_" in code
    if code.endswith("DIGIT"):
        test: _Test = (lambda c: "0" <= c <= "9") if ascii_only else str.isdecimal
    elif code.endswith("SPACE"):
        test = (lambda c: c in " \t\n\r\f\v") if ascii_only else str.isspace
    elif code.endswith("WORD"):
        test = functools.partial(_word_test, ascii_only=ascii_only)
    else:
        raise PatternError(f"the class {code.lower()} is not supported")
    if negative:
        positive = test
        return lambda c: not positive(c)
    return test


def _word_test(c: str, *, ascii_only: bool) -> bool:
    return _is_word(c, ascii_only)


def _holds(assertion: tuple[str, bool, bool], text: str, p: int) -> bool:
    code, multiline, ascii_only = assertion
    n = len(text)
    if code == "AT_BEGINNING":
        return p == 0 or (multiline and text[p - 1] == "\n")
    if code == "AT_BEGINNING_STRING":
        return p == 0
    if code == "AT_END":
        if multiline:
            return p == n or text[p] == "\n"
        return p == n or (p == n - 1 and text[p] == "\n")
    if code == "AT_END_STRING":
        return p == n
    if code in ("AT_BOUNDARY", "AT_NON_BOUNDARY"):
        if n == 0:
            return False
        before = p > 0 and _is_word(text[p - 1], ascii_only)
        after = p < n and _is_word(text[p], ascii_only)
        return (before != after) == (code == "AT_BOUNDARY")
    return False  # unreachable: _item admits only _ASSERTIONS
