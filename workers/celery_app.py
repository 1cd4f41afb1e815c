"""The Celery application: Redis broker by default (RabbitMQ through BROKER_URL), three queues,
late acks so a task whose worker dies is delivered again, and engines created after fork."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_process_init, worker_process_shutdown
from kombu import Exchange, Queue

from server.config import Settings
from server.jobs.names import QUEUES, TASK_CLEANUP, TASK_DUE_WIDGETS, TASK_EXPIRE_EXPORTS, TASK_REFRESH_VIEWS
from workers import resources

__all__ = ["QUEUES", "beat_schedule", "celery_app", "make_celery"]


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {
        # Every minute; a run that waited longer than its period is dropped (the next one covers it).
        "materialize-due-widgets": {
            "task": TASK_DUE_WIDGETS,
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
        "cleanup": {
            "task": TASK_CLEANUP,
            "schedule": crontab(minute=30, hour=3),
        },
    }


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    app = Celery("tessera", broker=settings.effective_broker_url or "redis://127.0.0.1:6379/0")
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
        # Redis broker: a task unacknowledged this long (its whole worker died) is delivered
        # again; the sweep that finds it runs every restore interval (throttle 1: exactly that).
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            "unacked_restore_interval": settings.broker_restore_interval_seconds,
            "unacked_restore_throttle": 1,
        },
        beat_schedule=beat_schedule(),
        timezone="UTC",
    )
    app.autodiscover_tasks(["workers"], related_name="tasks", force=True)
    return app


celery_app = make_celery()


@worker_process_init.connect
def _init_process(**_: Any) -> None:
    # Engines and clients must not cross a fork: each worker process builds its own.
    resources.reset()


@worker_process_shutdown.connect
def _shutdown_process(**_: Any) -> None:
    resources.close()
