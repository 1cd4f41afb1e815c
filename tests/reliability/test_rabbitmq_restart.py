"""RabbitMQ SIGKILLed and restarted with jobs in flight (one running, the others queued): no job
lost, none done twice (tests/harness/broker_chaos.py). One trial here; twenty in
`python -m bench --only broker_chaos`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from dashboard.v1 import dashboard_pb2_grpc, query_pb2_grpc, widget_pb2_grpc
from server.config import Settings
from tests.harness.broker_chaos import restart_with_jobs_in_flight
from tests.harness.kit import Kit
from tests.harness.rabbitmq import PrivateRabbit
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_jobs import jobs_settings, worker_env


@pytest.fixture(scope="module")
def rabbit(rabbitmq_node: PrivateRabbit) -> PrivateRabbit:
    return rabbitmq_node  # the session's own node: killing it disturbs nobody else


@pytest.fixture(scope="module")
def on_rabbit(settings: Settings, migrated: str, rabbit: PrivateRabbit) -> Iterator[tuple[Settings, ServerHandle]]:
    own = jobs_settings(settings, rabbit.url)
    handle = start_in_thread(own)
    yield own, handle
    handle.stop()


@pytest.mark.slow
def test_no_job_lost_and_none_done_twice_across_a_broker_restart(
    on_rabbit: tuple[Settings, ServerHandle], rabbit: PrivateRabbit, auth: Any, facility: str
) -> None:
    settings, server = on_rabbit
    with grpc.insecure_channel(server.address) as channel:
        kit = Kit(
            query_pb2_grpc.QueryServiceStub(channel),
            dashboard_pb2_grpc.DashboardServiceStub(channel),
            widget_pb2_grpc.WidgetServiceStub(channel),
            auth("rabbit", "editor", facility),
            facility,
        )
        result = restart_with_jobs_in_flight(kit, rabbit, settings, worker_env(settings), jobs=3)
    assert result.ok, result
