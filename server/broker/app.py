"""The Celery app factory: queues, routes, late acks and the beat schedule, from one Settings.

The server builds it to enqueue, the broker probe to call the roll, and the worker to consume (the
worker names its task modules through `include`; this layer imports no task)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import before_task_publish
from kombu import Exchange, Queue

from server import logs
from server.broker.names import (
    QUEUES,
    TASK_CLEANUP,
    TASK_DUE_ALERTS,
    TASK_DUE_REPORTS,
    TASK_DUE_WIDGETS,
    TASK_EXPIRE_EXPORTS,
    TASK_REFRESH_VIEWS,
    TASK_REQUEUE_LOST,
)
from server.config import Settings

__all__ = ["DEFAULT_BROKER_URL", "beat_schedule", "broker_transport_options", "broker_url", "make_celery"]

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


def broker_url(settings: Settings) -> str:
    return settings.effective_broker_url or DEFAULT_BROKER_URL


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Redis broker: a task unacknowledged for the visibility timeout (its whole worker died) is
    delivered again; the sweep that finds it runs every restore interval (throttle 1: exactly
    that); every key carries the configured prefix. Other transports ignore these options."""
    options: dict[str, Any] = {
        "visibility_timeout": settings.broker_visibility_timeout_seconds,
        "unacked_restore_interval": settings.broker_restore_interval_seconds,
        "unacked_restore_throttle": 1,
    }
    if settings.broker_key_prefix:
        options["global_keyprefix"] = settings.broker_key_prefix
    return options


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {
        # Every minute; a run that waited longer than its period is dropped (the next one covers it).
        "materialize-due-widgets": {
            "task": TASK_DUE_WIDGETS,
            "schedule": crontab(),
            "options": {"expires": 55},
        },
        # Every minute: report subscriptions whose due time came (claimed once in the database).
        "deliver-due-reports": {
            "task": TASK_DUE_REPORTS,
            "schedule": crontab(),
            "options": {"expires": 55},
        },
        # Every minute: alert rules whose evaluation is due (each claimed once, SKIP LOCKED).
        "evaluate-due-alerts": {
            "task": TASK_DUE_ALERTS,
            "schedule": crontab(),
            "options": {"expires": 55},
        },
        "refresh-materialized-views": {
            "task": TASK_REFRESH_VIEWS,
            "schedule": crontab(minute=0),
            "options": {"expires": 3000},
        },
        "expire-exports": {
            "task": TASK_EXPIRE_EXPORTS,
            "schedule": crontab(minute=15),
            "options": {"expires": 3000},
        },
        # Jobs whose message was lost are sent again (server/jobs/sweep.py).
        "requeue-lost-jobs": {
            "task": TASK_REQUEUE_LOST,
            "schedule": crontab(),
            "options": {"expires": 55},
        },
        "cleanup": {
            "task": TASK_CLEANUP,
            "schedule": crontab(minute=30, hour=3),
        },
    }


@before_task_publish.connect
def _stamp_correlation_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # Every enqueue, from an rpc of the server or from a task of a worker, carries the caller's
    # correlation id into the task's headers (the worker reads it back: workers/celery_app.py).
    # Connected here, where every publisher's app is made: the server never imports the worker.
    logs.stamp_headers(headers)


def make_celery(settings: Settings, include: Sequence[str] = ()) -> Celery:
    """A Celery app on the broker the settings name; `include`: task modules a worker registers."""
    app = Celery("tessera", broker=broker_url(settings), include=list(include))
    app.conf.update(
        # One direct exchange per queue, so each queue is reachable by its own name on Redis and
        # RabbitMQ alike.
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        task_default_queue="maintenance",
        task_default_exchange="maintenance",
        task_default_routing_key="maintenance",
        task_routes={
            "tessera.materialize.*": {"queue": "materialize"},
            "tessera.export.*": {"queue": "exports"},
            "tessera.maintenance.*": {"queue": "maintenance"},
        },
        # A task is acknowledged after it ran, so a worker lost mid-task means re-delivery;
        # tasks are idempotent (keyed by job id) to make that safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_transport_options(settings),
        beat_schedule=beat_schedule(),
        timezone="UTC",
    )
    return app
