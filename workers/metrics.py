"""The workers' Prometheus metrics and their HTTP endpoint.

A Celery prefork worker is a main process and several children that run the tasks, so the
children's observations must reach the main process, which serves /metrics. prometheus_client's
multiprocess mode does that: `enable_multiprocess()` (in the main process, before the pool forks)
points PROMETHEUS_MULTIPROC_DIR at a fresh directory of this worker, every metric value created
afterwards lives in a per-process mmap file there, and the endpoint aggregates the files
(MultiProcessCollector). Counters and histograms of children that exit (or are replaced) keep
counting. The directory is removed when the worker shuts down.

Queue depth is not a process's value but the broker's: its collector (server/broker/queue_metrics.py)
asks the broker at scrape time.

`observe_export(format, outcome, seconds)` is what the export task calls once per export;
`observe_delivery`, `observe_alert_evaluation` and `observe_alert_transition` are handed to the
report and alert domains by the composition root (server/app.py: build_worker_runtime).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

from server.broker.probe import BrokerProbe
from server.broker.queue_metrics import QueueDepthCollector
from server.metrics import Exporter, serve_registry

__all__ = [
    "EXPORT_OUTCOMES",
    "WorkerMetricsEndpoint",
    "observe_alert_evaluation",
    "observe_alert_transition",
    "observe_delivery",
    "observe_export",
    "observe_widget_refresh",
    "task_finished",
    "task_retried",
    "task_started",
]

log = logging.getLogger("tessera.metrics")

# Seconds: tasks range from a cache warm-up to a multi-page PDF.
TASK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
EXPORT_OUTCOMES = frozenset({"succeeded", "failed", "cancelled"})

# Definitions only: in multiprocess mode the values live in files and this registry is not what
# the endpoint serves; without it (an in-process test worker) it is.
REGISTRY = CollectorRegistry()

TASK_DURATION = Histogram(
    "tessera_task_duration_seconds",
    "Celery task run time by task name and outcome (the task state: success, failure, retry, ...).",
    ("task", "outcome"),
    buckets=TASK_BUCKETS,
    registry=REGISTRY,
)
TASK_RETRIES = Counter(
    "tessera_task_retries",
    "Task runs that ended asking for a retry (a dependency was unavailable), by task name.",
    ("task",),
    registry=REGISTRY,
)
WIDGET_REFRESH = Histogram(
    "tessera_widget_refresh_duration_seconds",
    "Materializing one widget's data into the cache (both masking levels), by outcome (ok, error).",
    ("outcome",),
    buckets=TASK_BUCKETS,
    registry=REGISTRY,
)
EXPORT_DURATION = Histogram(
    "tessera_export_duration_seconds",
    "Exports from start to stored file (or failure), by format and outcome (succeeded, failed, cancelled).",
    ("format", "outcome"),
    buckets=TASK_BUCKETS,
    registry=REGISTRY,
)

DELIVERIES = Counter(
    "tessera_notification_deliveries",
    "Report and alert deliveries to one recipient, by channel (email, webhook) and outcome (delivered, failed).",
    ("channel", "outcome"),
    registry=REGISTRY,
)
DELIVERY_DURATION = Histogram(
    "tessera_notification_delivery_duration_seconds",
    "One recipient's delivery over all its attempts (backoff included), by channel and outcome.",
    ("channel", "outcome"),
    buckets=TASK_BUCKETS,
    registry=REGISTRY,
)
ALERT_EVALUATIONS = Counter(
    "tessera_alert_evaluations",
    "Alert rule evaluations by outcome: ok (the condition does not hold), holds, error (the read or"
    " reduction failed), superseded (the rule changed under the evaluation).",
    ("outcome",),
    registry=REGISTRY,
)
ALERT_TRANSITIONS = Counter(
    "tessera_alert_transitions",
    "Alert state changes by the state moved to (ok, pending, firing, resolved, error).",
    ("state",),
    registry=REGISTRY,
)

# task id -> perf_counter at start; a prefork child runs one task at a time, threads several.
_started: dict[str, float] = {}


def task_started(task_id: str) -> None:
    _started[task_id] = time.perf_counter()


def task_finished(task_id: str, task_name: str, state: str | None) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        TASK_DURATION.labels(task_name, (state or "unknown").lower()).observe(time.perf_counter() - started)


def task_retried(task_name: str) -> None:
    TASK_RETRIES.labels(task_name).inc()


def observe_export(format: str, outcome: str, seconds: float) -> None:
    """Records one export: `format` as the job names it (e.g. "pdf", "png"), `outcome` one of
    EXPORT_OUTCOMES, `seconds` from the task's start to the file stored (or the failure)."""
    if not format:
        raise ValueError("format: must not be empty")
    if outcome not in EXPORT_OUTCOMES:
        raise ValueError(f"outcome: must be one of {sorted(EXPORT_OUTCOMES)}, not {outcome!r}")
    if seconds < 0:
        raise ValueError(f"seconds: must not be negative, not {seconds}")
    EXPORT_DURATION.labels(format.lower(), outcome).observe(seconds)


def observe_widget_refresh(outcome: str, seconds: float) -> None:
    """The materializer warmed one widget (`outcome` ok or error) in `seconds`."""
    WIDGET_REFRESH.labels(outcome).observe(seconds)


def observe_delivery(channel: str, delivered: bool, seconds: float) -> None:
    """One recipient's delivery (`channel` email or webhook) took `seconds` over all attempts."""
    outcome = "delivered" if delivered else "failed"
    DELIVERIES.labels(channel, outcome).inc()
    DELIVERY_DURATION.labels(channel, outcome).observe(seconds)


def observe_alert_evaluation(outcome: str) -> None:
    ALERT_EVALUATIONS.labels(outcome).inc()


def observe_alert_transition(state: str) -> None:
    ALERT_TRANSITIONS.labels(state).inc()


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class WorkerMetricsEndpoint:
    """The worker main process's side: the multiprocess directory and the HTTP endpoint."""

    def __init__(self) -> None:
        self._own_dir: str | None = None
        self._exporter: Exporter | None = None

    @property
    def port(self) -> int | None:
        return self._exporter.port if self._exporter is not None else None

    def enable_multiprocess(self) -> None:
        """Call before the pool forks. An operator's PROMETHEUS_MULTIPROC_DIR is used (emptied
        first: files of an earlier run would be counted again); otherwise a temp dir of our own."""
        configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if configured:
            os.makedirs(configured, exist_ok=True)
            for name in os.listdir(configured):
                if name.endswith(".db"):
                    os.remove(os.path.join(configured, name))
        else:
            self._own_dir = tempfile.mkdtemp(prefix="tessera-worker-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = self._own_dir
        # prometheus_client picks its value class from the environment at import time, which
        # happened before we knew this process is a worker: pick again. Values created from now
        # on (all of ours are per label set, created at first use) go to the directory.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

    def start(self, port: int, host: str, probe: BrokerProbe) -> None:
        registry = CollectorRegistry()
        if multiprocess_enabled():
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = REGISTRY
        registry.register(QueueDepthCollector(probe))
        self._exporter = serve_registry(registry, port, host, what="worker metrics")

    def close(self) -> None:
        if self._exporter is not None:
            self._exporter.stop()
            self._exporter = None
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == self._own_dir:
                del os.environ["PROMETHEUS_MULTIPROC_DIR"]
            self._own_dir = None
