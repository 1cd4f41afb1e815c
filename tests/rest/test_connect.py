"""The browser protocols on the session server's HTTP port: the Connect protocol (unary in proto and
JSON, server streams with the end-of-stream error, error details, deadlines) and gRPC-Web, with
CORS, authentication refusals and the audit row's transport. The same calls over gRPC and REST
are compared in test_contract.py."""

from __future__ import annotations

import base64
import gzip
import json
import time
import uuid
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from server.db.migrate import sync_url
from server.http.bindings import SERVICES
from tests.harness.server import ServerHandle
from tests.rest.connect_call import connect_stream, connect_unary, grpc_web
from tests.rest.rest_call import normalise

CREATE = "/dashboard.v1.DashboardService/CreateDashboard"
GET = "/dashboard.v1.DashboardService/GetDashboard"
LIST = "/dashboard.v1.DashboardService/ListDashboards"
WATCH = "/dashboard.v1.ExportService/WatchExport"
ORIGIN = "http://allowed.example"  # the session settings' CORS origin
RPCS = {f"/{service.full_name}/{m.name}": bool(m.server_streaming) for service in SERVICES for m in service.methods}


def _details(status: status_pb2.Status) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                unpacked = kind()
                detail.Unpack(unpacked)
                found[kind.DESCRIPTOR.name] = unpacked
    return found


def _grpc_status(error: grpc.RpcError) -> status_pb2.Status:
    rich = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]  # type: ignore[attr-defined]
    return status_pb2.Status.FromString(rich)


def _status_dict(status: status_pb2.Status) -> Any:
    return normalise(json_format.MessageToDict(status))


def test_unary_in_proto_and_json(rest: httpx.Client, dashboards: Any, auth: Any, facility: str) -> None:
    headers = dict(auth("connect-admin", "admin", facility))
    made = d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Over Connect", tags=["a"]))
    code, created, raw = connect_unary(rest, CREATE, made, d.Dashboard, headers=headers)
    assert code == 0 and raw.headers["x-correlation-id"], created
    assert isinstance(created, d.Dashboard) and created.title == "Over Connect" and created.version == 1
    code, fetched, raw = connect_unary(rest, GET, d.GetDashboardRequest(id=created.id), d.Dashboard,
                                      json_codec=True, headers=headers)  # fmt: skip
    assert code == 0 and fetched == created
    assert raw.json()["facilityId"] == facility  # proto3 JSON, lowerCamelCase
    # The same read over gRPC answers the same message.
    assert dashboards.GetDashboard(d.GetDashboardRequest(id=created.id), metadata=tuple(headers.items())) == fetched


