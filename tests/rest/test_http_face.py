"""The HTTP face's own behaviour against the session's real server: refusals of bad HTTP input,
correlation ids, audit with the transport, h2c, CORS, gzip and watches as Server-Sent Events."""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import query_pb2 as q
from server.db.migrate import sync_url
from tests.harness.server import ServerHandle

BOARDS = "/api/v1/dashboard/dashboards"


def _bearer(md: Any) -> dict[str, str]:
    return dict(md)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    return body


def _violations(body: dict[str, Any]) -> list[str]:
    return [v["field"] for d_ in body["details"] if d_["@type"].endswith("BadRequest") for v in d_["fieldViolations"]]


def test_bad_http_input_gets_a_clear_4xx(rest: httpx.Client, auth: Any, facility: str) -> None:
    headers = _bearer(auth("face-admin", "admin", facility))
    malformed = rest.post(BOARDS, content=b'{"title": ', headers={**headers, "content-type": "application/json"})
    assert malformed.status_code == 400 and _violations(_error(malformed)) == ["body"]
    wrong_type = rest.post(BOARDS, content=b"title=x", headers={**headers, "content-type": "text/plain"})
    assert wrong_type.status_code == 415 and "application/json" in _error(wrong_type)["message"]
    huge = rest.post(
        BOARDS, content=b" " * (16 * 1024 * 1024 + 1), headers={**headers, "content-type": "application/json"}
    )
    assert huge.status_code == 413 and _error(huge)["code"] == 8
    unknown_route = rest.get("/api/v1/dashboard/nothing-here", headers=headers)
    assert unknown_route.status_code == 404 and "no operation" in _error(unknown_route)["message"]
    wrong_verb = rest.patch(BOARDS, headers=headers)
    assert wrong_verb.status_code == 405 and "GET" in wrong_verb.headers["allow"]
    unknown_param = rest.get(BOARDS, params={"colour": "red"}, headers=headers)
    assert unknown_param.status_code == 400 and _violations(_error(unknown_param)) == ["colour"]
    unknown_field = rest.post(BOARDS, json={"title": "t", "colour": "red"}, headers=headers)
    assert unknown_field.status_code == 400 and _violations(_error(unknown_field)) == ["dashboard.colour"]
    bad_number = rest.get(BOARDS, params={"pageSize": "many"}, headers=headers)
    assert bad_number.status_code == 400 and _violations(_error(bad_number)) == ["page_size"]
    out_of_range = rest.get(BOARDS, params={"pageSize": "5000"}, headers=headers)
    assert out_of_range.status_code == 400 and _violations(_error(out_of_range)) == ["page_size"]


def test_both_json_spellings_in_and_proto3_json_out(rest: httpx.Client, auth: Any, facility: str) -> None:
    headers = _bearer(auth("face-editor", "editor", facility))
    camel = rest.post(BOARDS, json={"facilityId": facility, "title": "Camel"}, headers=headers)
    snake = rest.post(BOARDS, json={"facility_id": facility, "title": "Snake"}, headers=headers)
    assert camel.status_code == snake.status_code == 200, camel.text
    body = camel.json()
    assert body["facilityId"] == facility and "facility_id" not in body and isinstance(body["version"], str | int)
    listed = rest.get(BOARDS, params={"facility_id": facility, "order_by": "title", "page_size": "1"}, headers=headers)
    assert [b["title"] for b in listed.json()["dashboards"]] == ["Camel"] and listed.json()["nextPageToken"]
    updated = rest.put(f"{BOARDS}/{body['id']}", params={"updateMask": "title,description"},
                       json={"title": "Renamed", "description": "d"}, headers=headers)  # fmt: skip
    assert updated.status_code == 200 and updated.json()["title"] == "Renamed", updated.text


def test_correlation_id_and_audit_transport(
    rest: httpx.Client, server: ServerHandle, migrated: str, auth: Any, facility: str
) -> None:
    cid = f"face-{uuid.uuid4().hex}"
    headers = {**_bearer(auth("face-auditor", "admin", facility)), "x-correlation-id": cid}
    created = rest.post(BOARDS, json={"facilityId": facility, "title": "Audited"}, headers=headers)
    assert created.status_code == 200 and created.headers["x-correlation-id"] == cid
    missing = rest.get(f"{BOARDS}/{uuid.uuid4()}", headers={**headers, "x-correlation-id": cid + "-b"})
    assert missing.status_code == 404 and missing.headers["x-correlation-id"] == cid + "-b"
    anonymous = rest.get(BOARDS)
    assert anonymous.status_code == 401 and anonymous.headers["x-correlation-id"]
    server.run(server.running.app.audit.flush())
    url = sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT correlation_id, method, outcome, details->>'transport', resource_id FROM audit_log"
            " WHERE correlation_id IN (%s, %s) ORDER BY at",
            (cid, cid + "-b"),
        ).fetchall()
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (cid, "dashboard.v1.DashboardService/CreateDashboard", "http"),
        (cid + "-b", "dashboard.v1.DashboardService/GetDashboard", "http"),
    ]
    assert rows[0][4] == created.json()["id"]


