"""The rules every request obeys (server/api/input_rules.py): exact bounds, paths, and types
whose plan has nothing to check."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.api.input_rules import MAX_REPORTED, NUL_REASON, RANGE_REASON, violations


def _audit(**stamp: int) -> s.ListAuditEventsRequest:
    return s.ListAuditEventsRequest(start_time=timestamp_pb2.Timestamp(**stamp))


@pytest.mark.parametrize(
    ("stamp", "ok"),
    [
        ({"seconds": -62_135_596_800}, True),
        ({"seconds": 253_402_300_799, "nanos": 999_999_999}, True),
        ({"seconds": -62_135_596_801}, False),
        ({"seconds": 253_402_300_800}, False),
        ({"seconds": 0, "nanos": -1}, False),
        ({"seconds": 0, "nanos": 1_000_000_000}, False),
    ],
)
def test_timestamp_bounds_are_protobufs(stamp, ok):
    found = violations(_audit(**stamp))
    assert (found == []) is ok
    if not ok:
        assert found[0].field == "start_time" and found[0].reason == RANGE_REASON


@pytest.mark.parametrize(
    ("seconds", "nanos", "ok"),
    [
        (315_576_000_000, 999_999_999, True),
        (-315_576_000_000, -999_999_999, True),
        (315_576_000_001, 0, False),
        (1, -1, False),
        (-1, 1, False),
        (0, -5, True),
    ],
)
def test_duration_bounds_and_signs(seconds, nanos, ok):
    widget = w.Widget(refresh_interval=duration_pb2.Duration(seconds=seconds, nanos=nanos))
    found = violations(w.UpdateWidgetRequest(widget=widget))
    assert (found == []) is ok
    if not ok:
        assert found[0].field == "widget.refresh_interval"


def test_paths_name_repeated_elements_map_keys_and_struct_values():
    request = d.CreateDashboardRequest(
        dashboard=d.Dashboard(
            tags=["ok", "b\x00d"],
            filters=[d.DashboardFilter(name="f", default_value=c.ParameterValue(string_value="\x00"))],
            metadata=struct_pb2.Struct(
                fields={"k": struct_pb2.Value(list_value={"values": [{"string_value": "x\x00"}]})}
            ),
        )
    )
    fields = {v.field for v in violations(request)}
    assert fields == {
        "dashboard.tags[1]",
        "dashboard.filters[0].default_value.string_value",
        'dashboard.metadata.fields["k"].list_value.values[0].string_value',
    }
    assert {v.reason for v in violations(request)} == {NUL_REASON}


def test_a_nul_in_a_map_key_is_shown_escaped():
    request = w.GetWidgetDataRequest(parameter_values={"a\x00": c.ParameterValue(int_value=1)})
    (found,) = violations(request)
    assert found.field == 'parameter_values["a\\u0000"]' and "map key" in found.description


def test_reports_are_bounded():
    request = d.ListDashboardsRequest(tags=["\x00"] * 500)
    assert len(violations(request)) == MAX_REPORTED


def test_clean_requests_have_nothing_to_say():
    assert (
        violations(w.GetWidgetDataRequest(widget_id="x", parameter_values={"p": c.ParameterValue(string_value="ok")}))
        == []
    )
    assert violations(d.GetDashboardRequest(id="é中🦄")) == []
