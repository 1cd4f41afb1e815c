"""Messages -> proto3 JSON (as dicts), exactly what `json_format.MessageToDict(message,
always_print_fields_with_no_presence=True)` returns, several times faster.

json_format decides, for every field of every message on every call, what kind of field it is
(a map? repeated? which scalar? a well-known type?) and looks up enum names by reflection. Here
that is decided once per message type: each descriptor gets a writer holding one converter per
field, its JSON name, and the defaults of the fields without presence (written when unset).

Exactness is the rule: anything this module does not write itself goes to json_format, so the
output never differs (tests/unit/test_jsonout.py compares both over every message type of the
API with generated values). Handed to json_format: Any, Struct, Value, ListValue (rare, and
their rules are json_format's), float fields (its shortest-float rounding), closed enums (it
refuses unknown values) and extensions."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

Convert = Callable[[Any], Any]
Writer = Callable[[Message], dict[str, Any] | Any]

__all__ = ["to_json"]

_F = FieldDescriptor
_INT64 = frozenset({_F.CPPTYPE_INT64, _F.CPPTYPE_UINT64})
_IDENTITY = frozenset({_F.CPPTYPE_INT32, _F.CPPTYPE_UINT32, _F.CPPTYPE_BOOL})
# json_format writes these with their own ToJsonString (RFC 3339, "1.5s", "a,b").
_STRING_FORM = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"})
_WRAPPERS = frozenset(
    {
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)
_LEFT_TO_JSON_FORMAT = frozenset(
    {"google.protobuf.Any", "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)

_writers: dict[str, Writer] = {}


def to_json(message: Message) -> Any:
    """proto3 JSON of `message` as grpc-gateway writes it: lowerCamelCase names, int64 as
    strings, enums by name, well-known types in their string forms, and every field without
    presence included at its default value."""
    try:
        return _writer(cast(Descriptor, message.DESCRIPTOR))(message)
    except ValueError:
        # A value JSON cannot hold (a timestamp out of range...): json_format raises its own error.
        return _json_format(message)


def _json_format(message: Message) -> Any:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _writer(descriptor: Descriptor) -> Writer:
    found = _writers.get(descriptor.full_name)
    if found is None:
        # Registered before it is built, so a message type that contains itself finds it.
        _writers[descriptor.full_name] = lambda message: _writers[descriptor.full_name](message)
        found = _writers[descriptor.full_name] = _build(descriptor)
    return found


def _build(descriptor: Descriptor) -> Writer:
    name = descriptor.full_name
    if name in _STRING_FORM:
        return lambda message: message.ToJsonString()  # type: ignore[attr-defined]
    if name in _WRAPPERS:
        value_convert = _scalar(descriptor.fields_by_name["value"])
        if value_convert is None:
            return _json_format
        return lambda message: value_convert(message.value)  # type: ignore[attr-defined]
    if name in _LEFT_TO_JSON_FORMAT:
        return _json_format
    plans: dict[FieldDescriptor, tuple[str, Convert]] = {}
    defaults: list[tuple[str, Callable[[], Any] | None, Any]] = []
    for field in descriptor.fields:
        convert = _field_converter(field)
        if convert is None:
            return _json_format
        plans[field] = (field.json_name, convert)
        if field.has_presence:
            continue
        # An unset field without presence: a fresh list or dict each time, else its constant.
        if _is_map(field):
            defaults.append((field.json_name, dict, None))
        elif field.is_repeated:
            defaults.append((field.json_name, list, None))
        else:
            defaults.append((field.json_name, None, convert(field.default_value)))
    return _regular(plans, tuple(defaults))


def _regular(
    plans: dict[FieldDescriptor, tuple[str, Convert]], defaults: tuple[tuple[str, Callable[[], Any] | None, Any], ...]
) -> Writer:
    def write(message: Message) -> Any:
        out: dict[str, Any] = {}
        for field, value in message.ListFields():
            try:
                name, convert = plans[field]
            except KeyError:  # an extension: json_format knows its name and rules
                return _json_format(message)
            out[name] = convert(value)
        # Then the unset fields without presence, in declaration order (as json_format does).
        for name, fresh, value in defaults:
            if name not in out:
                out[name] = value if fresh is None else fresh()
        return out

    return write


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _field_converter(field: FieldDescriptor) -> Convert | None:
    """The converter of a field's whole value (list or dict included), or None when
    json_format must write the message."""
    if _is_map(field):
        return _map(field)
    one = _single(field)
    if one is None:
        return None
    if not field.is_repeated:
        return one
    if field.cpp_type in _IDENTITY or (field.cpp_type == _F.CPPTYPE_STRING and field.type != _F.TYPE_BYTES):
        return list
    if field.cpp_type in _INT64:
        return lambda values: list(map(str, values))
    return lambda values: [one(value) for value in values]


def _map(field: FieldDescriptor) -> Convert | None:
    entry = field.message_type
    assert entry is not None
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    convert = _single(value_field)
    if convert is None:
        return None
    if key_field.cpp_type == _F.CPPTYPE_BOOL:
        return lambda mapping: {("true" if key else "false"): convert(mapping[key]) for key in mapping}
    return lambda mapping: {str(key): convert(mapping[key]) for key in mapping}


def _single(field: FieldDescriptor) -> Convert | None:
    """The converter of one value of a field."""
    if field.is_extension:
        return None
    if field.cpp_type == _F.CPPTYPE_MESSAGE:
        assert field.message_type is not None
        return _writer(field.message_type)
    return _scalar(field)


def _scalar(field: FieldDescriptor) -> Convert | None:
    kind = field.cpp_type
    if kind == _F.CPPTYPE_STRING:
        if field.type == _F.TYPE_BYTES:
            return lambda value: base64.b64encode(value).decode("utf-8")
        return str
    if kind in _IDENTITY:
        return bool if kind == _F.CPPTYPE_BOOL else _same
    if kind in _INT64:
        return str
    if kind == _F.CPPTYPE_DOUBLE:
        return _double
    if kind == _F.CPPTYPE_ENUM:
        assert field.enum_type is not None
        return _enum(field.enum_type)
    return None  # float (json_format's shortest-float rounding)


def _same(value: Any) -> Any:
    return value


def _double(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def _enum(enum: EnumDescriptor) -> Convert | None:
    if enum.full_name == "google.protobuf.NullValue":
        return lambda _value: None
    if enum.is_closed:
        return None  # json_format refuses unknown numbers of a closed enum
    names = {number: value.name for number, value in enum.values_by_number.items()}
    # An open enum's unknown number is written as the number.
    return lambda number: names.get(number, number)