def test_errors_carry_the_details_the_grpc_call_carries(
    rest: httpx.Client, dashboards: Any, auth: Any, facility: str
) -> None:
    headers = dict(auth("connect-admin", "admin", facility))
    bad = d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="x" * 201, tags=["Not A Tag"]))
    with pytest.raises(grpc.RpcError) as over_grpc:
        dashboards.CreateDashboard(bad, metadata=tuple(headers.items()))
    expected = _status_dict(_grpc_status(over_grpc.value))
    for json_codec in (False, True):
        code, status, raw = connect_unary(rest, CREATE, bad, d.Dashboard, json_codec=json_codec, headers=headers)
        assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and raw.status_code == 400
        assert raw.json()["code"] == "invalid_argument"
        assert isinstance(status, status_pb2.Status) and _status_dict(status) == expected
        details = _details(status)
        assert details["ErrorInfo"].reason and details["ErrorInfo"].domain == "tessera.dashboard.v1"
        fields = {v.field for v in details["BadRequest"].field_violations}
        assert {"dashboard.title", "dashboard.tags[0]"} <= fields
    # An unknown JSON field is refused naming it, as the REST face refuses it.
    unknown = rest.post(CREATE, content=b'{"dashboard": {"title": "t", "colour": "red"}}',
                        headers={**headers, "content-type": "application/json"})  # fmt: skip
    assert unknown.status_code == 400 and unknown.json()["code"] == "invalid_argument"
    assert "colour" in unknown.json()["message"]
    # Bytes that are not the request message reach the pipeline's validation step.
    garbage = rest.post(CREATE, content=b"\xff\xff\xff", headers={**headers, "content-type": "application/proto"})
    assert garbage.status_code == 400
    reason = _details(connect_error_status(garbage))["ErrorInfo"].reason
    assert reason == "MALFORMED_REQUEST"
    # Protocol refusals: the wrong media type (415, what is accepted), a GET (405).
    wrong = rest.post(CREATE, content=b"x", headers={**headers, "content-type": "text/plain"})
    assert wrong.status_code == 415 and "application/proto" in wrong.headers["accept-post"]
    assert wrong.json()["code"] == "unimplemented"
    assert _details(connect_error_status(wrong))["ErrorInfo"].reason == "UNSUPPORTED_MEDIA_TYPE"
    assert rest.get(CREATE, headers=headers).status_code == 405
    # Too large, sent as it is or inflating past the limit from a small gzip body.
    limit = 16 * 1024 * 1024  # the session's max_message_bytes
    proto = {**headers, "content-type": "application/proto"}
    huge = rest.post(CREATE, content=b"\x00" * (limit + 1), headers=proto)
    bomb = rest.post(
        CREATE, content=gzip.compress(b"\x00" * (limit + 1)), headers={**proto, "content-encoding": "gzip"}
    )
    for refused in (huge, bomb):
        assert refused.status_code == 413 and refused.json()["code"] == "resource_exhausted"
        assert _details(connect_error_status(refused))["ErrorInfo"].reason == "BODY_TOO_LARGE"
    # A gzip body is read like any other: the validation step names the same fields.
    zipped = rest.post(CREATE, content=gzip.compress(bad.SerializeToString()),
                       headers={**proto, "content-encoding": "gzip"})  # fmt: skip
    assert zipped.status_code == 400
    assert "dashboard.title" in {v.field for v in _details(connect_error_status(zipped))["BadRequest"].field_violations}
    version = rest.post(LIST, content=b"", headers={**headers, "content-type": "application/proto",
                                                     "connect-protocol-version": "2"})  # fmt: skip
    assert version.status_code == 400 and "connect-protocol-version" in version.json()["message"]


def connect_error_status(raw: httpx.Response) -> status_pb2.Status:
    from tests.rest.connect_call import status_of_error

    return status_of_error(raw.json())


def test_authentication_refusal_and_audit_transport(
    rest: httpx.Client, server: ServerHandle, migrated: str, auth: Any, facility: str
) -> None:
    registry = server.running.app.metrics.registry

    def count(method: str, code: str) -> float:
        found = registry.get_sample_value("tessera_rpc_duration_seconds_count", {"method": method, "code": code})
        return found or 0.0

    before = {name: count(*name) for name in ((LIST, "UNAUTHENTICATED"), (CREATE, "OK"), (GET, "OK"))}
    anonymous = rest.post(LIST, content=b"", headers={"content-type": "application/proto"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
    assert _details(connect_error_status(anonymous))["ErrorInfo"].reason
    headers = dict(auth("connect-auditor", "admin", facility))
    cid = f"connect-{uuid.uuid4().hex}"
    made = d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Audited"))
    code, created, raw = connect_unary(rest, CREATE, made, d.Dashboard, headers={**headers, "x-correlation-id": cid})
    assert code == 0 and raw.headers["x-correlation-id"] == cid
    assert isinstance(created, d.Dashboard)
    _, status = grpc_web(rest, GET, d.GetDashboardRequest(id=created.id), d.Dashboard,
                         headers={**headers, "x-correlation-id": cid + "-web"})  # fmt: skip
    assert status.code == 0
    # The pipeline ran once per call: one observation each in the rpc metrics, one audit row each.
    assert {name: count(*name) - value for name, value in before.items()} == dict.fromkeys(before, 1.0)
    server.run(server.running.app.audit.flush())
    url = sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT correlation_id, method, details->>'transport', resource_id FROM audit_log"
            " WHERE correlation_id IN (%s, %s) ORDER BY at",
            (cid, cid + "-web"),
        ).fetchall()
    assert rows == [
        (cid, "dashboard.v1.DashboardService/CreateDashboard", "connect", created.id),
        (cid + "-web", "dashboard.v1.DashboardService/GetDashboard", "grpc-web", created.id),
    ]


def _queued_export(dashboards: Any, exports: Any, md: Any, facility: str) -> e.ExportJob:
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="W")), metadata=md
    )
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=md)
    job: e.ExportJob = exports.CreateExport(
        e.CreateExportRequest(dashboard_id=board.id, format=e.EXPORT_FORMAT_PDF), metadata=md
    )
    return job


