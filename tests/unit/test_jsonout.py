"""The fast proto3 JSON writer (server/http/jsonout.py) writes exactly what json_format writes
(`MessageToDict(..., always_print_fields_with_no_presence=True)`, the REST face's contract): for
every message type of the API, requests, responses and everything nested, with hostile values
(int64 extremes, NaN and infinities, unknown enum numbers, timestamps past their range, bytes,
maps, Struct), the same dict, the same key order and the same error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2, timestamp_pb2, wrappers_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import widget_pb2 as w
from server.http.bindings import SERVICES
from server.http.jsonout import to_json
from tests.fuzz.strategies import hostile


def _nested(descriptor: Descriptor) -> Iterator[Descriptor]:
    if descriptor.GetOptions().map_entry:
        return
    yield descriptor
    for inner in descriptor.nested_types:
        yield from _nested(inner)


def _all_messages() -> list[Descriptor]:
    found: dict[str, Descriptor] = {}
    services = {service.file for service in SERVICES}
    # The services' files and the API's files they import (common.proto...).
    for file in {*services, *(dep for f in services for dep in f.dependencies if dep.package == "dashboard.v1")}:
        for descriptor in file.message_types_by_name.values():
            for one in _nested(descriptor):
                found[one.full_name] = one
    for extra in (status_pb2.Status, error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
        found[extra.DESCRIPTOR.full_name] = extra.DESCRIPTOR
    return sorted(found.values(), key=lambda x: x.full_name)


MESSAGES = _all_messages()


def _expected(message: Message) -> tuple[str, Any]:
    try:
        return "ok", json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    except (
        json_format.SerializeToJsonError,
        TypeError,
        ValueError,
    ) as exc:  # an Any of an unknown type, a bare WKT out of range
        return "error", f"{type(exc).__name__}: {exc}"


def _actual(message: Message) -> tuple[str, Any]:
    try:
        return "ok", to_json(message)
    except (
        json_format.SerializeToJsonError,
        TypeError,
        ValueError,
    ) as exc:  # an Any of an unknown type, a bare WKT out of range
        return "error", f"{type(exc).__name__}: {exc}"


def _same(message: Message) -> None:
    expected, actual = _expected(message), _actual(message)
    assert actual == expected, message
    if expected[0] == "ok":  # the same bytes once dumped: the same key order
        assert json.dumps(actual[1]) == json.dumps(expected[1])


def test_covers_the_api() -> None:
    names = {m.full_name for m in MESSAGES}
    assert "dashboard.v1.WidgetData" in names and "dashboard.v1.Dashboard" in names
    assert len(names) > 100


@pytest.mark.parametrize("descriptor", MESSAGES, ids=lambda m: m.full_name)
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_same_as_json_format(descriptor: Descriptor, data: st.DataObject) -> None:
    _same(data.draw(hostile(descriptor)))


def test_empty_messages() -> None:
    for descriptor in MESSAGES:
        _same(descriptor._concrete_class())


def test_well_known_types_and_edges() -> None:
    frame = c.DataFrame(row_count=2)
    column = frame.columns.add(name="n", type=c.COLUMN_TYPE_INT64)
    column.int64_values.values.extend([2**63 - 1, -(2**63)])
    _same(frame)
    board = d.Dashboard(title="t", metadata=struct_pb2.Struct(fields={"a": struct_pb2.Value(number_value=1.5)}))
    board.update_time.FromSeconds(1_780_000_000)
    _same(board)
    assert to_json(board)["updateTime"] == "2026-05-28T20:26:40Z"
    _same(w.WidgetData(widget_id="x"))
    for wrapper in (
        wrappers_pb2.FloatValue(value=0.1),
        wrappers_pb2.Int64Value(value=5),
        wrappers_pb2.BytesValue(value=b"\x00"),
    ):
        _same(wrapper)
    _same(timestamp_pb2.Timestamp(seconds=2**40))  # out of range: the same error
