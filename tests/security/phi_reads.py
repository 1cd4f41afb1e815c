"""Audit completeness across the whole test session: every data read made through the session's
channel is recorded on the client side, with its own truth about PHI, and must be in the audit
log exactly (one event per widget or query read, its row count, and `phi_unmasked` true exactly
when a column the query version declares sensitive came back unmasked).

The truth is computed here, independently of the server's audit code: from the response frame
(column names and their `masked` flags) and the query version's declarations read straight from
PostgreSQL when the call returns (later the widget or its dashboard may be gone). A declaration
names a column as masking matches it: exactly, or ignoring case.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import grpc
import psycopg

DATA_METHODS = (
    "/dashboard.v1.WidgetService/GetWidgetData",
    "/dashboard.v1.WidgetService/BatchGetWidgetData",
    "/dashboard.v1.QueryService/RunQuery",
)
SUCCESS = 1  # dashboard.v1.AUDIT_OUTCOME_SUCCESS


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class CallDetails(_Details, grpc.ClientCallDetails):
    pass


@dataclass(frozen=True)
class Expected:
    resource_id: str
    row_count: int
    phi_unmasked: bool


@dataclass
class Read:
    method: str
    correlation_id: str
    expected: list[Expected]


@dataclass
class Report:
    calls: int = 0
    events: int = 0
    phi_unmasked: int = 0
    unresolved: int = 0
    problems: list[str] = field(default_factory=list)


def _declared(dsn: str, query_id: str, version: int) -> set[str] | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sensitive_columns FROM query_versions WHERE query_id = %s AND version = %s",
            (uuid.UUID(query_id), version),
        ).fetchone()
    if row is None:
        return None
    return {str(c.get("column", "")).casefold() for c in row[0] or []}


def _query_of_widget(dsn: str, widget_id: str, dashboard_version: int) -> str | None:
    """The query a widget read ran: its binding in the asked-for snapshot, else its current one,
    else the one in its dashboard's published snapshot (a widget deleted since publishing)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        snapshot_sql = (
            "SELECT v.snapshot FROM dashboard_versions v JOIN dashboards d ON d.id = v.dashboard_id "
            "WHERE v.snapshot->'widgets' @> %s::jsonb AND v.version = {} LIMIT 1"
        )
        probe = json.dumps([{"id": widget_id}])
        if dashboard_version:
            row = conn.execute(snapshot_sql.format("%s"), (probe, dashboard_version)).fetchone()
        else:
            current = conn.execute("SELECT query_id FROM widgets WHERE id = %s", (uuid.UUID(widget_id),)).fetchone()
            if current is not None:
                return str(current[0]) if current[0] else None
            row = conn.execute(snapshot_sql.format("d.published_version"), (probe,)).fetchone()
    if row is None:
        return None
    for widget in row[0].get("widgets", []):
        if widget.get("id") == widget_id:
            query = widget.get("query") or {}
            return query.get("queryId") or query.get("query_id")
    return None


def _phi_unmasked(frame: Any, declared: set[str]) -> bool:
    return any(column.name.casefold() in declared and not column.masked for column in frame.columns)


class PhiReadRecorder(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._lock = threading.Lock()
        self.reads: list[Read] = []
        self.unresolved = 0

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        if details.method not in DATA_METHODS:
            return continuation(details, request)
        metadata = list(details.metadata or ())
        cid = next((v for k, v in metadata if k == "x-correlation-id"), "")
        if not cid:
            cid = f"phi-read-{uuid.uuid4().hex}"
            metadata.append(("x-correlation-id", cid))
            details = CallDetails(
                details.method,
                details.timeout,
                metadata,
                details.credentials,
                details.wait_for_ready,
                details.compression,
            )
        outcome = continuation(details, request)
        if outcome.exception() is None:
            self._record(details.method, cid, request, outcome.result())
        return outcome

    def _record(self, method: str, cid: str, request: Any, response: Any) -> None:
        try:
            expected = self._expected(method, request, response)
        except psycopg.Error:
            expected = None
        with self._lock:
            if expected is None:
                self.unresolved += 1
            else:
                self.reads.append(Read(method, cid, expected))

    def _expected(self, method: str, request: Any, response: Any) -> list[Expected] | None:
        if method.endswith("/RunQuery"):
            declared = _declared(self._dsn, request.id, response.query_version)
            if declared is None:
                return None
            return [Expected(request.id, response.frame.row_count, _phi_unmasked(response.frame, declared))]
        pairs = (
            [(request, response)]
            if method.endswith("/GetWidgetData")
            else list(zip(request.requests, response.data, strict=True))
        )
        found: list[Expected] = []
        for asked, data in pairs:
            query_id = _query_of_widget(self._dsn, data.widget_id, asked.dashboard_version)
            declared = _declared(self._dsn, query_id, data.query_version) if query_id else None
            if declared is None:
                return None
            found.append(Expected(data.widget_id, data.frame.row_count, _phi_unmasked(data.frame, declared)))
        return found

    def verify(self, flush: Callable[[], None], only: set[str] | None = None) -> Report:
        """Compares the recorded reads (all, or those with the correlation ids `only`) with the
        audit log; `flush` writes the server's buffered events first."""
        flush()
        with self._lock:
            reads = [r for r in self.reads if only is None or r.correlation_id in only]
        report = Report(calls=len(reads), unresolved=self.unresolved)
        if not reads:
            return report
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT correlation_id, method, resource_id, row_count, phi_unmasked FROM audit_log "
                "WHERE correlation_id = ANY(%s) AND outcome = %s",
                ([r.correlation_id for r in reads], SUCCESS),
            ).fetchall()
        got: dict[tuple[str, str], Counter[Expected]] = {}
        for cid, method, resource_id, row_count, phi in rows:
            got.setdefault((cid, "/" + method), Counter())[Expected(resource_id, row_count or 0, phi)] += 1
        want: dict[tuple[str, str], Counter[Expected]] = {}
        for read in reads:  # a caller may reuse its correlation id for several calls
            want.setdefault((read.correlation_id, read.method), Counter()).update(read.expected)
            report.phi_unmasked += sum(1 for e in read.expected if e.phi_unmasked)
        for key, expected in want.items():
            found = got.get(key, Counter())
            report.events += sum(found.values())
            if found != expected:
                report.problems.append(f"{key[1]} {key[0]}: audit {dict(found)} != reads {dict(expected)}")
        return report
