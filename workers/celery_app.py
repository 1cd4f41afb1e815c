"""The worker's Celery application: the broker layer's app (server/broker/app.py: queues, late
acks, beat schedule) with the tasks of workers/tasks.py, and the worker runtime created after
fork (workers/runtime.py).

Its signals also carry the operations side: structured logging in the worker (server/logs.py
instead of Celery's own), the correlation id from the task's headers (stamped by whoever
enqueued it: server/broker/app.py) back into the task's log context, the worker's metrics
(workers/metrics.py: task durations and outcomes, retries, the /metrics endpoint of the main
process) and tracing (server/tracing.py)."""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any

from celery import Celery, Task
from celery.signals import (
    celeryd_after_setup,
    setup_logging,
    task_postrun,
    task_prerun,
    task_retry,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from server import logs, tracing
from server.broker.app import make_celery
from server.broker.probe import BrokerProbe
from server.config import Settings
from workers import metrics, runtime

__all__ = ["TASK_MODULES", "celery_app", "make_worker_app"]

TASK_MODULES = ("workers.tasks", "workers.report_tasks", "workers.alert_tasks")

log = logging.getLogger("tessera.workers")


def make_worker_app(settings: Settings) -> Celery:
    """The broker layer's Celery app, with the worker's tasks registered."""
    return make_celery(settings, include=TASK_MODULES)


celery_app = make_worker_app(runtime.settings)


@worker_process_init.connect
def _init_process(**_: Any) -> None:
    # Engines and clients must not cross a fork: each worker process builds its own.
    runtime.reset()
    tracing.configure(runtime.settings, "tessera-worker")


@worker_process_shutdown.connect
def _shutdown_process(**_: Any) -> None:
    runtime.close()
    tracing.shutdown()


# --- logs and the correlation id ---------------------------------------------------------------


@setup_logging.connect
def _setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    # A receiver here stops Celery from installing its own handlers: the worker logs as the
    # server does. sys.__stderr__, because Celery may have redirected sys.stderr to a logger.
    settings = runtime.settings
    logs.configure(loglevel or settings.log_level, settings.json_logs, stream=sys.__stderr__)


# task id -> the token that restores the context after the task.
_correlation_tokens: dict[str, contextvars.Token[str]] = {}


@task_prerun.connect
def _task_started(task_id: str = "", task: Task[Any, Any] | None = None, **_: Any) -> None:
    incoming = getattr(task.request, logs.CORRELATION_HEADER, None) if task is not None else None
    # A task nobody correlated (beat) is correlated by its own id.
    _correlation_tokens[task_id] = logs.correlation_id.set(str(incoming or task_id))
    metrics.task_started(task_id)


@task_postrun.connect
def _task_finished(task_id: str = "", task: Task[Any, Any] | None = None, state: str | None = None, **_: Any) -> None:
    metrics.task_finished(task_id, task.name if task is not None else "unknown", state)
    token = _correlation_tokens.pop(task_id, None)
    if token is not None:
        logs.correlation_id.reset(token)


@task_retry.connect
def _task_retried(sender: Task[Any, Any] | None = None, **_: Any) -> None:
    metrics.task_retried(sender.name if sender is not None else "unknown")


# --- the worker's main process: metrics endpoint, tracing for pools without children ------------

_endpoint = metrics.WorkerMetricsEndpoint()


@celeryd_after_setup.connect
def _start_metrics(**_: Any) -> None:
    # Only a worker program (not an in-process test worker) serves metrics; its logging is set up
    # and its pool not yet forked.
    settings = runtime.settings
    if settings.worker_metrics_port < 0:
        return
    _endpoint.enable_multiprocess()
    try:
        _endpoint.start(settings.worker_metrics_port, settings.host, BrokerProbe(settings))
    except OSError as exc:
        # Celery only logs a receiver's exception: exit instead, like the server on a taken port.
        _endpoint.close()
        log.critical("worker metrics: cannot listen on %s:%s: %s", settings.host, settings.worker_metrics_port, exc)
        raise SystemExit(1) from exc


@worker_init.connect
def _init_worker(sender: Any = None, **_: Any) -> None:
    # Prefork children set up tracing after the fork; other pools run tasks in this process.
    pool = getattr(sender, "pool_cls", "prefork")
    if "prefork" not in (pool if isinstance(pool, str) else pool.__module__):
        tracing.configure(runtime.settings, "tessera-worker")


@worker_shutdown.connect
def _stop_metrics(**_: Any) -> None:
    _endpoint.close()