def test_h2c_prior_knowledge_and_upgrade(http_base: str, auth: Any, facility: str) -> None:
    token = dict(auth("face-h2", "viewer", facility))["authorization"]
    for flag in ("--http2-prior-knowledge", "--http2"):
        out = subprocess.run(
            ["curl", "-sS", flag, "-H", f"authorization: {token}", "-w", "\n%{http_version} %{http_code}",
             f"{http_base}{BOARDS}?facilityId={facility}"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        body, _, status = out.rpartition("\n")
        assert status == "2 200" and json.loads(body)["dashboards"] == [], (flag, out)


def test_cors_and_gzip(rest: httpx.Client, channel: Any, queries: Any, auth: Any, facility: str) -> None:
    headers = _bearer(auth("face-cors", "admin", facility))
    asking = {
        "origin": "http://allowed.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    preflight = rest.options(BOARDS, headers=asking)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://allowed.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    refused = rest.options(BOARDS, headers={"origin": "http://evil.example", "access-control-request-method": "GET"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    listed = rest.get(BOARDS, headers={**headers, "origin": "http://allowed.example"})
    assert listed.headers["access-control-allow-origin"] == "http://allowed.example"
    many = q.Query(facility_id=facility, name="many", sql="SELECT n FROM generate_series(1, 2000) n")
    query = queries.CreateQuery(q.CreateQueryRequest(query=many), metadata=tuple(headers.items()))
    raw = httpx.post(f"{rest.base_url}/api/v1/dashboard/queries/{query.id}:run", json={},
                     headers={**headers, "accept-encoding": "gzip"})  # fmt: skip
    assert raw.headers["content-encoding"] == "gzip"
    assert int(raw.headers["content-length"]) < len(raw.content) / 2  # the wire size; httpx decoded it
    assert raw.json()["frame"]["rowCount"] == "2000"


@pytest.mark.parametrize("accept", ["text/event-stream", "application/json"])
def test_watch_as_events_resumes_without_gap_or_repeat(
    rest: httpx.Client, dashboards: Any, exports: Any, auth: Any, facility: str, accept: str
) -> None:
    md = auth("face-watch", "admin", facility)
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="W")), metadata=md
    )
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=md)
    job = exports.CreateExport(e.CreateExportRequest(dashboard_id=board.id, format=e.EXPORT_FORMAT_PDF), metadata=md)
    exports.CancelExport(e.CancelExportRequest(id=job.id), metadata=md)  # nobody runs it: cancel ends the watch
    path = f"/api/v1/dashboard/exports/{job.id}:watch"

    def events(extra: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
        response = rest.get(path, headers={**dict(md), "accept": accept, **extra})
        assert response.status_code == 200 and response.headers["content-type"].startswith(accept)
        if accept == "application/json":
            lines = [json.loads(x)["result"] for x in response.text.splitlines() if x]
            return [(line["export"]["revision"], line) for line in lines if "export" in line]
        found = []
        for block in response.text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if fields.get("event") == "export":
                data = json.loads(fields["data"])
                assert fields["id"] == str(data["export"]["revision"])
                found.append((fields["id"], data))
        return found

    everything = events({})
    revisions = [int(r) for r, _ in everything]
    assert revisions and revisions == sorted(set(revisions))
    assert everything[-1][1]["export"]["state"] == "JOB_STATE_CANCELLED"
    resume = {"last-event-id": str(revisions[0])} if accept == "text/event-stream" else {}
    if accept == "application/json":
        path += f"?sinceRevision={revisions[0]}"
    resumed = [int(r) for r, _ in events(resume)]
    assert resumed == revisions[1:] or (len(revisions) == 1 and resumed in ([], revisions)), (revisions, resumed)


def test_hostile_http_input_found_by_the_fuzzer_gets_a_400(
    rest: httpx.Client, dashboards: Any, exports: Any, auth: Any, facility: str
) -> None:
    """Each of these answered 500 before (tests/fuzz/test_fuzz_http.py found them)."""
    md = auth("face-hostile", "admin", facility)
    headers = {**_bearer(md), "content-type": "application/json"}
    for nested in (b"[" * 20_000 + b"]" * 20_000, b'{"a":' * 101 + b"1" + b"}" * 101):
        deep = rest.post(BOARDS, content=nested, headers=headers)
        assert deep.status_code == 400 and _violations(_error(deep)) == ["body"], deep.text
        assert "nested deeper" in _error(deep)["message"]
    board = dashboards.CreateDashboard(
        d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="H")), metadata=md
    )
    dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=md)
    job = exports.CreateExport(e.CreateExportRequest(dashboard_id=board.id, format=e.EXPORT_FORMAT_PDF), metadata=md)
    past = "99999999999999999999999"
    watch = rest.get(f"/api/v1/dashboard/exports/{job.id}:watch", headers={**dict(md), "last-event-id": past})
    assert watch.status_code == 400 and _violations(_error(watch)) == ["Last-Event-ID"], watch.text
    ranged = rest.get(f"/api/v1/dashboard/exports/{job.id}:download", headers={**dict(md), "range": f"bytes={past}-"})
    assert ranged.status_code == 400 and _violations(_error(ranged)) == ["Range"], ranged.text


