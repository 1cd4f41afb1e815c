"""The rules every request obeys whatever its type, checked once for all fields of all rpcs.

- Text: PostgreSQL cannot store U+0000 in `text` or `jsonb`, so a NUL anywhere in a request
  (a string field, a repeated string, a map key or value, a Struct) is refused here instead of
  failing deep in a statement, or in the audit writer, later. (Invalid UTF-8 and lone
  surrogates never get this far: the protobuf runtime refuses them when it parses the bytes.)
- Timestamps and durations: only what protobuf defines as valid (0001-01-01 to 9999-12-31;
  +-10,000 years; nanos in range and of the seconds' sign), wherever a Timestamp or Duration
  arrives, `ParameterValue.timestamp_value` and `refresh_interval` included.

`violations(message)` walks the fields that are set, guided by a per-type plan computed once
from the descriptor, so a type with nothing to check costs one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from server.errors import FieldViolation

__all__ = ["NUL_REASON", "RANGE_REASON", "violations"]

NUL_REASON = "string.no_nul"
RANGE_REASON = "value.out_of_range"

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
TIMESTAMP_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
TIMESTAMP_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
DURATION_MAX_SECONDS = 315_576_000_000  # 10,000 years
NANOS_MAX = 999_999_999
MAX_REPORTED = 20  # a request with 10,000 bad strings gets a readable answer

_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


@dataclass(frozen=True)
class _Plan:
    """What to look at in one message type: its string fields and the message fields whose
    types (transitively) hold a string, a Timestamp or a Duration."""

    strings: tuple[FieldDescriptor, ...]
    messages: tuple[FieldDescriptor, ...]

    @property
    def empty(self) -> bool:
        return not self.strings and not self.messages


_plans: dict[str, _Plan] = {}
_building: set[str] = set()


def _plan(descriptor: Any) -> _Plan:
    found = _plans.get(descriptor.full_name)
    if found is None:
        _building.add(descriptor.full_name)
        try:
            found = _build(descriptor)
        finally:
            _building.discard(descriptor.full_name)
        _plans[descriptor.full_name] = found
    return found


def _build(descriptor: Any) -> _Plan:
    strings = tuple(f for f in descriptor.fields if f.type == _STRING)
    messages = []
    for field in descriptor.fields:
        if field.type != _MESSAGE:
            continue
        inner: Any = field.message_type
        # Timestamps and durations are checked; map entries, recursive types (Struct, Value) and
        # anything holding one of these is walked.
        if (
            inner.full_name in (TIMESTAMP, DURATION)
            or inner.full_name in _building
            or inner.GetOptions().map_entry
            or not _plan(inner).empty
        ):
            messages.append(field)
    return _Plan(strings, tuple(messages))


def violations(message: Message) -> list[FieldViolation]:
    """Every value in `message` that breaks the rules above (at most MAX_REPORTED)."""
    found: list[FieldViolation] = []
    for violation in _walk(message, ""):
        found.append(violation)
        if len(found) >= MAX_REPORTED:
            break
    return found


def _walk(message: Message, prefix: str) -> Iterator[FieldViolation]:
    descriptor = message.DESCRIPTOR
    name = descriptor.full_name
    if name == TIMESTAMP:
        yield from _timestamp(message, prefix)
        return
    if name == DURATION:
        yield from _duration(message, prefix)
        return
    plan = _plan(descriptor)
    if plan.empty:
        return
    for field in plan.strings:
        path = _join(prefix, field.name)
        if _is_repeated(field):
            for index, text in enumerate(getattr(message, field.name)):
                if "\x00" in text:
                    yield _nul(f"{path}[{index}]")
        else:
            text = getattr(message, field.name)
            if "\x00" in text:
                yield _nul(path)
    for field in plan.messages:
        path = _join(prefix, field.name)
        value = getattr(message, field.name)
        if _is_map(field):
            yield from _map(field, value, path)
        elif _is_repeated(field):
            for index, item in enumerate(value):
                yield from _walk(item, f"{path}[{index}]")
        elif message.HasField(field.name):
            yield from _walk(value, path)


def _map(field: FieldDescriptor, value: Any, path: str) -> Iterator[FieldViolation]:
    entry: Any = field.message_type
    value_field = entry.fields_by_name["value"]
    for key in value:
        shown = f'{path}["{_printable(key)}"]' if isinstance(key, str) else f"{path}[{key}]"
        if isinstance(key, str) and "\x00" in key:
            yield _nul(shown, "a map key")
        item = value[key]
        if value_field.type == _MESSAGE:
            yield from _walk(item, shown)
        elif value_field.type == _STRING and "\x00" in item:
            yield _nul(shown)


def _timestamp(message: Any, path: str) -> Iterator[FieldViolation]:
    seconds, nanos = message.seconds, message.nanos
    if not TIMESTAMP_MIN_SECONDS <= seconds <= TIMESTAMP_MAX_SECONDS:
        yield _range(path, "must be a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z")
    elif not 0 <= nanos <= NANOS_MAX:
        yield _range(path, f"nanos must be from 0 to {NANOS_MAX}")


def _duration(message: Any, path: str) -> Iterator[FieldViolation]:
    seconds, nanos = message.seconds, message.nanos
    if not -DURATION_MAX_SECONDS <= seconds <= DURATION_MAX_SECONDS:
        yield _range(path, "must be a duration of at most 10,000 years either way")
    elif not -NANOS_MAX <= nanos <= NANOS_MAX:
        yield _range(path, f"nanos must be from -{NANOS_MAX} to {NANOS_MAX}")
    elif (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        yield _range(path, "seconds and nanos must have the same sign")


def _nul(path: str, what: str = "text") -> FieldViolation:
    return FieldViolation(
        field=path, description=f"{what} must not contain the NUL character (U+0000)", reason=NUL_REASON
    )


def _range(path: str, description: str) -> FieldViolation:
    return FieldViolation(field=path, description=description, reason=RANGE_REASON)


def _printable(key: str) -> str:
    shown = key.replace("\x00", "\\u0000").replace('"', '\\"')
    return shown if len(shown) <= 64 else shown[:61] + "..."


def _is_map(field: FieldDescriptor) -> bool:
    inner: Any = field.message_type
    return bool(inner.GetOptions().map_entry)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)
