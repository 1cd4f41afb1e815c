"""The Celery application: Redis broker by default (RabbitMQ through BROKER_URL), three queues,
late acks so a task whose worker dies is delivered again, and engines created after fork."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown
from kombu import Exchange, Queue

from server.config import Settings
from workers import resources

QUEUES = ("materialize", "exports", "maintenance")


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
        # Redis broker: a task unacknowledged this long is delivered again.
        broker_transport_options={"visibility_timeout": 3600},
        beat_schedule={
            "cleanup-idempotency-keys": {
                "task": "tessera.maintenance.cleanup_idempotency_keys",
                "schedule": timedelta(hours=24),
            },
        },
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
