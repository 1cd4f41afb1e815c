"""What the sync and async clients share about following jobs and downloading files: the
revision bookkeeping of a resumable watch, and a download sink that verifies size and sha256.

A watch stream sends the job's snapshot, then every change with a strictly increasing
`revision`, heartbeats while idle, and ends at a terminal state. When it drops, the client
opens it again with `since_revision` = the last revision it saw: the server then sends only
what came after (filling any gap from the row), and `JobTracker` drops anything it already has.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from dashboard.v1 import common_pb2
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import widget_pb2 as w
from tessera_client import rpcs
from tessera_client.errors import DownloadVerificationError

__all__ = ["TERMINAL_STATES", "DownloadSink", "JobKind", "JobTracker", "job_kinds"]

TERMINAL_STATES = frozenset(
    {common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED}
)

Job = TypeVar("Job", w.MaterializationJob, e.ExportJob)


@dataclass(frozen=True)
class JobKind(Generic[Job]):
    """How to watch and fetch one kind of job."""

    watch: rpcs.ServerStream[Any, Any]
    get: rpcs.Unary[Any, Job]
    event_field: str  # the member of the watch response's oneof that carries the job

    def watch_request(self, job_id: str, since: int) -> Any:
        return self.watch.request_type(id=job_id, since_revision=since)

    def get_request(self, job_id: str) -> Any:
        return self.get.request_type(id=job_id)

    def job_of(self, event: Any) -> Job | None:
        """The job snapshot an event carries, or None for a heartbeat."""
        return getattr(event, self.event_field) if event.WhichOneof("event") == self.event_field else None


MATERIALIZATION: JobKind[w.MaterializationJob] = JobKind(
    rpcs.WATCH_MATERIALIZATION_JOB, rpcs.GET_MATERIALIZATION_JOB, "job"
)
EXPORT: JobKind[e.ExportJob] = JobKind(rpcs.WATCH_EXPORT, rpcs.GET_EXPORT, "export")


def job_kinds() -> tuple[JobKind[Any], ...]:
    return (MATERIALIZATION, EXPORT)


@dataclass
class JobTracker(Generic[Job]):
    """The latest snapshot seen and the resume point; calls `on_progress` once per new revision."""

    on_progress: Callable[[Job], None] | None = None
    latest: Job | None = None
    since: int = 0
    resumes: int = 0

    def accept(self, job: Job) -> bool:
        """Takes a snapshot from the stream; False for one already seen (a duplicate)."""
        if job.revision <= self.since:
            return False
        self.since = job.revision
        self.latest = job
        if self.on_progress is not None:
            self.on_progress(job)
        return True

    @property
    def done(self) -> bool:
        return self.latest is not None and self.latest.state in TERMINAL_STATES


@dataclass(frozen=True)
class Download:
    """A verified download: where it was written and what the server said it is."""

    path: Path
    file: e.ExportFile


@dataclass
class DownloadSink:
    """Writes a download to a temporary file beside its destination, hashing as it goes; on
    `commit()` checks size and sha256 against the announced ExportFile and only then renames
    the file into place. A failed check removes the temporary file."""

    export_id: str
    destination: Path
    on_bytes: Callable[[int, int], None] | None = None
    expected: e.ExportFile | None = None
    received: int = 0
    path: Path | None = None
    _hash: Any = field(default_factory=hashlib.sha256)
    _file: Any = None
    _temp: Path | None = None

    def announce(self, file: e.ExportFile) -> None:
        """The stream's first message. Resumed streams announce again: it must be the same file."""
        if self.expected is None:
            self.expected = file
            self.path = _final_path(self.destination, file.filename or f"{self.export_id}")
            handle, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
            self._temp = Path(temp)
            self._file = os.fdopen(handle, "wb")
            return
        if (file.sha256, file.size_bytes) != (self.expected.sha256, self.expected.size_bytes):
            self.abort()
            raise DownloadVerificationError(
                self.export_id, "file (it changed between resumed streams)", self.expected.sha256, file.sha256
            )

    def write(self, chunk: bytes) -> None:
        if self.expected is None:
            raise DownloadVerificationError(self.export_id, "stream order", "file metadata first", "a chunk")
        if self.received + len(chunk) > self.expected.size_bytes:
            self.abort()
            raise DownloadVerificationError(
                self.export_id, "size", str(self.expected.size_bytes), f"more than {self.received + len(chunk) - 1}"
            )
        self._file.write(chunk)
        self._hash.update(chunk)
        self.received += len(chunk)
        if self.on_bytes is not None:
            self.on_bytes(self.received, self.expected.size_bytes)

    def commit(self) -> Path:
        if self.expected is None or self.path is None:
            raise DownloadVerificationError(self.export_id, "stream", "file metadata", "nothing")
        self._file.close()
        if self.received != self.expected.size_bytes:
            self.abort()
            raise DownloadVerificationError(self.export_id, "size", str(self.expected.size_bytes), str(self.received))
        digest = self._hash.hexdigest()
        if digest != self.expected.sha256.lower():
            self.abort()
            raise DownloadVerificationError(self.export_id, "sha256", self.expected.sha256, digest)
        assert self._temp is not None
        os.replace(self._temp, self.path)
        return self.path

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)


def _final_path(destination: Path, suggested: str) -> Path:
    """`destination` itself, or the server's suggested name (its last component only) inside it
    when it is a directory."""
    if destination.is_dir():
        name = Path(suggested).name or "export"
        return destination / name
    destination.parent.mkdir(parents=True, exist_ok=True)
    return destination
