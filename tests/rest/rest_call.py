"""A request message -> the HTTP request of one of its rpc's bindings (the reverse of the
server's transcoding, written independently from the rules of google/api/http.proto), and
normalisation so REST and gRPC answers compare."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from server.http.bindings import Binding

_WKT_STRINGS = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}


def _get(message: Message, path: str) -> Any:
    value: Any = message
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _path_value(message: Message, path: str) -> str:
    *parents, last = path.split(".")
    holder: Any = message
    for part in parents:
        holder = getattr(holder, part)
    field = holder.DESCRIPTOR.fields_by_name[last]
    value = getattr(holder, last)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    return str(value)


def _query_pairs(message: Message, prefix: str, skip: set[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for field, value in message.ListFields():
        name = prefix + field.json_name
        proto_path = (prefix + field.name) if not prefix else name
        if field.name in skip and not prefix:
            continue
        values = list(value) if field.is_repeated else [value]
        for item in values:
            if field.message_type is not None:
                if field.message_type.full_name in _WKT_STRINGS:
                    pairs.append((name, json_format.MessageToDict(item)))  # type: ignore[arg-type]
                else:
                    pairs.extend(_query_pairs(item, name + ".", set()))
            elif field.type == FieldDescriptor.TYPE_ENUM:
                pairs.append((name, field.enum_type.values_by_number[item].name))
            elif field.type == FieldDescriptor.TYPE_BOOL:
                pairs.append((name, "true" if item else "false"))
            elif field.type == FieldDescriptor.TYPE_BYTES:
                pairs.append((name, base64.b64encode(item).decode()))
            else:
                pairs.append((name, str(item)))
        del proto_path
    return pairs


def http_request(binding: Binding, message: Message) -> tuple[str, str, list[tuple[str, str]], Any]:
    """(verb, path, query pairs, JSON body or None)."""
    path = binding.template
    for variable in binding.variables:
        path = path.replace("{" + variable + "}", quote(_path_value(message, variable), safe=""))
    top_path = {v.split(".")[0] for v in binding.variables if "." not in v}
    body: Any = None
    if binding.body == "*":
        body = json_format.MessageToDict(message)
        for variable in binding.variables:
            field = message.DESCRIPTOR.fields_by_name.get(variable)
            if field is not None:
                body.pop(field.json_name, None)
        return binding.verb, path, [], body
    skip = set(top_path)
    if binding.body:
        # An unset body field is no body at all ({} would set it, empty).
        body = json_format.MessageToDict(getattr(message, binding.body)) if message.HasField(binding.body) else None
        skip.add(binding.body)
    return binding.verb, path, _query_pairs(message, "", skip), body


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_VOLATILE_KEYS = {"etag", "correlation_id", "nextPageToken", "token", "tokenPrefix", "url", "elapsed"}


def normalise(value: Any) -> Any:
    """Ids, times, etags and correlation ids differ between two equal calls made one after
    the other; everything else must be equal."""
    if isinstance(value, dict):
        return {k: ("<volatile>" if k in _VOLATILE_KEYS else normalise(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        return _RFC3339.sub("<time>", _UUID.sub("<uuid>", value))
    return value
