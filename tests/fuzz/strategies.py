"""Hypothesis strategies for any protobuf request, built from its descriptor.

Three kinds of input, as a hostile but signed-in caller would send them:
- `hostile(descriptor)`: every field may be set, to boundary and hostile values: text with NUL,
  100 KB strings, invalid UUIDs, int64 extremes, NaN and infinities, unknown enum numbers,
  timestamps and durations at and past their limits, nested, repeated and map fields.
- `plausible(descriptor, ids)`: values a real client sends (ids that exist, short text, known
  enum values), so requests get past validation and into the handlers; `mutated()` then changes
  exactly one field of such a request to a hostile value.
- `wire_bytes(...)`: bytes that are not the message: random, or a plausible message's bytes
  with some flipped or cut (invalid UTF-8 in strings, bad lengths, wrong wire types).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

F = FieldDescriptor
MAX_DEPTH = 4

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
FIELD_MASK = "google.protobuf.FieldMask"
STRUCT_TYPES = ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue")

INT32_EDGES = (0, 1, -1, 2, 10, 100, 1000, 2**31 - 1, -(2**31), 2**15, 10**6)
INT64_EDGES = (*INT32_EDGES, 2**63 - 1, -(2**63), 2**53 + 1, 2**40, -(2**40))
UINT32_EDGES = (0, 1, 2, 100, 2**32 - 1, 2**31)
UINT64_EDGES = (*UINT32_EDGES, 2**64 - 1, 2**63)
FLOAT_EDGES = (0.0, -0.0, 1.5, -1.0, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan)
TIMESTAMP_SECONDS = (
    0,
    1_780_000_000,  # late 2026
    -62_135_596_800,  # 0001-01-01, the first valid second
    -62_135_596_801,
    253_402_300_799,  # 9999-12-31T23:59:59, the last valid second
    253_402_300_800,
    2**40,
    -(2**40),
    2**63 - 1,
    -(2**63),
)
DURATION_SECONDS = (0, 1, 60, 300, 86_400, -1, 315_576_000_000, 315_576_000_001, -315_576_000_001, 2**63 - 1)
NANOS = (0, 1, 500_000_000, 999_999_999, 1_000_000_000, -1, -999_999_999, 2**31 - 1, -(2**31))

HOSTILE_TEXT = (
    "",
    " ",
    "a\x00b",
    "\x00",
    "x" * 100_000,
    "\u202etxet",  # right-to-left override
    "🦄" * 50,
    "' OR 1=1 --",
    "../../etc/passwd",
    "%00",
    "\\x00",
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "\ufeff\u200b",
    "a" * 257,
)

text = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=40),  # any code point but lone surrogates (protobuf cannot encode those)
    st.text(alphabet=st.sampled_from("\x00abc-_. é中"), max_size=20),
)
random_uuid = st.uuids().map(str)


def _ints(edges: Sequence[int], low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([e for e in edges if low <= e <= high]), st.integers(low, high))


SCALARS: dict[int, st.SearchStrategy[Any]] = {
    F.TYPE_INT32: _ints(INT32_EDGES, -(2**31), 2**31 - 1),
    F.TYPE_SINT32: _ints(INT32_EDGES, -(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: _ints(INT32_EDGES, -(2**31), 2**31 - 1),
    F.TYPE_INT64: _ints(INT64_EDGES, -(2**63), 2**63 - 1),
    F.TYPE_SINT64: _ints(INT64_EDGES, -(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: _ints(INT64_EDGES, -(2**63), 2**63 - 1),
    F.TYPE_UINT32: _ints(UINT32_EDGES, 0, 2**32 - 1),
    F.TYPE_FIXED32: _ints(UINT32_EDGES, 0, 2**32 - 1),
    F.TYPE_UINT64: _ints(UINT64_EDGES, 0, 2**64 - 1),
    F.TYPE_FIXED64: _ints(UINT64_EDGES, 0, 2**64 - 1),
    F.TYPE_BOOL: st.booleans(),
    F.TYPE_DOUBLE: st.one_of(st.sampled_from(FLOAT_EDGES), st.floats(allow_nan=True)),
    F.TYPE_FLOAT: st.one_of(st.sampled_from(FLOAT_EDGES), st.floats(width=32, allow_nan=True)),
    F.TYPE_BYTES: st.one_of(st.binary(max_size=64), st.just(b"\x00" * 70_000)),
    F.TYPE_STRING: text,
}


def _is_repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)
    return repeated if isinstance(repeated, bool) else field.label == F.LABEL_REPEATED


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _enum(field: FieldDescriptor, hostile: bool) -> st.SearchStrategy[int]:
    known = [v.number for v in field.enum_type.values]
    if not hostile:
        return st.sampled_from([n for n in known if n != 0] or known)
    return st.one_of(st.sampled_from(known), st.sampled_from([-1, 99, 2**31 - 1, -(2**31)]))


# --- hostile -------------------------------------------------------------------------------


def _well_known(name: str, hostile: bool) -> st.SearchStrategy[dict[str, Any]] | None:
    if name == TIMESTAMP:
        if not hostile:
            return st.builds(lambda s: {"seconds": s, "nanos": 0}, st.integers(1_700_000_000, 1_800_000_000))
        return st.fixed_dictionaries({"seconds": st.sampled_from(TIMESTAMP_SECONDS), "nanos": st.sampled_from(NANOS)})
    if name == DURATION:
        if not hostile:
            return st.builds(lambda s: {"seconds": s, "nanos": 0}, st.sampled_from((30, 60, 300, 3600)))
        return st.fixed_dictionaries({"seconds": st.sampled_from(DURATION_SECONDS), "nanos": st.sampled_from(NANOS)})
    return None


def _field_value(
    field: FieldDescriptor, depth: int, value_for: Callable[[FieldDescriptor, int], st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    if _is_map(field):
        entry = field.message_type
        keys = value_for(entry.fields_by_name["key"], depth)
        values = value_for(entry.fields_by_name["value"], depth)
        return st.dictionaries(keys, values, max_size=3)
    if _is_repeated(field):
        return st.lists(value_for(field, depth), max_size=3)
    return value_for(field, depth)


def message_dicts(
    descriptor: Descriptor,
    value_for: Callable[[FieldDescriptor, int], st.SearchStrategy[Any]],
    depth: int = 0,
    *,
    complete: bool = False,
) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of field name -> value (nested dicts for messages): every field when `complete`
    (then one member per oneof), else a random subset."""
    fields = list(descriptor.fields)
    if depth >= MAX_DEPTH or not fields:
        return st.just({})
    if not complete:
        return st.fixed_dictionaries({}, optional={f.name: _field_value(f, depth, value_for) for f in fields})
    plain = {f.name: _field_value(f, depth, value_for) for f in fields if f.containing_oneof is None}
    oneofs = [
        st.sampled_from(list(o.fields)).flatmap(
            lambda f: _field_value(f, depth, value_for).map(lambda v, n=f.name: {n: v})
        )
        for o in descriptor.oneofs
        if o.fields and not o.name.startswith("_")  # proto3 optional fields are synthetic oneofs
    ]
    return st.tuples(st.fixed_dictionaries(plain), *oneofs).map(
        lambda parts: {k: v for p in parts for k, v in p.items()}
    )


