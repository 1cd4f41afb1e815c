"""What every benchmark needs: real services, a migrated database with the demo data source,
a real server, tokens, and a small timing toolkit."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from server.auth.tokens import mint_token
from server.config import Settings
from server.db.migrate import upgrade
from server.devtools.demo_data import install as install_demo_data
from tests.harness.server import ServerHandle, start_in_thread
from tests.harness.services import TestServices, provision

SECRET = "tessera-bench-secret-0123456789abcdef"


@dataclass
class Bench:
    services: TestServices
    settings: Settings
    server: ServerHandle
    channel: grpc.Channel

    def metadata(self, role: str = "editor", facility: str = "north-general", *perms: str) -> tuple[tuple[str, str]]:
        token = mint_token(self.settings, subject="bench", roles=[role], facilities=[facility], permissions=list(perms))
        return (("authorization", f"Bearer {token}"),)

    @property
    def dsn(self) -> str:
        return self.services.database_url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def bench_system() -> Iterator[Bench]:
    # The server runs in a thread of this process (so workloads can read its counters). With
    # CPython's default 5 ms switch interval, a client thread waiting for the GIL would be
    # measured as server time; a short interval keeps hand-offs close to what two processes see.
    sys.setswitchinterval(0.0002)
    with provision() as services:
        settings = Settings(
            database_url=services.database_url,
            redis_url=services.redis_url,
            redis_prefix=services.redis_prefix,
            broker_key_prefix=f"{services.redis_prefix}broker:",
            host="127.0.0.1",
            port=0,
            metrics_port=0,
            jwt_secret=SECRET,
            log_level="WARNING",
        )
        upgrade(settings.database_url)
        install_demo_data(settings.database_url)
        server = start_in_thread(settings)
        try:
            with grpc.insecure_channel(server.address) as channel:
                grpc.channel_ready_future(channel).result(timeout=10)
                yield Bench(services, settings, server, channel)
        finally:
            server.stop()


def sample(fn: Callable[[], Any], iterations: int, warmup: int = 3) -> list[float]:
    """Seconds per call, after a warm-up."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "n": len(ordered),
    }
