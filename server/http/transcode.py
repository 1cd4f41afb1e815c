"""HTTP request -> request message, and messages -> proto3 JSON, with the rules of
`google/api/http.proto` as grpc-gateway applies them: path variables (nested fields), `body: "*"`,
`body: "field"`, and every other field from query parameters (dotted paths, repeated by
repetition, enums by name or number, well-known types in their JSON string form)."""

from __future__ import annotations

import json
import re
from typing import Any, cast
from urllib.parse import parse_qsl

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from server.errors import FieldViolation, InvalidArgument
from server.http import jsonout
from server.http.bindings import Binding

# Messages that a single query parameter can carry (their JSON form is a string or a scalar).
_SCALAR_MESSAGES = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
        "google.protobuf.BoolValue",
        "google.protobuf.Int32Value",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.FloatValue",
        "google.protobuf.DoubleValue",
    }
)
_TRUE = frozenset({"true", "True", "TRUE", "t", "T", "1"})
_FALSE = frozenset({"false", "False", "FALSE", "f", "F", "0"})


def _invalid(field: str, description: str, reason: str = "INVALID_FIELD") -> InvalidArgument:
    return InvalidArgument(
        f"invalid request: {field}: {description}",
        violations=[FieldViolation(field=field, description=description, reason=reason)],
        reason=reason,
    )


def _field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    """A field by its proto name or its JSON name."""
    found = descriptor.fields_by_name.get(name)
    if found is not None:
        return found
    return next((f for f in descriptor.fields if f.json_name == name), None)


def _scalar(field: FieldDescriptor, value: str, path: str) -> Any:
    if field.type == FieldDescriptor.TYPE_BOOL:
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise _invalid(path, f"not a boolean: {value[:64]!r}")
    if field.type == FieldDescriptor.TYPE_ENUM and value.lstrip("-").isdigit():
        return int(value)
    if field.message_type is not None and field.message_type.full_name == "google.protobuf.BoolValue":
        return _scalar(field.message_type.fields_by_name["value"], value, path)
    # Numbers, strings, bytes (base64), enum names and the well-known types' string forms are
    # what json_format expects as JSON strings already.
    return value


def _place(target: dict[str, Any], descriptor: Descriptor, path: str, value: str, *, from_path: bool) -> None:
    """Sets `path` (dotted, proto or JSON names) in the JSON-shaped dict `target`."""
    parts = path.split(".")
    node = target
    for depth, part in enumerate(parts):
        field = _field(descriptor, part)
        if field is None:
            raise _invalid(path, f"no such field {part!r} in {descriptor.name}", "UNKNOWN_FIELD")
        # One key per field whatever spelling the body used, so the path value wins cleanly.
        for spelling in {field.name, field.json_name}:
            if spelling != field.name and spelling in node and depth == len(parts) - 1:
                node.pop(spelling)
        last = depth == len(parts) - 1
        if not last:
            if field.message_type is None or field.is_repeated:
                raise _invalid(path, f"{part!r} is not a message field", "UNKNOWN_FIELD")
            existing = node.pop(field.json_name, None) if field.json_name != field.name else None
            child = node.setdefault(field.name, existing if isinstance(existing, dict) else {})
            if not isinstance(child, dict):
                raise _invalid(path, f"{part!r} is set twice")
            node = child
            descriptor = field.message_type
            continue
        if field.message_type is not None and field.message_type.full_name not in _SCALAR_MESSAGES:
            raise _invalid(path, f"{part!r} is a message; set its fields ({part}.<field>) instead")
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            raise _invalid(path, "map fields cannot be set from the query string")
        converted = _scalar(field, value, path)
        if field.is_repeated and not from_path:
            node.setdefault(field.name, []).append(converted)
        else:
            if not from_path and field.name in node:
                raise _invalid(path, "given more than once for a field that is not repeated")
            node[field.name] = converted


# As deep as protobuf's own parsers go (its default recursion limit): a deeper body could not
# be a message a gRPC caller can send, and would exhaust Python's stack in the JSON parsers.
MAX_NESTING = 100


