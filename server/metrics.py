"""Every Prometheus metric of the server, in one place.

Each App owns a `Metrics` with its own CollectorRegistry (several servers in one process, as in
the tests, then count separately); `start_exporter` serves that registry over HTTP. A server of
several processes (server/processes.py) runs in prometheus_client's multiprocess mode: values
live in files and the parent's endpoint adds them up.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("tessera.metrics")

# Seconds; rpcs range from sub-millisecond cache hits to long-running queries.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# Widget-data sources a read can be served from (the DataSource enum, lower-cased).
CACHE_TIERS = ("memory", "database", "computed", "stale")


class Metrics:
    """The server's metrics, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.rpc_duration = Histogram(
            "tessera_rpc_duration_seconds",
            "Duration of gRPC calls by full method name and status code.",
            ("method", "code"),
            buckets=RPC_BUCKETS,
            registry=self.registry,
        )
        self.query_source = Histogram(
            "tessera_query_source_seconds",
            "Time user queries (RunQuery, widget data) spent at the data source: the one round trip "
            "carrying the settings, the query, its checks and the transaction's end. Against "
            "tessera_rpc_duration_seconds it shows what the server adds.",
            buckets=RPC_BUCKETS,
            registry=self.registry,
        )
        self.rpc_errors = Counter(
            "tessera_rpc_errors",
            "gRPC calls that ended with a status other than OK, by method and code.",
            ("method", "code"),
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "tessera_widget_cache_hits",
            "Widget-data reads answered by a cache tier (memory = Redis, database = tier 2, "
            "stale = an expired entry served while it is refreshed).",
            ("tier",),
            registry=self.registry,
        )
        self.db_reads = Counter(
            "tessera_db_reads",
            "Reads that may be slightly stale, by where they ran (replica or primary); only counted "
            "with a DATABASE_REPLICA_URL.",
            ("target",),
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "tessera_widget_cache_misses",
            "Widget-data lookups a cache tier could not answer (tier memory or database).",
            ("tier",),
            registry=self.registry,
        )
        self.widget_data_served = Counter(
            "tessera_widget_data_served",
            "Widget-data reads by the source that answered them: memory, database, computed, stale.",
            ("source",),
            registry=self.registry,
        )

        self.malformed_requests = Counter(
            "tessera_malformed_requests",
            "Calls refused because what they sent was not the rpc's request message (undecodable bytes; "
            "over HTTP also malformed JSON, a wrong media type, an oversized body, unknown fields or bad "
            "values; method '(unrouted)' for requests no binding matches), by method and transport.",
            ("method", "transport"),
            registry=self.registry,
        )
        self.audit_write_failures = Counter(
            "tessera_audit_write_failures",
            "Failed writes of audit events, by kind: unavailable (the database did not answer; "
            "retried with backoff) or rejected (a batch the database refused; split and retried).",
            ("kind",),
            registry=self.registry,
        )
        self.audit_dead_letters = Counter(
            "tessera_audit_dead_letters",
            "Audit events written to the dead-letter file instead of the audit log (see the log line "
            "for why): each needs an operator's attention.",
            registry=self.registry,
        )
        self.audit_pending = Gauge(
            "tessera_audit_pending_events",
            "Audit events buffered in the server's processes and not yet written.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.rpcs_in_flight = Gauge(
            "tessera_rpcs_in_flight",
            "Unary calls running now (past the load-shedding cap a new one is refused, so this stays "
            "at or under TESSERA_MAX_IN_FLIGHT_RPCS per process).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.rpcs_shed = Counter(
            "tessera_rpcs_shed",
            "Unary calls refused by load shedding (RESOURCE_EXHAUSTED, SERVER_OVERLOADED), by why: "
            "in_flight (the cap) or saturated (the event loop had no idle time).",
            ("why",),
            registry=self.registry,
        )
        self.shed_share = Gauge(
            "tessera_shed_share",
            "Share of new unary calls the process refuses now because its event loop is saturated "
            "(the highest of the processes).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.rate_limited = Counter(
            "tessera_rate_limited",
            "Calls refused with RATE_LIMITED (a principal past TESSERA_RATE_LIMIT_PER_PRINCIPAL), by method.",
            ("method",),
            registry=self.registry,
        )
        self.rate_limit_fallbacks = Counter(
            "tessera_rate_limit_fallbacks",
            "Rate-limit checks made in the process's own buckets because Redis failed (the budget is "
            "then per process until Redis answers again).",
            registry=self.registry,
        )
        # Which process answered: with several processes on one port (server/processes.py) the
        # kernel spreads connections across them, and this shows how.
        self.process_rpcs = Counter(
            "tessera_process_rpcs",
            "Calls answered, by the server process (pid) that answered them.",
            ("pid",),
            registry=self.registry,
        ).labels(str(os.getpid()))

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpc_duration.labels(method, code).observe(seconds)
        self.process_rpcs.inc()
        if code != "OK":
            self.rpc_errors.labels(method, code).inc()


@dataclass
class Exporter:
    """The HTTP endpoint serving /metrics."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_registry(registry: CollectorRegistry, port: int, host: str, what: str = "metrics") -> Exporter | None:
    """Serves `registry` on host:port (0: a free port; negative: disabled). A port that cannot
    be bound fails start-up loudly, like a taken gRPC port: silent loss of metrics is worse."""
    if port < 0:
        return None
    server, thread = start_http_server(port, addr=host, registry=registry)
    exporter = Exporter(server, thread)
    log.info("%s exported", what, extra={"address": f"{host}:{exporter.port}"})
    return exporter


def start_exporter(metrics: Metrics, port: int, host: str) -> Exporter | None:
    return serve_registry(metrics.registry, port, host)
