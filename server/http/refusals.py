"""Requests the HTTP face refuses before any rpc is known (no binding at that path, a verb not
served there, a CORS preflight from an origin not allowed): audited like a gRPC call refused
before anyone was identified (aggregated per source, `details.transport` = `http`) and counted
in `tessera_malformed_requests` under method `(unrouted)`. Refusals of a request to a known
rpc (malformed JSON, wrong media type, oversized body, unknown fields, bad values) go through
the rpc's own pipeline instead (server/http/app.py), like any other bad input."""

from __future__ import annotations

from collections.abc import Sequence

from server.api.audit import credential_kind
from server.audit.log import DENIED, AuditLog
from server.audit.refusals import RefusalKey, peer_host
from server.http.context import HttpContext
from server.metrics import Metrics

UNROUTED = "(unrouted)"
# The verbs an audit event may name; anything else a caller invents is recorded as OTHER.
_VERBS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class UnroutedRefusals:
    def __init__(self, audit: AuditLog, metrics: Metrics | None) -> None:
        self._audit = audit
        self._metrics = metrics

    def record(
        self, verb: str, headers: Sequence[tuple[bytes, bytes]], peer: str, reason: str, correlation_id: str
    ) -> None:
        if self._metrics is not None:
            self._metrics.malformed_requests.labels(method=UNROUTED, transport="http").inc()
        ctx = HttpContext(headers, peer)
        method = f"http/{verb if verb in _VERBS else 'OTHER'}"
        key = RefusalKey(method, peer_host(peer), credential_kind(ctx), reason, DENIED, "http")  # type: ignore[arg-type]
        self._audit.record_refusal(key, correlation_id)
