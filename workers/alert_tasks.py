"""Celery tasks of alert rules: beat's claim of due rules (every minute) and the evaluation of one
rule (server/alerts/runner.py); both thin, and safe to run twice (a transition is claimed in the
database, a notification by its sender)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from server.alerts.runner import claim_due_rules, evaluate_rule
from server.app import WorkerRuntime
from server.broker.names import TASK_DUE_ALERTS, TASK_EVALUATE_ALERT
from workers import runtime
from workers.tasks import RETRYABLE, _retry

# Claimed per beat tick (each a row and a task); what is left is claimed by the next tick.
DUE_BATCH = 500


@shared_task(name=TASK_EVALUATE_ALERT, bind=True)
def evaluate_alert(self: Task[Any, Any], rule_id: str, now: str) -> int:
    """Evaluates one rule at `now` (ISO 8601, the claiming tick's clock); returns its state."""
    at = datetime.fromisoformat(now)

    async def work(rt: WorkerRuntime) -> int:
        return await evaluate_rule(rt.alerts, rule_id, at) or 0

    try:
        return runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)


@shared_task(name=TASK_DUE_ALERTS, bind=True)
def evaluate_due_alerts(self: Task[Any, Any], now: str | None = None) -> list[str]:
    """Beat, every minute: claims the rules due by `now` (ISO 8601; the wall clock when beat sends
    it) and fans their evaluations out."""
    at = datetime.fromisoformat(now) if now else datetime.now(UTC)

    async def work(rt: WorkerRuntime) -> list[str]:
        return await claim_due_rules(rt.core.db, at, DUE_BATCH)

    try:
        ids = runtime.run(work)
    except RETRYABLE as exc:
        _retry(self, exc)
    for rule_id in ids:
        evaluate_alert.apply_async(args=(rule_id, at.isoformat()))
    return ids
