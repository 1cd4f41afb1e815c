"""Sends fuzzed requests to a running server as raw bytes and judges the answers.

A request may be refused with any status a client can act on; what it must never get is
INTERNAL or UNKNOWN (a bug, or an input the server did not expect), DATA_LOSS, or a unary call
that runs past its deadline. Every answer is counted by status code for the report.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dashboard.v1 import (
    alert_pb2,
    dashboard_pb2,
    export_pb2,
    query_pb2,
    report_pb2,
    search_pb2,
    share_pb2,
    widget_pb2,
)
from server.health import AUDIT_ENTRY
from tests.harness.server import ServerHandle

Metadata = tuple[tuple[str, str], ...]

SERVICES = tuple(
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (dashboard_pb2, "DashboardService"),
        (widget_pb2, "WidgetService"),
        (query_pb2, "QueryService"),
        (export_pb2, "ExportService"),
        (share_pb2, "ShareService"),
        (report_pb2, "ReportService"),
        (alert_pb2, "AlertService"),
        (search_pb2, "SearchService"),
    )
)
METHODS: tuple[MethodDescriptor, ...] = tuple(m for s in SERVICES for m in s.methods)

NEVER = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})
UNARY_DEADLINE = 15.0
STREAM_DEADLINE = 1.5


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@dataclass
class Answer:
    code: grpc.StatusCode
    details: str


@dataclass
class Report:
    """Answers by status code, overall and per rpc; shared by every test of a run."""

    codes: Counter[str] = field(default_factory=Counter)
    by_rpc: dict[str, Counter[str]] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rpc: str, code: str) -> None:
        with self._lock:
            self.codes[code] += 1
            self.by_rpc.setdefault(rpc, Counter())[code] += 1

    @property
    def total(self) -> int:
        return sum(self.codes.values())


class Fuzzer:
    def __init__(self, channel: grpc.Channel, principals: Mapping[str, Metadata], report: Report) -> None:
        self._channel = channel
        self._principals = principals
        self.report = report

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    @property
    def principals(self) -> Sequence[str]:
        return sorted(self._principals)

    def send(self, method: MethodDescriptor, payload: bytes, principal: str) -> Answer:
        metadata = self._principals[principal]
        name = path(method)
        if method.server_streaming:
            answer = self._stream(name, payload, metadata)
        else:
            answer = self._unary(name, payload, metadata)
        self.report.add(name, answer.code.name)
        return answer

    def _unary(self, name: str, payload: bytes, metadata: Metadata) -> Answer:
        call = self._channel.unary_unary(name)
        try:
            call(payload, metadata=metadata, timeout=UNARY_DEADLINE)
        except grpc.RpcError as error:
            return Answer(error.code(), error.details() or "")  # type: ignore[attr-defined]
        return Answer(grpc.StatusCode.OK, "")

    def _stream(self, name: str, payload: bytes, metadata: Metadata) -> Answer:
        # A watch of a real job streams until the job ends: the first message (or the refusal)
        # is what is judged; then the call is cancelled by the client.
        call = self._channel.unary_stream(name)(payload, metadata=metadata, timeout=STREAM_DEADLINE)
        try:
            for _ in call:
                break
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            if code not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                return Answer(code, error.details() or "")  # type: ignore[attr-defined]
        finally:
            call.cancel()
        return Answer(grpc.StatusCode.OK, "")


def acceptable(method: MethodDescriptor, answer: Answer) -> bool:
    if answer.code in NEVER:
        return False
    return not (answer.code == grpc.StatusCode.DEADLINE_EXCEEDED and not method.server_streaming)


def server_is_well(server: ServerHandle, channel: grpc.Channel) -> None:
    """The audit log has written every event (nothing pending, nothing dead-lettered) and the
    health service answers SERVING."""
    audit = server.running.app.audit
    # With the current window's refusal summaries too: left to the writer, a window ending
    # during this flush had its summaries drained by the writer's own flush, which waits for this
    # one's write; they were still buffered when this returned (a race, not a stalled log).
    server.run(audit.flush(all_refusals=True))
    state = audit.health()
    assert state.pending == 0 and state.writing, f"the audit log stopped writing: {state}"
    assert not state.dead_letters, f"audit events were dead-lettered: {audit.dead_letter.path.read_text()[:2000]}"
    # What the health service says (the monitor re-reads the audit state every interval).
    server.run(server.running.monitor._apply(server.run(server.running.monitor._check(roll_call=False))))
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "dashboard.v1.DashboardService", AUDIT_ENTRY):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING, (service, status)
