"""Celery task names: shared by the server (which enqueues) and the workers (which register)."""

from __future__ import annotations

TASK_MATERIALIZE_DASHBOARD = "tessera.materialize.dashboard"
TASK_MATERIALIZE_WIDGET = "tessera.materialize.widget"
TASK_MATERIALIZE_WIDGETS = "tessera.materialize.widgets"
TASK_DUE_WIDGETS = "tessera.materialize.due_widgets"
TASK_REFRESH_VIEWS = "tessera.maintenance.refresh_materialized_views"
TASK_CLEANUP = "tessera.maintenance.cleanup"
TASK_EXPORT = "tessera.export.render"
TASK_EXPIRE_EXPORTS = "tessera.maintenance.expire_exports"
TASK_REQUEUE_LOST = "tessera.maintenance.requeue_lost_jobs"
# Report subscriptions: delivering renders with Chromium, so it runs where exports run.
TASK_DELIVER_REPORT = "tessera.export.deliver_report"
TASK_DUE_REPORTS = "tessera.maintenance.due_reports"
# Alert rules: evaluating reads widget data, as materialization does.
TASK_EVALUATE_ALERT = "tessera.materialize.evaluate_alert"
TASK_DUE_ALERTS = "tessera.maintenance.due_alerts"
QUEUE_MATERIALIZE = "materialize"
QUEUE_EXPORTS = "exports"
QUEUES = ("materialize", "exports", "maintenance")
KIND_MATERIALIZE = "materialize"
