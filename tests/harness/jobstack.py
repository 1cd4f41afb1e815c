"""A server and a real Celery worker (materialize, exports and maintenance queues) sharing a
broker database of their own, for tests that run jobs end to end (the client's tests, the
examples). Exports are stored in a temporary directory and rendered by the system Chromium."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from server.config import Settings
from tests.harness.server import ServerHandle, start_in_thread
from workers.testing import WorkerProcess

__all__ = ["CHROMIUM", "JobStack", "export_env", "idle_broker_url", "job_stack"]

CHROMIUM = "/usr/lib/chromium/chromium"
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


def export_env(export_dir: Path) -> dict[str, str]:
    """Where exports are stored and which Chromium renders them (server and worker alike)."""
    return {"TESSERA_EXPORT_STORAGE_URL": f"file://{export_dir}", "TESSERA_CHROMIUM_PATH": CHROMIUM}


def idle_broker_url(redis_url: str) -> str:
    """A Redis database for the Celery broker that no other client is connected to (5..15),
    emptied first. Other test runs on this machine pick broker databases too; sharing one
    means their worker takes our tasks (and finds no such job in its database)."""
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url.rstrip("/")
    client = redis.Redis.from_url(redis_url)
    try:
        busy = Counter(int(entry["db"]) for entry in client.client_list())
    finally:
        client.close()
    candidates = list(range(5, 16))
    idle = [db for db in candidates if not busy[db]]
    db = random.choice(idle or sorted(candidates, key=lambda n: busy[n])[:1])
    url = f"{base}/{db}"
    broker = redis.Redis.from_url(url)
    try:
        broker.flushdb()
    finally:
        broker.close()
    return url


@contextmanager
def job_stack(settings: Settings) -> Iterator[JobStack]:
    """`settings` of a migrated database; yields a running server and worker, stops both."""
    export_dir = Path(tempfile.mkdtemp(prefix="tessera-exports-"))
    stack_settings = Settings(
        **(
            settings.model_dump()
            | {
                "broker_url": idle_broker_url(settings.redis_url),
                "job_heartbeat_seconds": HEARTBEAT_SECONDS,
                "export_storage_url": f"file://{export_dir}",
                "chromium_path": CHROMIUM,
            }
        )
    )
    env = {
        "DATABASE_URL": stack_settings.database_url,
        "REDIS_URL": stack_settings.redis_url,
        "BROKER_URL": stack_settings.effective_broker_url,
        "TESSERA_REDIS_PREFIX": stack_settings.redis_prefix,
        "TESSERA_LOG_LEVEL": "WARNING",
        **export_env(export_dir),
    }
    handle = start_in_thread(stack_settings)
    try:
        worker = WorkerProcess(env, queues="materialize,exports,maintenance").start()
        try:
            yield JobStack(stack_settings, handle, worker, export_dir)
        finally:
            worker.stop()
    finally:
        handle.stop()
        shutil.rmtree(export_dir, ignore_errors=True)
