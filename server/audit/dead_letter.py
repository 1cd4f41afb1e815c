"""Where audit events go when the audit log will not take them: an append-only JSON-lines file.

An event lands here when PostgreSQL refuses it on its own (after its batch was split down to it),
when the buffer is full while the database is away, or when the server stops with the database
unreachable. Nothing is dropped silently: every line is one event with the error that sent it here,
the `tessera_audit_dead_letters` counter moves, the `tessera.audit` health entry turns NOT_SERVING
while the file holds events, and `tessera audit-replay` writes them into the log and empties it.

Writes are small appends with an fsync, done under a lock so that lines never interleave across
threads (replay and the server may share a process in tests).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.audit.event import AuditEvent

__all__ = ["DeadLetterFile"]

log = logging.getLogger("tessera.audit")


class DeadLetterFile:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, events: Iterable[AuditEvent], error: str) -> int:
        """Appends each event with `error`; returns how many. Raises OSError when the file cannot
        be written (the caller then logs the events themselves as the last resort)."""
        now = datetime.now(UTC).isoformat()
        lines = [json.dumps({"event": _row(e), "error": error, "dead_lettered_at": now}) + "\n" for e in events]
        if not lines:
            return 0
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.writelines(lines)
                out.flush()
                os.fsync(out.fileno())
        return len(lines)

    def holds_events(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except OSError:
            return False

    def read(self) -> Iterator[AuditEvent]:
        """The events in the file, oldest first (a line that does not parse is skipped and logged)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    yield _event(json.loads(line)["event"])
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("audit dead letter: line %d does not parse: %r", number, exc)

    def clear(self) -> None:
        with self._lock:
            self.path.unlink(missing_ok=True)


def _row(event: AuditEvent) -> dict[str, Any]:
    row = event.row()
    row["at"] = event.at.isoformat()
    return row


def _event(row: dict[str, Any]) -> AuditEvent:
    fields = dict(row)
    fields["at"] = datetime.fromisoformat(fields["at"])
    return AuditEvent(**fields)