def hostile_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_ENUM:
        return _enum(field, hostile=True)
    if field.type == F.TYPE_MESSAGE:
        name = field.message_type.full_name
        known = _well_known(name, hostile=True)
        if known is not None:
            return known
        if name in STRUCT_TYPES and depth >= 2:
            return st.just({})
        return st.deferred(lambda: message_dicts(field.message_type, hostile_value, depth + 1))
    return SCALARS[field.type]


def hostile(descriptor: Descriptor) -> st.SearchStrategy[Message]:
    return message_dicts(descriptor, hostile_value).map(lambda d: build(descriptor, d))


# --- plausible, and one field mutated ------------------------------------------------------

IdPool = Mapping[str, Sequence[str]]  # kind ("dashboard", "widget", ...) -> ids that exist


def _id_kind(field: FieldDescriptor, owner: Descriptor) -> str | None:
    name = field.name
    if name.endswith("_id"):
        for kind in ("dashboard", "widget", "query", "export", "job", "link", "facility"):
            if kind in name:
                return kind
        return name[: -len("_id")]
    if name == "id":
        owner_name = owner.name.lower()
        for kind in ("dashboard", "widget", "query", "export", "share", "link", "job"):
            if kind in owner_name:
                return kind
        return "any"
    return None


def plausible_value(ids: IdPool) -> Callable[[FieldDescriptor, int], st.SearchStrategy[Any]]:
    def value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if field.type == F.TYPE_STRING:
            kind = _id_kind(field, field.containing_type)
            if kind is not None:
                pool = list(ids.get(kind, ())) or list(ids.get("any", ()))
                return st.sampled_from(pool) if pool else random_uuid
            if field.name in ("request_id",):
                return random_uuid
            if field.name in ("page_token", "etag"):
                return st.just("")
            return st.sampled_from(("t", "total", "Board", "a-tag", "x"))
        if field.type == F.TYPE_ENUM:
            return _enum(field, hostile=False)
        if field.type == F.TYPE_MESSAGE:
            name = field.message_type.full_name
            known = _well_known(name, hostile=False)
            if known is not None:
                return known
            if name == FIELD_MASK:
                return st.just({"paths": ["title"]})
            if name in STRUCT_TYPES:
                return st.just({})
            return st.deferred(lambda: message_dicts(field.message_type, value, depth + 1, complete=True))
        if field.type in (F.TYPE_INT32, F.TYPE_INT64, F.TYPE_UINT32, F.TYPE_UINT64):
            return st.sampled_from((0, 1, 2, 10))
        return SCALARS[field.type]

    return value


