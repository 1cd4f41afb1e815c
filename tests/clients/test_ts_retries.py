"""The TypeScript SDK's retries, token refresh, error details, resumable watches, pages and
verified downloads, run as a Node process (tests/clients/node/scripted.ts) against real gRPC
servers scripted to fail on cue, the same servicers the Python client's tests use. Sleeps are
recorded by the SDK's `sleep` option, not slept, and jitter is pinned at its top."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2_grpc, export_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import widget_pb2 as w
from tests.client.scripted import ScriptedServer
from tests.client.test_client_refusals import RefusedWatch, Refusing
from tests.client.test_client_retry import (
    PAYLOAD,
    Dashboards,
    Downloads,
    Invalid,
    Jobs,
    TokenChecking,
    event,
)
from tests.clients.conftest import run_node

ADD_DASHBOARDS = dashboard_pb2_grpc.add_DashboardServiceServicer_to_server


def scenario(node: str, build: Path, name: str, *servicers: tuple[Any, Any]) -> dict[str, Any]:
    with ScriptedServer(*servicers) as server:
        done = run_node(node, build / "tests/clients/node/scripted.js", name, server.address, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_create_is_retried_with_one_request_id(node: str, ts_build: Path) -> None:
    servicer = Dashboards(failures=2)
    out = scenario(node, ts_build, "create", (ADD_DASHBOARDS, servicer))
    assert out["result"] == {"ok": "b-1"}
    ids = [request.request_id for _, request, _, _ in servicer.calls]
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0], "one logical call, one request id"
    assert out["sleeps"] == [100, 200], "exponential caps (jitter at its top)"
    assert all(meta.get("authorization") == "Bearer t" for _, _, meta, _ in servicer.calls)


def test_a_given_request_id_is_sent_as_it_is(node: str, ts_build: Path) -> None:
    servicer = Dashboards(failures=1)
    scenario(node, ts_build, "createWithId", (ADD_DASHBOARDS, servicer))
    assert [r.request_id for _, r, _, _ in servicer.calls] == ["5b0d3f4e-8d4c-4a8e-9a59-0d1f1f1f1f1f"] * 2


def test_an_update_is_never_retried(node: str, ts_build: Path) -> None:
    servicer = Dashboards(failures=1)
    out = scenario(node, ts_build, "update", (ADD_DASHBOARDS, servicer))
    assert out["result"]["error"]["code"] == "UNAVAILABLE" and len(servicer.calls) == 1 and out["sleeps"] == []


def test_an_update_refused_by_the_rate_limit_is_retried_after_the_advice(node: str, ts_build: Path) -> None:
    servicer = Refusing(refusals=2, reason="RATE_LIMITED", advice=0.5)
    out = scenario(node, ts_build, "updateRefused", (ADD_DASHBOARDS, servicer))
    assert out["result"] == {"ok": "once"} and servicer.applied == ["once"] and len(servicer.calls) == 3
    assert out["sleeps"] == [600, 700], "the advice, then the jitter above it"


def test_a_delete_refused_by_load_shedding_is_retried_within_max_attempts(node: str, ts_build: Path) -> None:
    servicer = Refusing(refusals=1, reason="SERVER_OVERLOADED", advice=0.05)
    out = scenario(node, ts_build, "deleteRefused", (ADD_DASHBOARDS, servicer))
    assert out["result"] == {"ok": "deleted"} and servicer.applied == ["b-1"] and out["sleeps"] == [150]
    always = Refusing(refusals=100, reason="SERVER_OVERLOADED", advice=0.05)
    out = scenario(node, ts_build, "deleteRefused", (ADD_DASHBOARDS, always))
    assert out["result"]["error"]["reason"] == "SERVER_OVERLOADED" and len(always.calls) == 4 and not always.applied


def test_other_resource_exhausted_errors_still_end_an_update(node: str, ts_build: Path) -> None:
    servicer = Refusing(refusals=1, reason="DATA_SOURCE_BUSY")
    out = scenario(node, ts_build, "updateRefused", (ADD_DASHBOARDS, servicer))
    assert out["result"]["error"]["reason"] == "DATA_SOURCE_BUSY" and len(servicer.calls) == 1 and out["sleeps"] == []


def test_a_stream_refused_before_its_first_message_is_opened_again(node: str, ts_build: Path) -> None:
    add = widget_pb2_grpc.add_WidgetServiceServicer_to_server
    refused = RefusedWatch(refusals=2)
    out = scenario(node, ts_build, "streamRefused", (add, refused))
    assert out["result"] == {"ok": ["1", "2"]} and refused.opened == 3 and out["sleeps"] == [350, 450]
    late = RefusedWatch(refusals=0, ending="refused-late")
    out = scenario(node, ts_build, "streamRefusedLate", (add, late))
    assert out["result"]["ok"]["seen"] == ["1"] and out["result"]["ok"]["error"]["reason"] == "RATE_LIMITED"
    assert late.opened == 1 and out["sleeps"] == []
    watched = RefusedWatch(refusals=1)
    out = scenario(node, ts_build, "watchRefused", (add, watched))
    # The refused watch is opened again by the stream itself, so follow sees no resumption.
    assert out["result"] == {"ok": {"final": "2", "resumes": 0}} and out["sleeps"] == [350]


def test_a_stale_etag_is_final_but_another_conflict_is_retried(node: str, ts_build: Path) -> None:
    stale = Dashboards(failures=1, code=grpc.StatusCode.ABORTED, reason="ETAG_MISMATCH")
    out = scenario(node, ts_build, "get", (ADD_DASHBOARDS, stale))
    assert out["result"]["error"]["reason"] == "ETAG_MISMATCH" and len(stale.calls) == 1
    conflict = Dashboards(failures=1, code=grpc.StatusCode.ABORTED, reason="CONCURRENT_UPDATE")
    out = scenario(node, ts_build, "get", (ADD_DASHBOARDS, conflict))
    assert out["result"] == {"ok": "b-9"} and len(conflict.calls) == 2


def test_the_servers_retry_info_is_a_floor_for_the_delay(node: str, ts_build: Path) -> None:
    servicer = Dashboards(failures=1, code=grpc.StatusCode.RESOURCE_EXHAUSTED, reason="DATA_SOURCE_BUSY")
    servicer.advice = 2.5
    out = scenario(node, ts_build, "get", (ADD_DASHBOARDS, servicer))
    assert out["result"] == {"ok": "b-9"} and out["sleeps"] == [2500]


def test_attempts_stop_at_max_attempts_with_the_last_error(node: str, ts_build: Path) -> None:
    servicer = Dashboards(failures=10)
    out = scenario(node, ts_build, "getThreeAttempts", (ADD_DASHBOARDS, servicer))
    error = out["result"]["error"]
    assert (error["code"], error["reason"], error["domain"]) == (
        "UNAVAILABLE",
        "DATABASE_UNAVAILABLE",
        "tessera.dashboard.v1",
    )
    assert len(servicer.calls) == 3 and out["sleeps"] == [100, 200]


def test_pages_follow_next_page_token(node: str, ts_build: Path) -> None:
    servicer = Dashboards()
    out = scenario(node, ts_build, "pages", (ADD_DASHBOARDS, servicer))
    assert out["result"]["ok"] == [f"b-{i}" for i in range(7)]
    assert [r.page_token for _, r, _, _ in servicer.calls] == ["", "3", "6"]


def test_an_expired_token_is_fetched_again_once(node: str, ts_build: Path) -> None:
    servicer = TokenChecking()
    out = scenario(node, ts_build, "refresh", (ADD_DASHBOARDS, servicer))
    assert out["result"]["ok"] == {"id": "x", "fetches": 2} and out["sleeps"] == [], "not a backoff retry"
    assert [m["authorization"] for _, _, m, _ in servicer.calls] == ["Bearer old", "Bearer new"]
    fixed = TokenChecking()
    out = scenario(node, ts_build, "staticExpired", (ADD_DASHBOARDS, fixed))
    assert out["result"]["error"]["reason"] == "TOKEN_EXPIRED" and len(fixed.calls) == 1


def test_errors_expose_error_info_and_field_violations(node: str, ts_build: Path) -> None:
    out = scenario(node, ts_build, "invalid", (ADD_DASHBOARDS, Invalid()))
    error = out["result"]["error"]
    assert error["code"] == "INVALID_ARGUMENT" and error["reason"] == "INVALID_ARGUMENT"
    assert error["metadata"] == {"correlation_id": "abc"}
    assert error["fieldViolations"] == [
        {"field": "dashboard.title", "description": "value is required"},
        {"field": "dashboard.tags[1]", "description": "bad pattern"},
    ]
    assert out["sleeps"] == []
    plain = scenario(node, ts_build, "notFound", (ADD_DASHBOARDS, Invalid()))["result"]["error"]
    assert (plain["code"], plain["reason"], plain["message"]) == ("NOT_FOUND", "", "no details at all")


def test_a_dropped_watch_resumes_after_the_last_revision_without_duplicates(node: str, ts_build: Path) -> None:
    heartbeat = w.WatchMaterializationJobResponse(heartbeat=c.Heartbeat(revision=2))
    servicer = Jobs(
        [
            ([event(1), event(2), heartbeat], "drop"),
            ([event(2), event(3), event(4, c.JOB_STATE_SUCCEEDED)], "end"),  # 2 again: a duplicate
        ]
    )
    out = scenario(node, ts_build, "watch", (widget_pb2_grpc.add_WidgetServiceServicer_to_server, servicer))
    assert servicer.since == [0, 2]
    assert out["result"]["ok"] == {
        "seen": ["1", "2", "3", "4"],
        "final": "4",
        "state": c.JOB_STATE_SUCCEEDED,
        "resumes": 1,
    }
    assert out["sleeps"] == [100]


def test_a_silent_watch_is_reopened(node: str, ts_build: Path) -> None:
    servicer = Jobs([([event(1)], "hang"), ([event(2, c.JOB_STATE_FAILED)], "end")])
    try:
        out = scenario(node, ts_build, "watchStalled", (widget_pb2_grpc.add_WidgetServiceServicer_to_server, servicer))
    finally:
        servicer.released.set()
    assert servicer.since == [0, 1]
    assert out["result"]["ok"] == {"final": "2", "state": c.JOB_STATE_FAILED, "resumes": 1}


def test_a_watch_of_a_missing_job_fails_at_once(node: str, ts_build: Path) -> None:
    servicer = Jobs([([], "missing")])
    out = scenario(node, ts_build, "watchMissing", (widget_pb2_grpc.add_WidgetServiceServicer_to_server, servicer))
    assert out["result"]["error"]["code"] == "NOT_FOUND" and servicer.since == [0] and out["sleeps"] == []


def test_a_dropped_download_resumes_at_its_offset_and_is_verified(node: str, ts_build: Path) -> None:
    servicer = Downloads(drop_after=3)
    out = scenario(node, ts_build, "download", (export_pb2_grpc.add_ExportServiceServicer_to_server, servicer))
    assert servicer.offsets == [0, 3072]
    assert out["result"]["ok"] == {
        "size": len(PAYLOAD),
        "sha256": hashlib.sha256(PAYLOAD).hexdigest(),
        "filename": "b.pdf",
        "resumes": 1,
        "lastProgress": len(PAYLOAD),
    }


@pytest.mark.parametrize(
    ("servicer", "what"),
    [(Downloads(sha256="0" * 64), "sha256"), (Downloads(size=len(PAYLOAD) + 1), "size"), (Downloads(size=100), "size")],
)
def test_a_download_that_does_not_match_is_refused(node: str, ts_build: Path, servicer: Downloads, what: str) -> None:
    out = scenario(node, ts_build, "download", (export_pb2_grpc.add_ExportServiceServicer_to_server, servicer))
    assert out["result"]["error"] == {"verification": what}


class Positions(Dashboards):
    """Reports a write position in the trailers of some answers (a lower one after a higher one,
    as another server process may), and records the one each call carried."""

    REPORTED: ClassVar[dict[str, str]] = {"w1": "0/16B3748", "w2": "1/0000000A", "w3": "0/FFFFFFFF"}

    def GetDashboard(self, request: Any, context: grpc.ServicerContext) -> Any:
        answer = super().GetDashboard(request, context)
        if request.id in self.REPORTED:
            context.set_trailing_metadata((("x-tessera-lsn", self.REPORTED[request.id]),))
        return answer


def test_the_highest_write_position_is_sent_back(node: str, ts_build: Path) -> None:
    servicer = Positions()
    result = scenario(node, ts_build, "lsn", (ADD_DASHBOARDS, servicer))
    assert result["result"] == {"ok": "ok"}
    carried = [(call[1].id, call[2].get("x-tessera-lsn")) for call in servicer.calls]
    assert carried == [("w1", None), ("w2", "0/16B3748"), ("w3", "1/0000000A"), ("r1", "1/0000000A")]


def test_several_addresses_are_balanced_and_a_dead_one_costs_a_retry_at_most(node: str, ts_build: Path) -> None:
    first, second = Dashboards(), Dashboards()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening: refused
        with ScriptedServer((ADD_DASHBOARDS, first)) as a, ScriptedServer((ADD_DASHBOARDS, second)) as b:
            done = run_node(
                node, ts_build / "tests/clients/node/scripted.js", "balanced", f"{dead},{a.address},{b.address}"
            )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["result"] == {"ok": [f"b-{i}" for i in range(12)]}
    # Both live servers took turns; the dead address (tried first) cost one retry, no more: it left
    # the rotation.
    assert len(first.calls) + len(second.calls) == 12
    assert abs(len(first.calls) - len(second.calls)) <= 1
    assert len(result["sleeps"]) == 1
