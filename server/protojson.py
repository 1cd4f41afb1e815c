"""Proto <-> JSONB and timestamp helpers shared by every resource's conversions."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def from_json(data: dict[str, Any] | None, message: M) -> M:
    if data:
        # Unknown fields are ignored so rows written by a newer server still load.
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    return message


def load_json(data: str | bytes) -> Any:
    """JSON (jsonb values as the driver hands them over): orjson, several times faster than
    json.loads on every row of a list. What orjson refuses goes to json.loads. (An integer beyond
    64 bits comes back as a float: every jsonb column here becomes protobuf, where such a number
    fits no integer field either way and a double field gets the same float.)"""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def from_json_text(text: str, message_type: type[M]) -> M:
    """A message from its JSON text (a jsonb column selected as text). Parsed by json_format once
    per distinct text, then read by the C parser: jsonb prints one value one way, so the cache is
    keyed by the content itself and never stale. A new message each call: callers may change it."""
    name = message_type.DESCRIPTOR.full_name
    parse = _parsers.get(name)
    if parse is None:

        def serialized(json_text: str) -> bytes:
            return from_json(load_json(json_text), message_type()).SerializeToString()

        parse = _parsers[name] = functools.lru_cache(maxsize=4096)(serialized)
    return message_type.FromString(parse(text))


# One cache of parsed texts per message type (by its full name).
_parsers: dict[str, Callable[[str], bytes]] = {}


def ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def set_time(field: timestamp_pb2.Timestamp, value: datetime | None) -> None:
    """`field` = `value` (naive values are UTC), exactly as Timestamp.FromDatetime would set it, by
    integer arithmetic: a row conversion sets three of these per row."""
    if value is None:
        return
    since: timedelta = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
    field.seconds = since.days * 86400 + since.seconds
    field.nanos = since.microseconds * 1000


def etag(*parts: object) -> str:
    """An opaque concurrency token that changes whenever any part changes."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()
