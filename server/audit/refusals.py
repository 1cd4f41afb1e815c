"""Audit events for calls refused before anyone was identified (UNAUTHENTICATED), aggregated.

Such a call has no subject, and whoever sends it controls how many arrive: one event per call
would let a flood of bad tokens fill the audit buffer (pushing out the events that matter) and
the table. So refusals are counted per source in fixed windows:

- the first refusal of a (method, peer host, credential kind, reason) in a window is recorded at
  once, as its own event with `count` 1 and its correlation id;
- the others of that window are only counted; when the window ends (or the log closes) one
  summary event per source carries how many there were (`count`, `summary`, `since`, `until`,
  and `last_correlation_id` to find the latest of them in the access log);
- at most `max_sources` sources are tracked per window; refusals beyond them are counted under
  one overflow source (peer "*").

So a window writes at most 2 x (max_sources + 1) events whatever the load, and the counts still
add up to every refused call. Events carry the method, the peer's address (not its port, which
changes per connection), the kind of credential presented and the reason it was refused; never
the credential itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from dashboard.v1 import share_pb2
from server.audit.event import AuditEvent

__all__ = ["OVERFLOW_PEER", "RefusalCounter", "RefusalKey", "peer_host"]

OVERFLOW_PEER = "*"
DEFAULT_WINDOW_SECONDS = 10.0
DEFAULT_MAX_SOURCES = 1000


@dataclass(frozen=True)
class RefusalKey:
    method: str
    peer: str
    credential: str  # "none", "bearer", "link", "other"
    reason: str
    outcome: int = share_pb2.AUDIT_OUTCOME_DENIED
    transport: str = "grpc"  # or "http"


def peer_host(peer: str) -> str:
    """'ipv4:127.0.0.1:51234' -> 'ipv4:127.0.0.1', 'ipv6:[::1]:51234' -> 'ipv6:[::1]'; others as given."""
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in address:
        host, _, port = address.rpartition(":")
        if port.isdigit():
            return f"{kind}:{host}"
    return peer[:128]


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat()


class RefusalCounter:
    def __init__(
        self, *, window_seconds: float = DEFAULT_WINDOW_SECONDS, max_sources: int = DEFAULT_MAX_SOURCES
    ) -> None:
        if window_seconds <= 0 or max_sources < 1:
            raise ValueError("window_seconds must be positive and max_sources at least 1")
        self._window = window_seconds
        self._max_sources = max_sources
        self._started: float | None = None  # monotonic start of the current window
        self._started_wall = 0.0
        self._repeats: dict[RefusalKey, tuple[int, str]] = {}  # repeats, last correlation id

    def observe(self, key: RefusalKey, correlation_id: str, now: float | None = None) -> list[AuditEvent]:
        """Counts one refusal; returns the events to record now (the summaries of a window that
        just ended, and this refusal's own event when it is the first of its source)."""
        now = time.monotonic() if now is None else now
        events = self.drain(now)
        if self._started is None:
            self._started, self._started_wall = now, time.time()
        if key not in self._repeats and len(self._repeats) >= self._max_sources:
            key = RefusalKey(key.method, OVERFLOW_PEER, OVERFLOW_PEER, OVERFLOW_PEER, key.outcome, key.transport)
        if key in self._repeats:
            self._repeats[key] = (self._repeats[key][0] + 1, correlation_id)
            return events
        self._repeats[key] = (0, "")
        events.append(self._event(key, 1, correlation_id))
        return events

    def drain(self, now: float | None = None, *, everything: bool = False) -> list[AuditEvent]:
        """The summaries of the current window if it has ended (or, with `everything`, now: on
        close), which then starts afresh."""
        now = time.monotonic() if now is None else now
        if self._started is None or (not everything and now < self._started + self._window):
            return []
        since, until = _iso(self._started_wall), _iso(time.time())
        events = [
            self._event(
                key, repeats, "", {"summary": True, "since": since, "until": until, "last_correlation_id": last}
            )
            for key, (repeats, last) in self._repeats.items()
            if repeats
        ]
        self._repeats.clear()
        self._started = None
        return events

    @property
    def sources(self) -> int:
        return len(self._repeats)

    @staticmethod
    def _event(
        key: RefusalKey, count: int, correlation_id: str, summary: dict[str, object] | None = None
    ) -> AuditEvent:
        details: dict[str, object] = {
            "unauthenticated": True,
            "reason": key.reason,
            "peer": key.peer,
            "credential": key.credential,
            "count": count,
            "transport": key.transport,
        }
        details.update(summary or {})
        return AuditEvent(
            actor="", method=key.method, outcome=key.outcome, correlation_id=correlation_id, details=details
        )
