"""Hypothesis strategies for HTTP requests to one `google.api.http` binding, built from its
request message's descriptor, as a hostile caller would write them by hand:

- hostile JSON bodies: every field may be set to a boundary or wrong value in JSON (NUL and
  100 KB strings, int64 extremes as strings and as numbers, numbers past their type, unknown
  enum names and numbers, unparsable or out-of-range timestamps and durations, wrong JSON types,
  deep nesting, both field spellings and unknown keys);
- hostile path segments (percent-escapes that decode to NUL, invalid UTF-8, `..`, 10 KB) and
  query parameters (known fields with bad values, unknown and over-deep names, repeats);
- malformed bodies: JSON cut short, random bytes, invalid UTF-8, the wrong content type, a
  top-level value that is not an object, a body where none is taken;
- plausible requests (ids that exist), as they are and with one field made hostile.

Every strategy is built once per binding from data fixed before the run (descriptors and the
session's ids), so a draw never depends on anything that differs between runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from server.http.bindings import Binding
from tests.fuzz.strategies import DURATION, FIELD_MASK, HOSTILE_TEXT, STRUCT_TYPES, TIMESTAMP, IdPool, _id_kind

F = FieldDescriptor
MAX_DEPTH = 3


@dataclass(frozen=True)
class HttpRequest:
    verb: str
    path: str  # already percent-encoded
    query: str  # already percent-encoded, without '?'
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def short(self) -> str:
        return f"{self.verb} {self.path[:200]}?{self.query[:200]} body={self.body[:300]!r} headers={self.headers}"


# --- JSON values ---------------------------------------------------------------------------

WRONG_TYPES: st.SearchStrategy[Any] = st.sampled_from([None, True, [], {}, [1, "a"], {"a": 1}, 0, -1, 1.5, "x"])
INT64_JSON = (
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    9223372036854775807,
    -9223372036854775808,
    18446744073709551616,
    "18446744073709551615",
    "1e3",
    "0x10",
    " 1",
    "1.5",
    1e300,
    "NaN",
    "",
)
INT32_JSON = (2147483647, 2147483648, -2147483649, "2147483648", "-1", 1.5, 1e10, "abc", "")
FLOAT_JSON = ("NaN", "Infinity", "-Infinity", "1e400", 1e308, -1e308, 5e-324, "nope", "")
TIMESTAMP_JSON = (
    "2026-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0000-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999Z",
    "10000-01-01T00:00:00Z",
    "2026-13-45T25:61:61Z",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00.1234567891Z",
    "2026-01-01T00:00:00+25:00",
    "2026-01-01 00:00:00Z",
    "yesterday",
    "",
    "1970-01-01T00:00:00\x00Z",
)
DURATION_JSON = (
    "1.5s",
    "300s",
    "-1s",
    "315576000000s",
    "315576000001s",
    "-315576000001s",
    "99999999999999999999s",
    "1e400s",
    "0.0000000001s",
    "1.5",
    "s",
    "1m",
    "",
    "NaNs",
)
ENUM_JSON = ("NOPE", "", "0", "99", 99, -1, 2147483648, "\x00", "JOB_STATE_DONE", "share_level_view")
BYTES_JSON = ("!!!", "AAAA", "A", "aGk=", "aGk", "-_-_", "\x00")
FIELD_MASK_JSON = ("title", "title,description", "", ",", "no_such_field", "a.b.c", "TITLE", "title,\x00")
STRUCT_JSON = ({}, {"k": None}, {"k": [1, "a", {"n": True}]}, {"\x00": "\x00"}, {"k": 1e308})


def deep(depth: int, kind: str) -> Any:
    """A JSON value nested `depth` levels deep (lists or objects)."""
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


NESTING = st.sampled_from([deep(n, k) for n in (64, 101, 20_000) for k in ("list", "object")])
text_json = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=30))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_STRING:
        return text_json
    if field.type in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64):
        return st.one_of(st.sampled_from(INT64_JSON), st.integers(-(2**70), 2**70))
    if field.type in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32, F.TYPE_UINT32, F.TYPE_FIXED32):
        return st.one_of(st.sampled_from(INT32_JSON), st.integers(-(2**40), 2**40))
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.one_of(st.sampled_from(FLOAT_JSON), st.floats(allow_nan=False, allow_infinity=False))
    if field.type == F.TYPE_BOOL:
        return st.sampled_from((True, False, "true", "yes", 1, 0, "1"))
    if field.type == F.TYPE_BYTES:
        return st.sampled_from(BYTES_JSON)
    if field.type == F.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        return st.one_of(st.sampled_from(names), st.sampled_from(ENUM_JSON))
    raise AssertionError(field.type)


def _message_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    name = field.message_type.full_name
    if name == TIMESTAMP:
        return st.sampled_from(TIMESTAMP_JSON)
    if name == DURATION:
        return st.sampled_from(DURATION_JSON)
    if name == FIELD_MASK:
        return st.sampled_from(FIELD_MASK_JSON)
    if name in STRUCT_TYPES:
        return st.one_of(st.sampled_from(STRUCT_JSON), NESTING)
    if name.startswith("google.protobuf.") and name.endswith("Value"):
        return st.one_of(st.sampled_from(INT64_JSON), text_json)
    if depth >= MAX_DEPTH:
        return st.just({})
    return st.deferred(lambda: hostile_object(field.message_type, depth + 1))


def hostile_json_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        entry = field.message_type
        values = hostile_json_value(entry.fields_by_name["value"], depth)
        return st.one_of(st.dictionaries(text_json, values, max_size=3), WRONG_TYPES)
    single = _message_value(field, depth) if field.type == F.TYPE_MESSAGE else _scalar(field)
    if field.is_repeated:
        return st.one_of(st.lists(single, max_size=3), single, WRONG_TYPES)
    return st.one_of(single, single, WRONG_TYPES)


def _keys(field: FieldDescriptor) -> st.SearchStrategy[str]:
    return st.sampled_from(sorted({field.name, field.json_name}))


def hostile_object(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object for `descriptor`: a random subset of its fields (either spelling) set to
    hostile values, sometimes with a key no field has."""
    entries = [st.tuples(_keys(f), hostile_json_value(f, depth)) for f in descriptor.fields]
    unknown = st.tuples(st.sampled_from(("colour", "\x00", "", "__proto__", "a.b")), WRONG_TYPES)
    if not entries:
        return st.lists(unknown, max_size=1).map(dict)
    return st.tuples(
        st.lists(st.one_of(*entries), max_size=4), st.lists(unknown, max_size=1) if depth == 0 else st.just([])
    ).map(lambda parts: dict(parts[0] + parts[1]))


