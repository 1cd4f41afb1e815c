"""Proto <-> JSONB and timestamp helpers shared by every resource's conversions."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

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