def plausible(descriptor: Descriptor, ids: IdPool) -> st.SearchStrategy[Message]:
    return message_dicts(descriptor, plausible_value(ids), complete=True).map(lambda d: build(descriptor, d))


@st.composite
def mutated(draw: st.DrawFn, descriptor: Descriptor, ids: IdPool) -> Message:
    """A plausible request with exactly one (possibly nested) field set to a hostile value."""
    values = draw(message_dicts(descriptor, plausible_value(ids), complete=True))
    target, owner = values, descriptor
    for _ in range(MAX_DEPTH):
        nested = [f for f in owner.fields if f.name in target and isinstance(target[f.name], dict) and not _is_map(f)]
        nested = [f for f in nested if f.message_type.full_name not in (TIMESTAMP, DURATION, *STRUCT_TYPES)]
        if not nested or not draw(st.booleans()):
            break
        field = draw(st.sampled_from(nested))
        target, owner = target[field.name], field.message_type
    if owner.fields:
        field = draw(st.sampled_from(list(owner.fields)))
        target[field.name] = draw(_field_value(field, 1, hostile_value))
    return build(descriptor, values)


@st.composite
def wire_bytes(draw: st.DrawFn, descriptor: Descriptor, ids: IdPool) -> bytes:
    """Bytes that should not parse as the message (and sometimes happen to)."""
    if draw(st.booleans()):
        return draw(st.binary(min_size=1, max_size=256))
    data = bytearray(draw(plausible(descriptor, ids)).SerializeToString() or b"\x0a\x03abc")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.sampled_from((0xFF, 0xC0, 0x80, 0xED, 0x00, data[at] ^ 0x07)))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data) - 1)) :]
    return bytes(data) or b"\xff"


# --- building ------------------------------------------------------------------------------


def build(descriptor: Descriptor, values: Mapping[str, Any]) -> Message:
    message = GetMessageClass(descriptor)()
    _fill(message, values)
    return message


def _fill(message: Any, values: Mapping[str, Any]) -> None:
    descriptor = message.DESCRIPTOR
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        if _is_map(field):
            _fill_map(getattr(message, name), field, value)
        elif _is_repeated(field):
            target = getattr(message, name)
            for item in value:
                if field.type == F.TYPE_MESSAGE:
                    _fill(target.add(), item)
                else:
                    _set_scalar(lambda v, t=target: t.append(v), field, item)
        elif field.type == F.TYPE_MESSAGE:
            inner = getattr(message, name)
            inner.SetInParent()
            _fill(inner, value)
        else:
            _set_scalar(lambda v, m=message, n=name: setattr(m, n, v), field, value)


def _fill_map(target: Any, field: FieldDescriptor, values: Mapping[Any, Any]) -> None:
    value_field = field.message_type.fields_by_name["value"]
    for key, value in values.items():
        if value_field.type == F.TYPE_MESSAGE:
            _fill(target[key], value)
        else:
            _set_scalar(lambda v, t=target, k=key: t.__setitem__(k, v), value_field, value)


def _set_scalar(assign: Callable[[Any], None], field: FieldDescriptor, value: Any) -> None:
    # A value this field's type cannot hold (a closed enum's unknown number) is left unset.
    with contextlib.suppress(ValueError, TypeError):
        assign(value)
