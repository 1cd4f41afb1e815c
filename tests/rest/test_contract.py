"""REST, gRPC and the Connect protocol give the same answer: for every `google.api.http` binding
read from the descriptors, the same request over the three transports against the session's real
server (Connect unary in binary proto, Connect streams in JSON envelopes).

Every binding is called with ids nobody has (the whole error path: authentication, validation,
policy, error details); the table below also drives the success path of the rpcs whose
answers do not depend on a job runner."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from server.http.bindings import Binding, Router, bindings
from server.http.transcode import to_json
from tests.rest.connect_call import connect_stream, connect_unary
from tests.rest.rest_call import http_request, normalise

BINDINGS = bindings()
Metadata = tuple[tuple[str, str], ...]


def _grpc(channel: grpc.Channel, binding: Binding, message: Message, md: Metadata) -> tuple[int, Any]:
    path = binding.rpc
    response_class = binding.response_class
    try:
        if binding.streaming:
            call = channel.unary_stream(path, request_serializer=type(message).SerializeToString,
                                        response_deserializer=response_class.FromString)  # fmt: skip
            items = [to_json(item) for item in call(message, metadata=md, timeout=30)]
            return 0, items
        unary = channel.unary_unary(path, request_serializer=type(message).SerializeToString,
                                    response_deserializer=response_class.FromString)  # fmt: skip
        return 0, to_json(unary(message, metadata=md, timeout=30))
    except grpc.RpcError as exc:
        rich = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")  # type: ignore[attr-defined]
        status = status_pb2.Status.FromString(rich) if rich else status_pb2.Status(code=exc.code().value[0])  # type: ignore[attr-defined]
        return status.code, json_format.MessageToDict(status, always_print_fields_with_no_presence=True)


def _rest(rest: httpx.Client, binding: Binding, message: Message, md: Metadata) -> tuple[int, Any, int]:
    verb, path, query, body = http_request(binding, message)
    headers = dict(md)
    if binding.streaming:
        headers["accept"] = "application/json"
    response = rest.request(verb, path, params=query, json=body, headers=headers)
    if response.status_code != 200:
        payload = response.json()
        return int(payload["code"]), payload, response.status_code
    if binding.streaming:
        lines = [__import__("json").loads(line) for line in response.text.splitlines() if line]
        return 0, [line["result"] for line in lines], 200
    return 0, response.json(), 200


def _connect(rest: httpx.Client, binding: Binding, message: Message, md: Metadata) -> tuple[int, Any, int]:
    """The same rpc over the Connect protocol at /<service>/<method>: (code, body, HTTP status)."""
    headers = dict(md)
    if binding.streaming:
        items, error, _ = connect_stream(rest, binding.rpc, message, binding.response_class, json_codec=True,
                                         headers=headers)  # fmt: skip
        if error is not None:
            return error.code, json_format.MessageToDict(error, always_print_fields_with_no_presence=True), 200
        return 0, [to_json(item) for item in items], 200
    code, answer, raw = connect_unary(rest, binding.rpc, message, binding.response_class, headers=headers)
    return code, json_format.MessageToDict(answer, always_print_fields_with_no_presence=True), raw.status_code


_HTTP_OF_CODE = {
    0: 200,
    3: 400,
    16: 401,
    7: 403,
    5: 404,
    6: 409,
    10: 409,
    9: 400,
    8: 429,
    1: 499,
    12: 501,
    14: 503,
    4: 504,
}


def _same(
    rest: httpx.Client, channel: grpc.Channel, binding: Binding, make: Callable[[], Message], md: Metadata
) -> tuple[int, Any]:
    # One correlation id per call: the session's audit check matches data reads by id.
    rest_code, rest_body, http_status = _rest(rest, binding, make(), (*md, ("x-correlation-id", _cid())))
    grpc_code, grpc_body = _grpc(channel, binding, make(), (*md, ("x-correlation-id", _cid())))
    assert (rest_code, normalise(rest_body)) == (grpc_code, normalise(grpc_body)), binding.template
    assert http_status == _HTTP_OF_CODE.get(rest_code, 500)
    connect_code, connect_body, connect_http = _connect(rest, binding, make(), (*md, ("x-correlation-id", _cid())))
    assert (connect_code, normalise(connect_body)) == (grpc_code, normalise(grpc_body)), binding.rpc
    assert connect_http == (200 if binding.streaming else _HTTP_OF_CODE.get(connect_code, 500))
    return rest_code, rest_body


def _cid() -> str:
    return f"contract-{uuid.uuid4().hex}"


def _unknown_ids(binding: Binding) -> Message:
    """The binding's request with every path variable set to something that names nothing."""
    message = binding.request_class()
    for variable in binding.variables:
        *parents, last = variable.split(".")
        holder: Any = message
        for part in parents:
            holder = getattr(holder, part)
        field = holder.DESCRIPTOR.fields_by_name[last]
        if field.type == FieldDescriptor.TYPE_STRING:
            setattr(holder, last, str(uuid.uuid4()) if last != "user_id" else "nobody")
        elif field.type == FieldDescriptor.TYPE_ENUM:
            setattr(holder, last, field.enum_type.values[-1].number)
        else:
            setattr(holder, last, 1)
    if binding.method.name == "ListAuditEvents":
        # A filter that matches nothing, so the two calls' own events do not show (and a
        # Timestamp travels as an RFC 3339 query parameter).
        message.resource_id = str(uuid.uuid4())  # type: ignore[attr-defined]
        message.end_time.FromJsonString("2030-01-02T03:04:05.5Z")  # type: ignore[attr-defined]
    if binding.method.name.startswith("Update"):
        message.update_mask.paths.append("title" if binding.body == "dashboard" else "name")  # type: ignore[attr-defined]
    return message


