"""The standard gRPC health service, fed by background checks of the dependencies.

Every `health_interval_seconds` the monitor checks PostgreSQL, Redis, the broker and which
workers answer (a Celery roll call, waiting at most `health_probe_timeout_seconds`), and sets
the statuses; a probe's Check or Watch reads the last result and never waits on a dependency.
Checks start at a fixed rate (a slow check does not push the next one back), PostgreSQL is asked
on a fresh connection (server/db/probe.py; a pooled one when a new connection cannot be made in
time, which a saturated machine's PostgreSQL can take seconds to accept), and the quick checks'
statuses are set before the roll call is waited for, so a dependency's change shows within one
interval plus one round trip.
A check that fails or times out marks the dependency unreachable, except a timeout while this
process's own loop had no idle time (`Verdicts`): a saturated server may simply not have got round
to the answer, so the previous status stands, for at most two checks in a row.

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
from server.event_loop import idle_seconds

__all__ = [
    "AUDIT_ENTRY",
    "DEPENDENCY_PREFIX",
    "REQUIREMENTS",
    "SERVICE_NAMES",
    "Checks",
    "HealthMonitor",
    "Verdicts",
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
        self._verdicts = Verdicts(app.settings.health_probe_timeout_seconds)
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
        loop = asyncio.get_running_loop()
        began, idle_before = loop.time(), idle_seconds(loop)
        postgres_answer, redis_answer, broker_answer = await asyncio.gather(
            _answers("postgres", self._ping_postgres(timeout), 2 * timeout),
            _answers("redis", self._app.redis.ping(), timeout),
            asyncio.to_thread(self._probe.answers),
        )
        idle_after = idle_seconds(loop)
        saturated = (
            idle_before is not None
            and idle_after is not None
            and idle_after - idle_before < SATURATED_IDLE_SHARE * (loop.time() - began)
        )
        previous = self.last.dependencies if self.last is not None else {}
        postgres = self._verdicts.settle("postgres", postgres_answer, saturated, previous.get("postgres"))
        if postgres and previous.get("postgres") is False:
            self._app.audit.retry_now()  # its writes failed while PostgreSQL was away
        redis = self._verdicts.settle("redis", redis_answer, saturated, previous.get("redis"))
        broker = self._verdicts.settle("broker", broker_answer, saturated, previous.get("broker"))
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

    async def _ping_postgres(self, limit: float) -> None:
        """A fresh connection answers SELECT 1 (what PostgreSQL is now, restarts included), or,
        when it cannot connect in time, a pooled one does: on a saturated machine a new
        connection took up to 4 s (p50 122 ms) while every pooled one answered at once."""
        try:
            async with asyncio.timeout(limit):
                await self._postgres.ping()
        except TimeoutError:
            async with asyncio.timeout(limit):
                await self._app.db.ping()

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


# A check that timed out while this process's loop sat idle for less than this share of the
# check's time says nothing about the dependency: the loop itself may not have got round to the
# answer (a saturated server's probe timed out about twice a minute with PostgreSQL healthy).
SATURATED_IDLE_SHARE = 0.05
# At most this many such timeouts in a row keep the previous status: a dependency that hangs
# while the server is saturated is still reported, a few intervals later.
INCONCLUSIVE_LIMIT = 2


async def _answers(name: str, ping: Awaitable[object], limit: float) -> bool | None:
    """True when the dependency answered, False when it failed, None when it did not answer
    within `limit` seconds."""
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that lands
        # as the ping answers, and stop() then waited for a monitor that went on checking.
        async with asyncio.timeout(limit):
            await ping
        return True
    except TimeoutError:
        return None
    except Exception as exc:  # any failure means not serving; the reason is logged, briefly
        log.warning("health: %s unreachable: %r", name, exc)
        return False


class Verdicts:
    """Each dependency's status from its check's answer (`_answers`). A timeout counts as
    unreachable, except while this process's own loop was saturated: then it keeps the previous
    status, at most INCONCLUSIVE_LIMIT checks in a row."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._inconclusive: dict[str, int] = {}

    def settle(self, name: str, answer: bool | None, saturated: bool, previous: bool | None) -> bool:
        if answer is not None:
            self._inconclusive[name] = 0
            return answer
        strikes = self._inconclusive.get(name, 0)
        if saturated and previous is not None and strikes < INCONCLUSIVE_LIMIT:
            self._inconclusive[name] = strikes + 1
            log.info(
                "health: %s did not answer within %g s while this process had no idle time: not counted",
                name,
                self._timeout,
            )
            return previous
        self._inconclusive[name] = 0
        log.warning("health: %s unreachable: no answer within %g s", name, self._timeout)
        return False
