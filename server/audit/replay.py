"""Writes the events of the audit dead-letter file into the audit log (`tessera audit-replay`).

The file is moved aside first, so a server still running appends new dead letters to a fresh
file meanwhile; events the database refuses again (or all of them, when it does not answer)
go back to the dead-letter file through the writer's own rules, so a replay never loses one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from server.audit.dead_letter import DeadLetterFile
from server.audit.log import AuditLog
from server.db.engine import Database

__all__ = ["ReplayResult", "replay_dead_letters"]


@dataclass(frozen=True)
class ReplayResult:
    read: int
    written: int

    @property
    def returned(self) -> int:
        """Events that went back to the dead-letter file."""
        return self.read - self.written


async def replay_dead_letters(db: Database, path: str | os.PathLike[str]) -> ReplayResult:
    target = DeadLetterFile(path)
    if not target.holds_events():
        return ReplayResult(0, 0)
    aside = Path(f"{target.path}.replaying")
    os.replace(target.path, aside)
    events = list(DeadLetterFile(aside).read())
    before = _lines(target.path)
    writer = AuditLog(db, interval=3600, batch_size=len(events) + 1, max_buffer=len(events) + 1, dead_letter=target)
    for event in events:
        writer.record(event)
    await writer.close()  # writes them, or puts them back in the dead-letter file
    aside.unlink()  # noqa: ASYNC240  # a local file, once per replay
    returned = _lines(target.path) - before
    return ReplayResult(len(events), len(events) - returned)


def _lines(path: Path) -> int:
    try:
        with path.open(encoding="utf-8") as lines:
            return sum(1 for line in lines if line.strip())
    except FileNotFoundError:
        return 0
