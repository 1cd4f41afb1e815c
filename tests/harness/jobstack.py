"""A server and a real Celery worker (materialize, exports and maintenance queues) with a broker
key prefix of their own, for tests that run jobs end to end (the client's tests, the examples).
Exports are stored in a temporary directory and rendered by the Chromium the settings find."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from server.config import Settings
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import jobs_settings, worker_env
from workers.testing import WorkerProcess

__all__ = ["JobStack", "job_stack"]

HEARTBEAT_SECONDS = 0.5


@dataclass
class JobStack:
    settings: Settings
    server: ServerHandle
    worker: WorkerProcess
    export_dir: Path

    @property
    def address(self) -> str:
        return self.server.address


@contextmanager
def job_stack(settings: Settings) -> Iterator[JobStack]:
    """`settings` of a migrated database; yields a running server and worker, stops both."""
    export_dir = Path(tempfile.mkdtemp(prefix="tessera-exports-"))
    stack_settings = jobs_settings(
        settings,
        settings.redis_url,
        job_heartbeat_seconds=HEARTBEAT_SECONDS,
        export_storage_url=f"file://{export_dir}",
    )
    handle = start_in_thread(stack_settings)
    try:
        worker = WorkerProcess(worker_env(stack_settings), queues="materialize,exports,maintenance").start()
        try:
            yield JobStack(stack_settings, handle, worker, export_dir)
        finally:
            worker.stop()
    finally:
        handle.stop()
        shutil.rmtree(export_dir, ignore_errors=True)
