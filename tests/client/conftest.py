"""Fixtures of the client tests: tokens as strings (what a client holds), clients on the session
server, and a jobs stack of its own (server + a real Celery worker on a broker database of its
own) for materialization and export tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.auth.tokens import mint_token
from server.config import Settings
from tessera_client import Client
from tests.harness.server import ServerHandle, start_in_thread
from workers.testing import WorkerProcess

Mint = Callable[..., str]
CHROMIUM = "/usr/lib/chromium/chromium"


@pytest.fixture(scope="session")
def mint(settings: Settings) -> Mint:
    """mint(subject, role, *facilities, permissions=(), ttl_seconds=3600) -> a bearer JWT."""

    def make(subject: str, role: str, *facilities: str, permissions: tuple[str, ...] = (), **kw: Any) -> str:
        return mint_token(
            settings, subject=subject, roles=[role], facilities=list(facilities), permissions=list(permissions), **kw
        )

    return make


@pytest.fixture
def clients(server: ServerHandle) -> Iterator[Callable[..., Client]]:
    """clients(token=..., **options) -> a Client on the session server, closed after the test."""
    made: list[Client] = []

    def make(address: str | None = None, **options: Any) -> Client:
        client = Client(address or server.address, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@dataclass
class JobStack:
    """A server and a worker sharing a broker database of their own."""

    settings: Settings
    server: ServerHandle
    worker: WorkerProcess
    export_dir: Path

    @property
    def address(self) -> str:
        return self.server.address

    def env(self) -> dict[str, str]:
        return export_env(self.export_dir)


def export_env(export_dir: Path) -> dict[str, str]:
    """Where exports are stored and which Chromium renders them (server and worker alike)."""
    return {"TESSERA_EXPORT_STORAGE_URL": f"file://{export_dir}", "TESSERA_CHROMIUM_PATH": CHROMIUM}


@pytest.fixture(scope="session")
def job_stack(settings: Settings, migrated: str) -> Iterator[JobStack]:
    from tests.integration.test_jobs import broker_url_for, jobs_settings, worker_env

    export_dir = Path(tempfile.mkdtemp(prefix="tessera-client-exports-"))
    extra = {"export_storage_url": f"file://{export_dir}", "chromium_path": CHROMIUM}
    stack_settings = jobs_settings(settings, broker_url_for(settings.redis_url), **extra)
    handle = start_in_thread(stack_settings)
    worker = WorkerProcess(
        worker_env(stack_settings, **export_env(export_dir)), queues="materialize,exports,maintenance"
    ).start()
    try:
        yield JobStack(stack_settings, handle, worker, export_dir)
    finally:
        worker.stop()
        handle.stop()
        for path in sorted(export_dir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        os.rmdir(export_dir)