# --- plausible JSON ------------------------------------------------------------------------


def plausible_object(descriptor: Descriptor, ids: IdPool, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object a real client could send: ids that exist, short text, known enum names."""
    entries: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.containing_oneof is not None and not field.containing_oneof.name.startswith("_"):
            continue  # one member of a oneof at most: left out of the plausible shape
        value = _plausible_value(field, ids, depth)
        if value is not None:
            entries[field.json_name] = st.lists(value, max_size=2) if field.is_repeated else value
    return st.fixed_dictionaries({}, optional=entries)


def _plausible_value(field: FieldDescriptor, ids: IdPool, depth: int) -> st.SearchStrategy[Any] | None:
    if field.type == F.TYPE_STRING:
        kind = _id_kind(field, field.containing_type)
        if kind is not None:
            pool = list(ids.get(kind, ())) or list(ids.get("any", ()))
            return st.sampled_from(pool) if pool else st.uuids().map(str)
        return st.sampled_from(("t", "Board", "x"))
    if field.type == F.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values if v.number != 0]
        return st.sampled_from(names or [field.enum_type.values[0].name])
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.sampled_from((0.0, 1.5))
    if field.type == F.TYPE_BYTES:
        return st.just("aGk=")
    if field.type != F.TYPE_MESSAGE:
        return st.sampled_from((1, 2, "10"))
    if field.message_type.GetOptions().map_entry:
        return None
    name = field.message_type.full_name
    if name == TIMESTAMP:
        return st.just("2026-06-01T00:00:00Z")
    if name == DURATION:
        return st.just("300s")
    if name == FIELD_MASK:
        return st.just("title")
    if name in STRUCT_TYPES or depth >= MAX_DEPTH:
        return st.just({}) if name != "google.protobuf.Value" else st.just("v")
    return st.deferred(lambda: plausible_object(field.message_type, ids, depth + 1))


# --- the HTTP request ----------------------------------------------------------------------

HOSTILE_SEGMENTS = (
    "%00",
    "a%00b",
    "..",
    "%2e%2e",
    "%2F",
    "%ZZ",
    "%",
    "%C0%80",
    "%FF%FE",
    "%ED%A0%80",  # an encoded lone surrogate
    "x" * 10_000,
    "%F0%9F%A6%84",
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "%20",
    "a;b",
    "%3A",
)
# The longest stays within what the client sends (httpx: 64 KiB per URL part) with four of them.
QUERY_VALUES = ("%00", "", "%ZZ", "x" * 8_000, "9223372036854775808", "-1", "NaN", "true", "%FF", "a%2Cb")
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "",
    "application/x-www-form-urlencoded",
    "application/vnd.x+json",
    "multipart/form-data; boundary=x",
)
MALFORMED_BODIES = (
    b"{",
    b'{"a": ',
    b"[]",
    b"null",
    b"1",
    b'"x"',
    b"\xff\xfe\x00",
    b'{"title": "\xc3\x28"}',
    b'{"title": "\\ud800"}',
    b'{"title": "\\u0000"}',
    b"{}" * 1000,
    b'{"a":1,"a":2}',
    b"\x00" * 64,
    b'{"x": NaN}',
    b'{"x": Infinity}',
    b"\xef\xbb\xbf{}",
)


def _segment(field_path: str, descriptor: Descriptor, ids: IdPool) -> st.SearchStrategy[str]:
    """A value for one path variable: hostile, or an id of the kind the variable names."""
    owner, name = descriptor, field_path.split(".")[-1]
    for part in field_path.split(".")[:-1]:
        owner = owner.fields_by_name[part].message_type
    field = owner.fields_by_name[name]
    good: list[str] = []
    if field.type == F.TYPE_STRING:
        kind = _id_kind(field, owner)
        good = list(ids.get(kind or "any", ())) or list(ids.get("any", ()))
    elif field.type == F.TYPE_ENUM:
        good = [v.name for v in field.enum_type.values]
    return st.one_of(st.sampled_from(HOSTILE_SEGMENTS), st.sampled_from([quote(g, safe="") for g in good] or ["x"]))


def _query_names(descriptor: Descriptor, prefix: str = "", depth: int = 0) -> list[str]:
    names: list[str] = []
    for field in descriptor.fields:
        for spelling in sorted({field.name, field.json_name}):
            name = prefix + spelling
            if field.type == F.TYPE_MESSAGE and field.message_type.full_name not in (TIMESTAMP, DURATION, FIELD_MASK):
                if depth < 2 and not field.message_type.GetOptions().map_entry:
                    names += _query_names(field.message_type, name + ".", depth + 1)
                names.append(name)
            else:
                names.append(name)
    return names


def _query(binding: Binding) -> st.SearchStrategy[str]:
    known = _query_names(binding.method.input_type) or ["x"]
    names = st.one_of(st.sampled_from(known), st.sampled_from(("colour", "a.b.c.d.e", "%00", "", "%ZZ", "x" * 300)))
    values = st.one_of(st.sampled_from(QUERY_VALUES), st.text(max_size=10).map(lambda t: quote(t, safe="")))
    pair = st.tuples(names, values).map(lambda p: f"{p[0]}={p[1]}")
    return st.one_of(st.lists(pair, max_size=4).map("&".join), st.sampled_from(("=", "&&", "a=1&a=2", "?", "%")))


def _body(binding: Binding, ids: IdPool) -> st.SearchStrategy[tuple[str, bytes]]:
    """(content type, body bytes)."""
    descriptor = binding.method.input_type
    target = descriptor if binding.body in ("", "*") else descriptor.fields_by_name[binding.body].message_type
    if target is None:  # a scalar body field
        objects: st.SearchStrategy[Any] = st.one_of(WRONG_TYPES, text_json)
    else:
        objects = st.one_of(hostile_object(target), plausible_object(target, ids), _mutated(target, ids), NESTING)
    as_json = objects.map(_dumps)
    malformed = st.one_of(st.sampled_from(MALFORMED_BODIES), st.binary(max_size=64))
    return st.tuples(
        st.sampled_from(CONTENT_TYPES[:2]) | st.sampled_from(CONTENT_TYPES),
        st.one_of(as_json, as_json, malformed, st.just(b"")),
    )


def _mutated(descriptor: Descriptor, ids: IdPool) -> st.SearchStrategy[dict[str, Any]]:
    """A plausible object with one field replaced by a hostile value."""
    fields = list(descriptor.fields)
    if not fields:
        return st.just({})
    one = st.sampled_from(fields).flatmap(lambda f: st.tuples(_keys(f), hostile_json_value(f, 1)))
    return st.tuples(plausible_object(descriptor, ids), one).map(lambda p: {**p[0], p[1][0]: p[1][1]})


def _dumps(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")
    except RecursionError:
        # Python cannot write it; the server must still read it: write the nesting by hand.
        return _deep_text(value)


def _deep_text(value: Any) -> bytes:
    depth, kind = 0, "list" if isinstance(value, list) else "object"
    while isinstance(value, (list, dict)) and value:
        value = value[0] if isinstance(value, list) else value["a"]
        depth += 1
    opening, closing = (b"[", b"]") if kind == "list" else (b'{"a":', b"}")
    return opening * depth + b"1" + closing * depth


def http_requests(binding: Binding, ids: IdPool, principals: Mapping[str, Sequence[tuple[str, str]]]) -> Any:
    """(principal, request) pairs for one binding."""
    descriptor = binding.method.input_type
    path_parts = binding.template.split(":")[0].strip("/").split("/")
    custom = binding.template.rpartition("/")[2].partition(":")[2] if ":" in binding.template.rpartition("/")[2] else ""
    segment_strategies = []
    for part in path_parts:
        if part.startswith("{"):
            variable = part.strip("{}").split("=")[0]
            segment_strategies.append(_segment(variable, descriptor, ids))
        else:
            segment_strategies.append(st.just(part))
    path = st.tuples(*segment_strategies).map(lambda parts: "/" + "/".join(parts) + (f":{custom}" if custom else ""))
    takes_body = bool(binding.body)
    body = _body(binding, ids) if takes_body else st.one_of(st.just(("", b"")), st.just(("application/json", b"{}")))
    extra_headers = st.sampled_from(
        (
            (),
            (("accept", "text/event-stream"),),
            (("accept-encoding", "gzip"),),
            (("range", "bytes=5-1"),),
            (("range", "bytes=99999999999999999999-"),),
            (("range", "bytes=9223372036854775807-"),),
            (("last-event-id", "-1"),),
            (("last-event-id", "99999999999999999999999"),),
            (("x-correlation-id", "\x7f" * 100),),
        )
    )
    return st.tuples(st.sampled_from(sorted(principals)), path, _query(binding), body, extra_headers).map(
        lambda t: (
            t[0],
            HttpRequest(
                binding.verb,
                t[1],
                t[2],
                tuple(principals[t[0]]) + ((("content-type", t[3][0]),) if t[3][0] else ()) + t[4],
                t[3][1],
            ),
        )
    )
