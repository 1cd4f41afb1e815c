"""What the sync and async clients share about following jobs and downloading files: the
revision bookkeeping of a resumable watch, and a download sink that verifies size and sha256.

A watch stream sends the job's snapshot, then every change with a strictly increasing
`revision`, heartbeats while idle, and ends at a terminal state. When it drops, the client
opens it again with `since_revision` = the last revision it saw: the server then sends only
what came after (filling any gap from the row), and `JobTracker` drops anything it already has.
"""

from __future__ import annotations

import hashlib
import logging
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
from tessera_client.errors import ApiError, DownloadVerificationError, UnavailableError
from tessera_client.retry import Idempotency, RetryPolicy

__all__ = ["TERMINAL_STATES", "Download", "DownloadSink", "Follow", "JobKind", "JobTracker", "job_kinds"]

log = logging.getLogger("tessera_client")

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


class Follow(Generic[Job]):
    """Following one job to its end, without the I/O: what the sync and asyncio clients decide
    alike between watch streams (they only open streams, read events, sleep and ask the row).

    Per stream: `watch_request()` to open it, `on_event(event)` for each message (stop once
    `done`), then `stream_ended(error, stalled)`: the seconds to wait before reopening, or None
    when the stream ended cleanly without a terminal state; then ask the row, `row_read(job)`, and
    unless `done`, wait `ended_early()` seconds. Raises the error when it is time to give up."""

    def __init__(
        self,
        kind: JobKind[Job],
        job_id: str,
        *,
        stall: float,
        retry: RetryPolicy,
        refresh_after: Callable[[ApiError, bool], bool],
        on_progress: Callable[[Job], None] | None = None,
        start: Job | None = None,
    ) -> None:
        self.kind: JobKind[Job] = kind
        self.job_id, self.stall = job_id, stall
        self._retry, self._refresh_after = retry, refresh_after
        self.tracker: JobTracker[Job] = JobTracker(on_progress)
        self.failures, self.refreshed = 0, False
        self.last: ApiError | None = None  # the error of the last failed stream (for deadlines)
        if start is not None:  # a snapshot the caller has (from the create call): report it, watch after it
            self.tracker.accept(start)

    @property
    def done(self) -> bool:
        return self.tracker.done

    @property
    def latest(self) -> Job | None:
        return self.tracker.latest

    def watch_request(self) -> Any:
        return self.kind.watch_request(self.job_id, self.tracker.since)

    def on_event(self, event: Any) -> None:
        job = self.kind.job_of(event)
        if job is not None and self.tracker.accept(job):
            self.failures = 0  # progress: the retry budget starts again

    def stream_ended(self, error: ApiError | None, stalled: bool) -> float | None:
        if stalled:
            message = f"the watch of job {self.job_id} sent nothing for {self.stall:g} s"
            return self._backoff(UnavailableError(message, method=self.kind.watch.full_name))
        if error is None:
            return None  # the server went away cleanly: the row says where the job is
        if self._refresh_after(error, self.refreshed):
            self.refreshed = True
            return 0.0
        if not self._retry.retryable(error, Idempotency.SAFE):
            raise error
        return self._backoff(error)

    def row_read(self, job: Job) -> None:
        self.tracker.accept(job)

    def ended_early(self) -> float:
        message = f"the watch of job {self.job_id} ended early"
        return self._backoff(UnavailableError(message, method=self.kind.watch.full_name))

    def _backoff(self, error: ApiError) -> float:
        self.last = error
        self.failures += 1
        if self.failures >= self._retry.max_attempts:
            raise error
        self.tracker.resumes += 1
        # A refusal's RetryInfo is a floor (the watch was refused before it started).
        delay = self._retry.delay(self.failures, error)
        log.info(
            "resuming the watch of %s after revision %d in %.3f s (%s)", self.job_id, self.tracker.since, delay, error
        )
        return delay


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