@pytest.mark.parametrize("json_codec", [False, True], ids=["proto", "json"])
def test_streams_resume_and_end_with_their_error(
    rest: httpx.Client, dashboards: Any, exports: Any, auth: Any, facility: str, json_codec: bool
) -> None:
    md = auth("connect-watch", "admin", facility)
    headers = dict(md)
    job = _queued_export(dashboards, exports, md, facility)
    exports.CancelExport(e.CancelExportRequest(id=job.id), metadata=md)  # nobody runs it: cancel ends the watch
    items, error, _ = connect_stream(rest, WATCH, e.WatchExportRequest(id=job.id), e.WatchExportResponse,
                                     json_codec=json_codec, headers=headers)  # fmt: skip
    assert error is None
    revisions = [item.export.revision for item in items if item.WhichOneof("event") == "export"]  # type: ignore[attr-defined]
    assert revisions and revisions == sorted(set(revisions))
    assert items[-1].export.state == c.JOB_STATE_CANCELLED  # type: ignore[attr-defined]
    # Resumed after the first revision it saw: the rest, no gap and no repeat (as over gRPC).
    resumed, error, _ = connect_stream(rest, WATCH, e.WatchExportRequest(id=job.id, since_revision=revisions[0]),
                                       e.WatchExportResponse, json_codec=json_codec, headers=headers)  # fmt: skip
    again = [item.export.revision for item in resumed if item.WhichOneof("event") == "export"]  # type: ignore[attr-defined]
    assert error is None and again == revisions[1:]
    # A watch that fails answers 200 and carries the status, details included, at the end.
    items, error, _ = connect_stream(rest, WATCH, e.WatchExportRequest(id=str(uuid.uuid4())),
                                     e.WatchExportResponse, json_codec=json_codec, headers=headers)  # fmt: skip
    assert items == [] and error is not None and error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert _details(error)["ErrorInfo"].reason


def test_deadlines_from_the_timeout_headers(
    rest: httpx.Client, dashboards: Any, exports: Any, auth: Any, facility: str
) -> None:
    md = auth("connect-deadline", "admin", facility)
    headers = dict(md)
    job = _queued_export(dashboards, exports, md, facility)  # the session has no worker: it stays queued
    try:
        started = time.monotonic()
        items, error, _ = connect_stream(rest, WATCH, e.WatchExportRequest(id=job.id), e.WatchExportResponse,
                                         headers={**headers, "connect-timeout-ms": "400"})  # fmt: skip
        assert error is not None and error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        assert _details(error)["ErrorInfo"].reason == "DEADLINE_EXCEEDED"
        assert items and time.monotonic() - started < 5
        messages, status = grpc_web(rest, WATCH, e.WatchExportRequest(id=job.id), e.WatchExportResponse,
                                    headers={**headers, "grpc-timeout": "400m"})  # fmt: skip
        assert status.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0] and messages
    finally:
        exports.CancelExport(e.CancelExportRequest(id=job.id), metadata=md)
    bad = rest.post(LIST, content=b"", headers={**headers, "content-type": "application/proto",
                                                 "connect-timeout-ms": "soon"})  # fmt: skip
    assert bad.status_code == 400 and "connect-timeout-ms" in bad.json()["message"]


