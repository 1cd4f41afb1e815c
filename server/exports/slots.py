"""Print slots: at most N Chromium prints at once on this machine, whichever worker processes
ask (prefork children each hold a warm Chromium; ten of them printing at once on two cores
only slow each other down). A slot is an exclusive `flock` on one of N files: the kernel
releases it when its holder exits, however it exits, so a killed worker never keeps a slot."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from server.config import Settings

__all__ = ["PrintSlots", "default_slots"]

POLL_SECONDS = 0.01


def default_slots() -> int:
    """One print per core."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class PrintSlots:
    def __init__(self, count: int, directory: Path | None = None) -> None:
        self.count = max(1, count)
        self._directory = directory or Path(tempfile.gettempdir(), f"tessera-print-slots-{os.getuid()}")
        self._directory.mkdir(parents=True, exist_ok=True)

    def _try(self) -> int | None:
        for index in range(self.count):
            fd = os.open(self._directory / f"slot-{index}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    @classmethod
    def for_settings(cls, settings: Settings) -> PrintSlots:
        """`TESSERA_EXPORT_PRINT_SLOTS` (0: one per core), shared by the processes of one
        deployment on this machine (deployments are told apart by their Redis key prefix)."""
        deployment = hashlib.sha256(settings.redis_prefix.encode()).hexdigest()[:12]
        directory = Path(tempfile.gettempdir(), f"tessera-print-slots-{os.getuid()}", deployment)
        return cls(settings.export_print_slots or default_slots(), directory)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Waits for a free slot (polling: flock has no async wait) and holds it."""
        fd = self._try()
        while fd is None:
            await asyncio.sleep(POLL_SECONDS)
            fd = self._try()
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock
