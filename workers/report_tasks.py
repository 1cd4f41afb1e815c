"""Celery tasks of report subscriptions: beat's claim of due subscriptions (every minute) and the
delivery of one report (render as the owner, then e-mail and webhooks); both thin, like
workers/tasks.py, and safe to run twice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from server.app import WorkerRuntime
from server.broker.names import TASK_DELIVER_REPORT, TASK_DUE_REPORTS
from server.reports.claims import claim_due, open_deliveries
from server.reports.deliver import run_delivery
from workers import runtime
from workers.tasks import RETRYABLE, _retry

# Claimed per beat tick (each a row and a task); what is left is claimed by the next tick.
DUE_BATCH = 500


@shared_task(name=TASK_DELIVER_REPORT, bind=True)
def deliver_report(self: Task[Any, Any], delivery_id: str) -> int:
    """Renders and sends one delivery (or resumes it); returns its final state (0: not here)."""
    final = self.request.retries >= runtime.settings.task_max_retries

    async def work(rt: WorkerRuntime) -> int:
        delivery = await run_delivery(rt.reports, delivery_id, final_attempt=final)
        return int(delivery.state) if delivery is not None else 0

    try:
        return runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


@shared_task(name=TASK_DUE_REPORTS, bind=True)
def deliver_due_reports(self: Task[Any, Any], now: str | None = None) -> list[str]:
    """Beat, every minute: claims the due times that came by `now` (an ISO 8601 time; the
    wall clock when beat sends it) and hands their deliveries, and any left open, to workers."""
    at = datetime.fromisoformat(now) if now else datetime.now(UTC)

    async def work(rt: WorkerRuntime) -> list[str]:
        made = await claim_due(rt.core.db, at, DUE_BATCH)
        return made + [i for i in await open_deliveries(rt.core.db, DUE_BATCH) if i not in made]

    try:
        ids = runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)
    for delivery_id in ids:
        deliver_report.apply_async(args=(delivery_id,))
    return ids