def test_grpc_web_binary_and_text(rest: httpx.Client, dashboards: Any, auth: Any, facility: str) -> None:
    headers = dict(auth("connect-web", "admin", facility))
    dashboards.CreateDashboard(d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Web")),
                               metadata=tuple(headers.items()))  # fmt: skip
    for text in (False, True):
        listed, status = grpc_web(rest, LIST, d.ListDashboardsRequest(facility_id=facility),
                                  d.ListDashboardsResponse, text=text, headers=headers)  # fmt: skip
        assert status.code == 0 and [b.title for b in listed[0].dashboards] == ["Web"]  # type: ignore[attr-defined]
        bad = d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="x" * 201))
        none, status = grpc_web(rest, CREATE, bad, d.Dashboard, text=text, headers=headers)
        assert none == [] and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "dashboard.title" in {v.field for v in _details(status)["BadRequest"].field_violations}


def test_cors_for_the_browser_protocols(rest: httpx.Client, auth: Any, facility: str) -> None:
    asked = "content-type, connect-protocol-version, connect-timeout-ms, authorization, x-grpc-web, x-user-agent"
    preflight = rest.options(LIST, headers={"origin": ORIGIN, "access-control-request-method": "POST",
                                            "access-control-request-headers": asked})  # fmt: skip
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in asked.split(",")} | {"grpc-timeout", "x-tessera-link", "x-correlation-id"} <= allowed
    exposed = {h.strip() for h in preflight.headers["access-control-expose-headers"].split(",")}
    assert {"grpc-status", "grpc-message", "grpc-status-details-bin", "x-correlation-id"} <= exposed
    stranger = rest.options(LIST, headers={"origin": "http://evil.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in stranger.headers
    headers = dict(auth("connect-cors", "viewer", facility))
    for origin, answered in ((ORIGIN, True), ("http://evil.example", False)):
        code, _, raw = connect_unary(rest, LIST, d.ListDashboardsRequest(facility_id=facility),
                                     d.ListDashboardsResponse, headers={**headers, "origin": origin})  # fmt: skip
        assert code == 0 and ("access-control-allow-origin" in raw.headers) is answered


def test_public_link_over_connect(rest: httpx.Client, dashboards: Any, shares: Any, auth: Any, facility: str) -> None:
    md = auth("connect-linker", "admin", facility)
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Linked")), metadata=md
    )
    other = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="Not linked")), metadata=md
    )
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=md)
    link = shares.CreatePublicLink(s.CreatePublicLinkRequest(dashboard_id=board.id), metadata=md)
    headers = {"x-tessera-link": link.token}
    code, shown, _ = connect_unary(rest, GET, d.GetDashboardRequest(id=board.id), d.Dashboard, headers=headers)
    assert code == 0 and isinstance(shown, d.Dashboard) and shown.title == "Linked"
    # Anything else: refused exactly as over gRPC.
    with pytest.raises(grpc.RpcError) as over_grpc:
        dashboards.GetDashboard(d.GetDashboardRequest(id=other.id), metadata=tuple(headers.items()))
    code, status, _ = connect_unary(rest, GET, d.GetDashboardRequest(id=other.id), d.Dashboard, headers=headers)
    assert code == over_grpc.value.code().value[0] != 0  # type: ignore[attr-defined]
    assert isinstance(status, status_pb2.Status)
    assert _status_dict(status) == _status_dict(_grpc_status(over_grpc.value))


