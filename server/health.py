"""The standard gRPC health service, fed by background checks of the dependencies.

Every `health_interval_seconds` the monitor checks PostgreSQL, Redis, the broker and which
workers answer (a Celery roll call, waiting at most `health_probe_timeout_seconds`), and sets
the statuses; a probe's Check or Watch reads the last result and never waits on a dependency.
Checks start at a fixed rate (a slow check does not push the next one back), PostgreSQL is asked
on a fresh connection (server/db/probe.py), and the quick checks' statuses are set before the
roll call is waited for, so a dependency's change shows within one interval plus one round trip.

Entries, each SERVING or NOT_SERVING:

    tessera.dependency.postgres        answers SELECT 1
    tessera.dependency.redis           answers PING
    tessera.dependency.broker          accepts a connection (Redis or RabbitMQ)
    tessera.dependency.workers         at least one worker answered the roll call
    tessera.dependency.workers.<queue> a worker that answered consumes <queue>
    tessera.audit                      audit events are being written, and the dead-letter
                                       file holds none (server/audit/dead_letter.py)

What each service needs to be SERVING (`REQUIREMENTS`): every service, and the server as a
whole (""), needs PostgreSQL and nothing else, because what else fails degrades rather than
stops them: without Redis widget data comes from PostgreSQL; without the broker or a worker,
reads and writes still work and only MaterializeDashboard is refused (UNAVAILABLE) or waits in
the queue. ExportService is different: each of its rpcs exists to run an export, so it also
needs the broker and a worker consuming the `exports` queue.

While the server shuts down every entry is NOT_SERVING and stays so (load balancers drain).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from dashboard.v1 import (
    alert_pb2,
    dashboard_pb2,
    export_pb2,
    query_pb2,
    report_pb2,
    search_pb2,
    share_pb2,
    widget_pb2,
)
from server.app import App
from server.broker.names import QUEUES
from server.broker.probe import BrokerProbe, RollCall
from server.db.probe import PostgresProbe

__all__ = [
    "AUDIT_ENTRY",
    "DEPENDENCY_PREFIX",
    "REQUIREMENTS",
    "SERVICE_NAMES",
    "Checks",
    "HealthMonitor",
    "required_by",
]

log = logging.getLogger("tessera.health")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DEPENDENCY_PREFIX = "tessera.dependency."
AUDIT_ENTRY = "tessera.audit"

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (dashboard_pb2, "DashboardService"),
        (widget_pb2, "WidgetService"),
        (query_pb2, "QueryService"),
        (export_pb2, "ExportService"),
        (share_pb2, "ShareService"),
        (report_pb2, "ReportService"),
        (alert_pb2, "AlertService"),
        (search_pb2, "SearchService"),
    )
)
EXPORT_SERVICE = export_pb2.DESCRIPTOR.services_by_name["ExportService"].full_name
REPORT_SERVICE = report_pb2.DESCRIPTOR.services_by_name["ReportService"].full_name

# Service name -> the dependency entries (without the prefix) it needs to be SERVING.
REQUIREMENTS: Mapping[str, tuple[str, ...]] = {
    "": ("postgres",),
    **{name: ("postgres",) for name in SERVICE_NAMES},
    EXPORT_SERVICE: ("postgres", "broker", "workers.exports"),
    # Deliveries render and send from the exports queue's workers.
    REPORT_SERVICE: ("postgres", "broker", "workers.exports"),
}


def required_by(service: str) -> tuple[str, ...]:
    return REQUIREMENTS[service]


@dataclass(frozen=True)
class Checks:
    postgres: bool
    redis: bool
    broker: bool
    # None until the first roll call (and while the broker is down): no worker is known to answer.
    roll_call: RollCall | None = None
    audit: bool = True
    dependencies: dict[str, bool] = field(init=False)

    def __post_init__(self) -> None:
        queues = self.roll_call.queues if self.roll_call is not None else frozenset()
        entries = {
            "postgres": self.postgres,
            "redis": self.redis,
            "broker": self.broker,
            "workers": bool(self.roll_call and self.roll_call.workers),
            **{f"workers.{queue}": queue in queues for queue in QUEUES},
        }
        object.__setattr__(self, "dependencies", entries)

    def serving(self, service: str) -> bool:
        return all(self.dependencies[need] for need in required_by(service))


class HealthMonitor:
    def __init__(self, app: App, servicer: HealthServicer) -> None:
        self._app = app
        self._servicer = servicer
        self._settings = app.settings
        self._probe = BrokerProbe(app.settings)
        self._postgres = PostgresProbe(app.settings.database_url, app.settings.health_probe_timeout_seconds)
        self._task: asyncio.Task[None] | None = None
        self._answered: RollCall | None = None  # the last roll call's own answers
        self.last: Checks | None = None

    async def start(self) -> None:
        """Sets the first statuses from the quick checks (so the server never answers UNKNOWN),
        then keeps them current in the background, roll call included."""
        await self._apply(await self._check(roll_call=False))
        self._task = asyncio.create_task(self._loop(), name="tessera-health")

    async def stop(self) -> None:
        """NOT_SERVING for everything, for good; then the checks stop."""
        await self._servicer.enter_graceful_shutdown()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._probe.close)
        await self._postgres.close()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._settings.health_interval_seconds
        next_start = loop.time()
        while True:
            try:
                await self._apply(await self._check(roll_call=True))
            except Exception:  # a bug in a check must not end the checks
                log.exception("health: check failed")
            # A fixed rate: the next check starts one interval after this one started.
            next_start = max(next_start + interval, loop.time())
            await asyncio.sleep(next_start - loop.time())

    async def _check(self, *, roll_call: bool) -> Checks:
        timeout = self._settings.health_probe_timeout_seconds
        postgres, redis, broker = await asyncio.gather(
            _answers("postgres", self._postgres.ping(), timeout),
            _answers("redis", self._app.redis.ping(), timeout),
            asyncio.to_thread(self._probe.reachable),
        )
        audit = self._app.audit.health().ok
        workers = self.last.roll_call if self.last is not None else None
        if not broker:
            workers = self._answered = None
        elif roll_call:
            # What the quick checks found is set now; the roll call waits for answers.
            await self._apply(Checks(postgres=postgres, redis=redis, broker=broker, roll_call=workers, audit=audit))
            try:
                answered = await asyncio.to_thread(self._probe.roll_call)
            except Exception as exc:
                log.warning("health: worker roll call failed: %r", exc)
                answered = None
            # A worker counts until it misses two roll calls in a row: one late answer from a
            # busy machine must not flip ExportService.
            workers = _union(self._answered, answered)
            self._answered = answered
        return Checks(postgres=postgres, redis=redis, broker=broker, roll_call=workers, audit=audit)

    async def _apply(self, checks: Checks) -> None:
        changed = self.last is None or self.last.dependencies != checks.dependencies
        if self.last is not None and self.last.audit != checks.audit:
            log.warning(
                "health: audit log %s",
                "writing" if checks.audit else "NOT writing every event (see the audit log lines)",
            )
        self.last = checks
        await self._servicer.set(AUDIT_ENTRY, SERVING if checks.audit else NOT_SERVING)
        for dependency, ok in checks.dependencies.items():
            await self._servicer.set(DEPENDENCY_PREFIX + dependency, SERVING if ok else NOT_SERVING)
        for service in REQUIREMENTS:
            await self._servicer.set(service, SERVING if checks.serving(service) else NOT_SERVING)
        if changed:
            log.info("health", extra={"dependencies": checks.dependencies})


def _union(previous: RollCall | None, current: RollCall | None) -> RollCall | None:
    if previous is None or current is None:
        return current
    return RollCall({**previous.workers, **current.workers})


async def _answers(name: str, ping: Awaitable[object], limit: float) -> bool:
    try:
        await asyncio.wait_for(ping, timeout=limit)
        return True
    except Exception:  # any failure means not serving; the reason is logged
        log.warning("health: %s unreachable", name, exc_info=True)
        return False
