"""A Redis server process of a test's own (Debian's redis-server on a free port)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from server.devtools.embedded import free_port
from tests.harness.redis_cluster import REDIS_SERVER, wait_ping

__all__ = ["REDIS_SERVER", "RedisProcess", "own_redis"]


class RedisProcess:
    """A Redis of the test's own, to kill, restart or pause without touching anyone else's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_ping(self.port, time.monotonic() + 10)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@contextmanager
def own_redis() -> Iterator[RedisProcess]:
    """A started RedisProcess, killed on exit (the test is skipped where redis-server is missing)."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed")
    process = RedisProcess()
    try:
        process.start()
        yield process
    finally:
        process.kill()