def test_http_refusals_are_audited_and_counted(
    rest: httpx.Client, server: ServerHandle, migrated: str, auth: Any, facility: str
) -> None:
    """What the HTTP layer refuses leaves the same trace as a refused gRPC call: an audit event
    with the transport, a line in the metrics."""
    registry = server.running.app.metrics.registry

    def counted(method: str) -> float:
        labels = {"method": method, "transport": "http"}
        return registry.get_sample_value("tessera_malformed_requests_total", labels) or 0.0

    create = "/dashboard.v1.DashboardService/CreateDashboard"
    before_create, before_unrouted = counted(create), counted("(unrouted)")
    cid = f"refused-{uuid.uuid4().hex}"
    headers = {**_bearer(auth("face-refused", "admin", facility)), "content-type": "application/json"}
    malformed = rest.post(BOARDS, content=b'{"title": ', headers={**headers, "x-correlation-id": cid + "-json"})
    wrong_type = rest.post(BOARDS, content=b"x", headers={**headers, "content-type": "text/plain",
                                                          "x-correlation-id": cid + "-type"})  # fmt: skip
    # Refusals of unidentified callers are aggregated per source: a source of this test's own
    # (a loopback address nobody else uses) makes these the first of theirs, recorded at once.
    source = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=rest.base_url, transport=transport, timeout=30) as alone:
        anonymous = alone.post(BOARDS, content=b"{", headers={"content-type": "application/json",
                                                              "x-correlation-id": cid + "-anon"})  # fmt: skip
        nowhere = alone.get("/api/v1/dashboard/nothing-here", headers={"x-correlation-id": cid + "-route"})
    assert (malformed.status_code, wrong_type.status_code, anonymous.status_code, nowhere.status_code) == (
        400, 415, 401, 404,
    )  # fmt: skip
    assert _violations(_error(wrong_type)) == ["Content-Type"]
    assert counted(create) - before_create == 2  # the anonymous one is refused by authentication first
    assert counted("(unrouted)") - before_unrouted == 1
    server.run(server.running.app.audit.flush())
    url = sync_url(migrated).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT correlation_id, method, outcome, details->>'transport', details->>'reason' FROM audit_log"
            " WHERE correlation_id LIKE %s ORDER BY correlation_id",
            (cid + "-%",),
        ).fetchall()
    error, denied = 3, 2  # share_pb2.AUDIT_OUTCOME_ERROR, AUDIT_OUTCOME_DENIED
    assert rows == [
        (cid + "-anon", "dashboard.v1.DashboardService/CreateDashboard", denied, "http", "MISSING_CREDENTIALS"),
        (cid + "-json", "dashboard.v1.DashboardService/CreateDashboard", error, "http", "MALFORMED_JSON"),
        (cid + "-route", "http/GET", denied, "http", "UNKNOWN_ROUTE"),
        (cid + "-type", "dashboard.v1.DashboardService/CreateDashboard", error, "http", "UNSUPPORTED_MEDIA_TYPE"),
    ], rows