@pytest.mark.parametrize("rpc", sorted(RPCS), ids=lambda path: path.rsplit("/", 1)[1])
def test_hostile_bytes_are_refused_naming_the_problem(rest: httpx.Client, auth: Any, facility: str, rpc: str) -> None:
    """Every rpc, every framing: bytes that are not the request answer INVALID_ARGUMENT with
    ErrorInfo, never INTERNAL or a 5xx."""
    headers = dict(auth("connect-hostile", "admin", facility))
    streaming = RPCS[rpc]
    bodies = [
        ("application/connect+proto" if streaming else "application/proto", b"\xff" * 7 if streaming else b"\xff\xff"),
        ("application/connect+json" if streaming else "application/json", b'{"nope": [1, 2'),
        ("application/connect+json" if streaming else "application/json", b"[1, 2]"),
        ("application/grpc-web+proto", b"\x00\x00\x00\x00\x09\xff"),
        ("application/grpc-web-text", b"!!not base64!!"),
    ]
    for kind, body in bodies:
        raw = rest.post(rpc, content=body, headers={**headers, "content-type": kind})
        if kind in ("application/proto", "application/json"):
            assert raw.status_code == 400, (kind, raw.text)
            status = connect_error_status(raw)
        elif kind.startswith("application/connect"):
            assert raw.status_code == 200
            end = raw.content[5:]
            assert raw.content[0] == 0x02, (kind, raw.content[:40])
            from tests.rest.connect_call import status_of_error

            status = status_of_error(json.loads(end)["error"])
        else:
            assert raw.status_code == 200, (kind, raw.text)
            _, status = _grpc_web_status(raw, text=kind.endswith("text"))
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], (kind, status)
        assert status.message and _details(status)["ErrorInfo"].reason, (kind, status)


def _grpc_web_status(raw: httpx.Response, *, text: bool) -> tuple[list[bytes], status_pb2.Status]:
    from tests.rest.connect_call import frames

    content = base64.b64decode(raw.content) if text else raw.content
    found = frames(content)
    assert found[-1][0] == 0x80
    trailers = dict(line.split(": ", 1) for line in found[-1][1].decode().split("\r\n") if line)
    value = trailers["grpc-status-details-bin"]
    return [data for _, data in found[:-1]], status_pb2.Status.FromString(
        base64.b64decode(value + "=" * (-len(value) % 4))
    )


def test_a_unary_deadline_ends_a_slow_call(rest: httpx.Client, queries: Any, auth: Any, facility: str) -> None:
    md = auth("connect-slow", "admin", facility)
    slow = q.Query(facility_id=facility, name="slow", sql="SELECT count(*) AS n FROM generate_series(1, 200000000)")
    query = queries.CreateQuery(q.CreateQueryRequest(query=slow), metadata=md)
    started = time.monotonic()
    run = "/dashboard.v1.QueryService/RunQuery"
    code, status, raw = connect_unary(rest, run, q.RunQueryRequest(id=query.id), q.RunQueryResponse,
                                      headers={**dict(md), "connect-timeout-ms": "300"})  # fmt: skip
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0] and raw.status_code == 504, raw.text
    assert isinstance(status, status_pb2.Status) and _details(status)["ErrorInfo"].reason == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 5


def test_large_unary_answers_are_gzipped_when_asked(rest: httpx.Client, queries: Any, auth: Any, facility: str) -> None:
    md = auth("connect-gzip", "admin", facility)
    many = q.Query(facility_id=facility, name="many", sql="SELECT n FROM generate_series(1, 2000) n")
    query = queries.CreateQuery(q.CreateQueryRequest(query=many), metadata=md)
    run = "/dashboard.v1.QueryService/RunQuery"
    for asked, json_codec in (("gzip, deflate, br", False), ("gzip", True), ("identity", False)):
        headers = {**dict(md), "accept-encoding": asked}
        code, answer, raw = connect_unary(rest, run, q.RunQueryRequest(id=query.id), q.RunQueryResponse,
                                          json_codec=json_codec, headers=headers)  # fmt: skip
        assert code == 0 and isinstance(answer, q.RunQueryResponse) and answer.frame.row_count == 2000
        wire_size = int(raw.headers["content-length"])
        if asked == "identity":
            assert "content-encoding" not in raw.headers and wire_size == len(raw.content)
        else:
            assert raw.headers["content-encoding"] == "gzip" and wire_size < len(raw.content)  # httpx decoded it