def test_every_annotated_rpc_is_routed() -> None:
    router = Router(BINDINGS)
    annotated = {b.rpc for b in BINDINGS}
    assert len(annotated) >= 43 and len(BINDINGS) == len(annotated) + 2  # two additional bindings
    for binding in BINDINGS:
        message = _unknown_ids(binding)
        verb, path, _, _ = http_request(binding, message)
        found = router.route(verb, path)
        assert found is not None and found[0] == binding, (verb, path)


@pytest.mark.parametrize("binding", BINDINGS, ids=lambda b: f"{b.method.name}:{b.verb}:{b.template}")
def test_unknown_resources_answer_alike(
    binding: Binding, rest: httpx.Client, channel: grpc.Channel, auth: Any, facility: str
) -> None:
    md = auth("contract-admin", "admin", facility, permissions=("phi:read",))
    code, body = _same(rest, channel, binding, lambda: _unknown_ids(binding), md)
    if binding.variables:
        assert code != 0 and body["details"], binding.template
    # Anonymous callers are refused alike too (audit counts both).
    assert (
        _same(rest, channel, binding, lambda: _unknown_ids(binding), ())[0] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    )


def _binding(name: str) -> Binding:
    return next(b for b in BINDINGS if b.method.name == name)


def test_success_paths_answer_alike(rest: httpx.Client, channel: grpc.Channel, auth: Any, facility: str) -> None:
    md = auth("contract-editor", "admin", facility, permissions=("phi:read",))

    def grpc_call(name: str, message: Message) -> Any:
        binding = _binding(name)
        code, body = _grpc(channel, binding, message, md)
        assert code == 0, body
        return json_format.ParseDict(body, binding.response_class())

    query = grpc_call(
        "CreateQuery", q.CreateQueryRequest(query=q.Query(facility_id=facility, name="n", sql="SELECT 7 AS n"))
    )
    board = grpc_call(
        "CreateDashboard", d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Contract"))
    )
    widget = grpc_call("CreateWidget", w.CreateWidgetRequest(widget=w.Widget(
        dashboard_id=board.id, title="K", position=w.GridPosition(x=0, y=0, width=3, height=2),
        query=w.QueryBinding(query_id=query.id), kpi=w.KpiConfig(value_column="n"))))  # fmt: skip
    grpc_call("PublishDashboard", d.PublishDashboardRequest(id=board.id))
    grpc_call("GetWidgetData", w.GetWidgetDataRequest(widget_id=widget.id))  # cached: both reads are hits
    table: list[tuple[str, Callable[[], Message]]] = [
        ("CreateDashboard", lambda: d.CreateDashboardRequest(
            dashboard=d.Dashboard(facility_id=facility, title="Made", tags=["a", "b"]))),
        ("GetDashboard", lambda: d.GetDashboardRequest(id=board.id)),
        ("ListDashboards", lambda: d.ListDashboardsRequest(
            facility_id=facility, page_size=10, order_by="title", tags=["a"])),
        ("ListDashboardVersions", lambda: d.ListDashboardVersionsRequest(dashboard_id=board.id)),
        ("GetDashboardVersion", lambda: d.GetDashboardVersionRequest(dashboard_id=board.id, version=1)),
        ("GetQuery", lambda: q.GetQueryRequest(id=query.id)),
        ("ListQueries", lambda: q.ListQueriesRequest(
            name_contains="n", kind=q.QUERY_KIND_SQL, template=False, page_size=5)),
        ("ListQueryVersions", lambda: q.ListQueryVersionsRequest(query_id=query.id)),
        ("RunQuery", lambda: q.RunQueryRequest(id=query.id)),
        ("GetWidget", lambda: w.GetWidgetRequest(id=widget.id)),
        ("ListWidgets", lambda: w.ListWidgetsRequest(dashboard_id=board.id)),
        ("GetWidgetData", lambda: w.GetWidgetDataRequest(widget_id=widget.id)),
        ("BatchGetWidgetData", lambda: w.BatchGetWidgetDataRequest(
            requests=[w.GetWidgetDataRequest(widget_id=widget.id)])),
        ("ListShares", lambda: s.ListSharesRequest(dashboard_id=board.id)),
        ("ListPublicLinks", lambda: s.ListPublicLinksRequest(dashboard_id=board.id)),
        ("ExportDashboardDocument", lambda: d.ExportDashboardDocumentRequest(id=board.id)),
        ("ImportDashboard", lambda: d.ImportDashboardRequest(facility_id=facility, validate_only=True,
            title_conflict=d.TITLE_CONFLICT_POLICY_KEEP,
            document=grpc_call("ExportDashboardDocument", d.ExportDashboardDocumentRequest(id=board.id)))),
        ("CloneDashboard", lambda: d.CloneDashboardRequest(
            id=board.id, title="Cloned", title_conflict=d.TITLE_CONFLICT_POLICY_KEEP)),
        ("BatchCloneDashboards", lambda: d.BatchCloneDashboardsRequest(requests=[d.CloneDashboardRequest(
            id=board.id, title="Batch cloned", title_conflict=d.TITLE_CONFLICT_POLICY_KEEP)])),
        ("UpdateDashboard", lambda: d.UpdateDashboardRequest(
            dashboard=d.Dashboard(id=grpc_call("CreateDashboard", d.CreateDashboardRequest(
                dashboard=d.Dashboard(facility_id=facility, title="Old"))).id, title="New"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]))),
        ("DeleteDashboard", lambda: d.DeleteDashboardRequest(id=grpc_call("CreateDashboard", d.CreateDashboardRequest(
            dashboard=d.Dashboard(facility_id=facility, title="Doomed"))).id)),
    ]  # fmt: skip
    for name, make in table:
        code, body = _same(rest, channel, _binding(name), make, md)
        assert code == 0, (name, body)
