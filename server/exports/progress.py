"""An export's progress written behind its work, in order.

Every step of a PDF/PNG export (a widget drawn, printing, storing) is a job revision: a locked
row update and a stream entry, tens of milliseconds on a busy database. Written in line, the
twelve widget steps of a dashboard alone cost more than its print. Here they are handed to one
background writer that commits them one after another in the order they were posted (so
watchers see every revision, in order), while the export goes on rendering and printing.

A step that finds the job ended (cancelled) marks the export cancelled: the work checks
`raise_if_cancelled()` between its stages, and `drain()` (before the final change) waits for
every step and raises what the writer met: `Cancelled`, or the error of a dependency that is
down (the task retries)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable

from dashboard.v1 import export_pb2
from server.exports.jobs import ExportStore

__all__ = ["Cancelled", "ProgressWriter", "progress_writer"]

Mutation = Callable[[export_pb2.ExportJob], bool]


class Cancelled(Exception):
    """The job was cancelled while this attempt worked on it."""


class ProgressWriter:
    def __init__(self, store: ExportStore, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._pending: deque[Mutation] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def post(self, mutate: Mutation) -> None:
        """Queues a step; it is committed after every step posted before it."""
        if self._error is not None:
            return  # the export is over: it finds out at its next check
        self._pending.append(mutate)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def raise_if_cancelled(self) -> None:
        """Raises what a step written so far met (Cancelled, a dependency's error)."""
        if self._error is not None:
            raise self._error

    async def drain(self) -> None:
        """Waits until every posted step is committed, then raises what any of them met."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        self.raise_if_cancelled()

    async def _write(self) -> None:
        while self._pending and self._error is None:
            mutate = self._pending.popleft()
            try:
                if await self._store.change(self._job_id, mutate) is None:
                    self._error = Cancelled()
            except Exception as exc:  # handed to the export at its next check
                self._error = exc

    async def abandon(self) -> None:
        """The export failed: steps not yet written are dropped, the one being written ends."""
        self._pending.clear()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)


@contextlib.asynccontextmanager
async def progress_writer(store: ExportStore, job_id: str) -> AsyncIterator[ProgressWriter]:
    writer = ProgressWriter(store, job_id)
    try:
        yield writer
    finally:
        # After a failure: no more steps. After success the caller has drained it already.
        await writer.abandon()
