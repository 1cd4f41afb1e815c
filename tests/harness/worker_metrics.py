"""Reading a test worker's /metrics (prometheus_client's own parser)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from workers.testing import WorkerProcess

__all__ = ["worker_sample"]


def worker_sample(worker: WorkerProcess, name: str, **labels: str) -> float:
    """The value of the sample `name` with exactly these labels (0 when absent). The worker must
    log at INFO (TESSERA_LOG_LEVEL) for its metrics port to be found."""
    port = worker.metrics_port
    assert port is not None, "the worker's metrics port is not in its log (TESSERA_LOG_LEVEL=INFO?)"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0
