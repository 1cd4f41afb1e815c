"""RabbitMQ SIGKILLed and restarted with jobs in flight, 20 trials (--full) or 3 (quick), run
only when named (`python -m bench --only broker_chaos`): jobs that succeeded, terminal states
written per job (must be 1), jobs queued again by the sweep, seconds from the restart until
every job had ended (tests/harness/broker_chaos.py)."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

import grpc

from bench.harness import Bench
from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from tests.harness.broker_chaos import restart_with_jobs_in_flight
from tests.harness.kit import Kit
from tests.harness.rabbitmq import PrivateRabbit
from tests.harness.server import start_in_thread
from tests.integration.test_jobs import jobs_settings, worker_env


def run(bench: Bench, full: bool) -> list[dict[str, Any]]:
    trials = 20 if full else 3
    folder = Path(tempfile.mkdtemp(prefix="tessera-rabbit-"))
    rabbit = PrivateRabbit(folder).start()
    settings = jobs_settings(bench.settings, rabbit.url)
    server = start_in_thread(settings)
    results = []
    try:
        with grpc.insecure_channel(server.address) as channel:
            for _ in range(trials):
                facility = f"chaos-{uuid.uuid4().hex[:8]}"
                kit = Kit(
                    query_pb2_grpc.QueryServiceStub(channel),
                    dashboard_pb2_grpc.DashboardServiceStub(channel),
                    widget_pb2_grpc.WidgetServiceStub(channel),
                    bench.metadata("editor", facility),
                    facility,
                )
                results.append(restart_with_jobs_in_flight(kit, rabbit, settings, worker_env(settings)))
    finally:
        server.stop()
        rabbit.stop()
        shutil.rmtree(folder, ignore_errors=True)
    recovery = [r.seconds_to_all_done for r in results]
    return [
        {
            "workload": "broker_chaos.rabbitmq_restart",
            "trials": trials,
            "trials_ok": sum(r.ok for r in results),
            "jobs": sum(r.jobs for r in results),
            "jobs_succeeded": sum(r.succeeded for r in results),
            "terminal_writes_per_job": sorted({n for r in results for n in r.terminal_writes}),
            "jobs_queued_again_by_the_sweep": sum(r.requeued for r in results),
            "recovery_s_p50": statistics.median(recovery),
            "recovery_s_max": max(recovery),
            "problems": [p for r in results for p in r.problems][:5],
        }
    ]
