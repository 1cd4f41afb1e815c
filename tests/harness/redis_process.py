"""A Redis server process of a test's own (Debian's redis-server on a free port)."""

from __future__ import annotations

import subprocess
import time

import redis

from server.devtools.embedded import free_port
from tests.harness.redis_cluster import REDIS_SERVER

__all__ = ["REDIS_SERVER", "RedisProcess"]


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
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis.from_url(self.url, socket_connect_timeout=0.2) as client:
                    client.ping()
                return
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
