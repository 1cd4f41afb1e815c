"""Queue depth as Prometheus metrics: not a process's value but the broker's, so a collector asks
the broker at scrape time (registered by both the server and the worker's main process)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.broker.names import QUEUES
from server.broker.probe import BrokerProbe

__all__ = ["QueueDepthCollector"]


class QueueDepthCollector(Collector):
    """`tessera_queue_depth{queue}` (messages waiting) and `tessera_broker_up`, read from the
    broker on every scrape."""

    def __init__(self, probe: BrokerProbe, queues: Iterable[str] = QUEUES) -> None:
        self._probe = probe
        self._queues = tuple(queues)

    def describe(self) -> Iterable[Metric]:
        return []  # values come from the broker at collect time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        answer = self._probe.depths(self._queues)
        up = GaugeMetricFamily("tessera_broker_up", "1 when the broker answered this scrape, else 0.")
        up.add_metric([], 1.0 if answer.reachable else 0.0)
        yield up
        if answer.reachable:
            depth = GaugeMetricFamily(
                "tessera_queue_depth", "Messages waiting in each Celery queue (not yet delivered).", labels=["queue"]
            )
            for queue, count in answer.depths.items():
                depth.add_metric([queue], float(count))
            yield depth