def parse_body(raw: bytes) -> Any:
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid("body", f"malformed JSON: {exc}", "MALFORMED_JSON") from None
    except RecursionError:
        raise _too_deep() from None
    # Counting brackets is cheap, and only a body with that many can be nested that deep.
    if raw.count(b"{") + raw.count(b"[") > MAX_NESTING and _depth(parsed) > MAX_NESTING:
        raise _too_deep()
    return parsed


def _too_deep() -> InvalidArgument:
    return _invalid("body", f"JSON nested deeper than {MAX_NESTING} levels", "NESTED_TOO_DEEP")


def _depth(value: Any) -> int:
    """How deep objects and arrays nest in a parsed JSON value (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_NESTING:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def build_request(binding: Binding, variables: dict[str, str], query: str, body: bytes | None) -> Message:
    """The request message of one HTTP call (raises InvalidArgument naming the field)."""
    descriptor = binding.method.input_type
    fields: dict[str, Any] = {}
    if binding.body == "*":
        parsed = parse_body(body or b"")
        if not isinstance(parsed, dict):
            raise _invalid("body", "the body must be a JSON object", "MALFORMED_JSON")
        fields = parsed
    elif binding.body:
        parsed = parse_body(body or b"")
        if parsed != {} or (body or b"").strip():
            body_field = binding.body_field()
            assert body_field is not None
            fields[body_field.name] = parsed
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False) if query else []
    if pairs and binding.body == "*":
        names = ", ".join(sorted({name for name, _ in pairs}))
        raise _invalid(names, "this operation takes every field in the body, none in the query", "UNKNOWN_FIELD")
    for name, value in pairs:
        if binding.body and _top(name) in (binding.body, _json_name(descriptor, binding.body)):
            raise _invalid(name, f"{binding.body!r} is the body; it cannot also come from the query")
        _place(fields, descriptor, name, value, from_path=False)
    for name, value in variables.items():
        _place(fields, descriptor, name, value, from_path=True)
    return parse_message(binding.request_class, fields)


def parse_message(request_class: type[Message], fields: Any) -> Message:
    """proto3 JSON (already parsed) -> the request message; unknown fields refused, naming them
    (the REST face and the Connect protocol's JSON share this)."""
    request = request_class()
    try:
        json_format.ParseDict(fields, request, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise InvalidArgument(
            f"invalid request: {_first_line(exc)}",
            violations=[FieldViolation(field=_where(exc), description=_first_line(exc), reason="INVALID_JSON_FIELD")],
        ) from None
    return request


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _json_name(descriptor: Descriptor, name: str) -> str:
    field = descriptor.fields_by_name.get(name)
    return field.json_name if field is not None else name


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__


def _where(exc: Exception) -> str:
    """The field json_format complains about: `no field named "f" at "Request.a"` -> `a.f`;
    `Failed to parse f field: ... at "Request.a"` -> `a.f`."""
    text = str(exc).splitlines()[0]
    marker = text.rfind(' at "')
    place = text[marker + 5 :].rstrip('".').partition(".")[2] if marker >= 0 else ""
    named = re.search(r'no field named "([^"]+)"', text) or re.match(r"Failed to parse (\S+) field", text)
    field_name = named.group(1) if named else ""
    if place and field_name and place.split(".")[-1] == field_name:
        field_name = ""
    return ".".join(p for p in (place, field_name) if p) or "body"


def to_json(message: Message) -> dict[str, Any]:
    """proto3 JSON as grpc-gateway writes it: lowerCamelCase, int64 as strings, enums by name,
    and fields at their default value included (clients see every field). json_format's output,
    written by a per-type plan (jsonout) rather than by reflection on every call."""
    return cast(dict[str, Any], jsonout.to_json(message))


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`
    writes it, by orjson (about twenty times faster). What the writers hand it (to_json's dicts,
    google.rpc.Status, Connect errors) has only string keys and no NaN or infinite floats (proto3
    JSON writes those as strings), where the two agree."""
    return orjson.dumps(value)
