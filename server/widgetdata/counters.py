"""Process-wide counters of the widget-data cache (tests and benchmarks read them; Prometheus
counts the same events per server in server/metrics.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["CacheStats", "stats"]


@dataclass
class CacheStats:
    """`executions` counts query runs."""

    memory_hits: int = 0
    memory_misses: int = 0
    database_hits: int = 0
    database_misses: int = 0
    stale_served: int = 0
    executions: int = 0
    waits: int = 0  # requests answered by a concurrent computation (this process's or another's)
    background_refreshes: int = 0
    lease_renewals: int = 0
    redis_errors: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


stats = CacheStats()
