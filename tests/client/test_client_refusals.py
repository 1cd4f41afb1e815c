"""Refusals (RESOURCE_EXHAUSTED with SERVER_OVERLOADED or RATE_LIMITED) against scripted servers:
the server answers them before any handler runs, so the client sends every rpc again, UNSAFE
ones included, after the RetryInfo delay plus jitter, within max_attempts; a stream is opened
again only when refused before its first message. Sleeps are recorded, not slept."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import widget_pb2 as w
from tessera_client import (
    ApiError,
    AsyncClient,
    Client,
    ResourceExhaustedError,
    RetryPolicy,
    UnavailableError,
    rpcs,
)
from tests.client.scripted import ScriptedServer, error_info, fail, retry_info

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
# Top of the jitter range, so each recorded delay is the advice plus the cap (0.1, 0.2, 0.4 ...).
TOP = RetryPolicy(max_attempts=4, initial_backoff=0.1, max_backoff=1.0, random=lambda: 1.0)


class Refusing(dashboard_pb2_grpc.DashboardServiceServicer):
    """Refuses the first `refusals` calls with `reason` and `advice` seconds of RetryInfo."""

    def __init__(self, refusals: int, reason: str = "RATE_LIMITED", advice: float = 0.5) -> None:
        self.refusals, self.reason, self.advice = refusals, reason, advice
        self.calls: list[str] = []
        self.applied: list[str] = []
        self.lock = threading.Lock()

    def _refuse_or_pass(self, name: str, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls.append(name)
            refused = len(self.calls) <= self.refusals
        if refused:
            fail(context, EXHAUSTED, "scripted refusal", error_info(self.reason), retry_info(self.advice))

    def UpdateDashboard(self, request: d.UpdateDashboardRequest, context: grpc.ServicerContext) -> d.Dashboard:
        self._refuse_or_pass("UpdateDashboard", context)
        self.applied.append(request.dashboard.title)
        return request.dashboard

    def DeleteDashboard(self, request: d.DeleteDashboardRequest, context: grpc.ServicerContext) -> Any:
        self._refuse_or_pass("DeleteDashboard", context)
        self.applied.append(request.id)
        return empty_pb2.Empty()


def test_an_update_refused_by_the_rate_limit_is_retried_after_the_advice(retried: list[Any]) -> None:
    servicer = Refusing(refusals=2, advice=0.5)
    sleeps: list[float] = []
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server,
        Client(server.address, token="t", retry=TOP, sleep=sleeps.append, on_retry=on_retry(retried)) as client,
    ):
        board = client.dashboards.update(d.Dashboard(id="x", title="once", etag="e1"), ["title"])
    assert board.title == "once" and servicer.applied == ["once"], "applied exactly once"
    assert servicer.calls == ["UpdateDashboard"] * 3
    assert sleeps == pytest.approx([0.5 + 0.1, 0.5 + 0.2]), "the advice, then the jitter above it"
    assert [(m, r) for m, r, _ in retried] == [("/dashboard.v1.DashboardService/UpdateDashboard", "RATE_LIMITED")] * 2


def test_a_delete_refused_by_load_shedding_is_retried_and_attempts_stay_bounded(retried: list[Any]) -> None:
    overloaded = Refusing(refusals=1, reason="SERVER_OVERLOADED", advice=0.05)
    sleeps: list[float] = []
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, overloaded)) as server,
        Client(server.address, token="t", retry=TOP, sleep=sleeps.append) as client,
    ):
        client.dashboards.delete("b-1", etag="e1")
        assert overloaded.applied == ["b-1"] and sleeps == pytest.approx([0.15])
        overloaded.calls.clear()
        overloaded.refusals = 100
        with pytest.raises(ResourceExhaustedError) as caught:
            client.dashboards.delete("b-2", etag="e1")
    assert caught.value.reason == "SERVER_OVERLOADED"
    assert len(overloaded.calls) == TOP.max_attempts and overloaded.applied == ["b-1"]


def test_other_resource_exhausted_errors_still_end_an_unsafe_call() -> None:
    busy = Refusing(refusals=1, reason="DATA_SOURCE_BUSY")
    sleeps: list[float] = []
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, busy)) as server,
        Client(server.address, token="t", retry=TOP, sleep=sleeps.append) as client,
        pytest.raises(ResourceExhaustedError),
    ):
        client.dashboards.update(d.Dashboard(id="x", title="t"), ["title"])
    assert busy.calls == ["UpdateDashboard"] and sleeps == []


def test_a_refusal_is_not_retried_past_the_deadline() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    slow = Refusing(refusals=100, advice=6.0)
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, slow)) as server,
        Client(server.address, token="t", retry=TOP, timeout=10, sleep=sleep, clock=lambda: now[0]) as client,
        pytest.raises(ResourceExhaustedError),
    ):
        client.dashboards.update(d.Dashboard(id="x", title="t"), ["title"])
    assert sleeps == pytest.approx([6.1]), "6.2 more would pass the 10-s deadline"


# --- streams -----------------------------------------------------------------------------------


def job(revision: int, state: int = c.JOB_STATE_RUNNING) -> w.MaterializationJob:
    return w.MaterializationJob(id="j", state=state, revision=revision)


class RefusedWatch(widget_pb2_grpc.WidgetServiceServicer):
    """Refuses the first `refusals` watches before any message, then streams two events and
    ends with `ending` ("end", or "busy": a non-refusal RESOURCE_EXHAUSTED after a message)."""

    def __init__(self, refusals: int, ending: str = "end") -> None:
        self.refusals, self.ending = refusals, ending
        self.opened = 0

    def WatchMaterializationJob(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.opened += 1
        if self.opened <= self.refusals:
            fail(context, EXHAUSTED, "too many calls", error_info("RATE_LIMITED"), retry_info(0.25))
        yield w.WatchMaterializationJobResponse(job=job(1))
        if self.ending == "refused-late":
            fail(context, EXHAUSTED, "late", error_info("RATE_LIMITED"), retry_info(0.25))
        yield w.WatchMaterializationJobResponse(job=job(2, c.JOB_STATE_SUCCEEDED))

    def GetMaterializationJob(self, request: Any, context: grpc.ServicerContext) -> w.MaterializationJob:
        return job(2, c.JOB_STATE_SUCCEEDED)


def _watch_request() -> w.WatchMaterializationJobRequest:
    return w.WatchMaterializationJobRequest(id="j")


def test_a_stream_refused_before_its_first_message_is_opened_again(retried: list[Any]) -> None:
    servicer = RefusedWatch(refusals=2)
    sleeps: list[float] = []
    with (
        ScriptedServer((widget_pb2_grpc.add_WidgetServiceServicer_to_server, servicer)) as server,
        Client(server.address, token="t", retry=TOP, sleep=sleeps.append, on_retry=on_retry(retried)) as client,
    ):
        revisions = [e.job.revision for e in client.stream(rpcs.WATCH_MATERIALIZATION_JOB, _watch_request())]
        assert revisions == [1, 2] and servicer.opened == 3
        assert sleeps == pytest.approx([0.35, 0.45])
        assert len(retried) == 2
    # A failure after a message is the caller's to resume (see follow): never opened again here.
    late = RefusedWatch(refusals=0, ending="refused-late")
    seen: list[int] = []
    with (
        ScriptedServer((widget_pb2_grpc.add_WidgetServiceServicer_to_server, late)) as other,
        Client(other.address, token="t", retry=TOP, sleep=sleeps.append) as second,
        pytest.raises(ResourceExhaustedError),
    ):
        for event in second.stream(rpcs.WATCH_MATERIALIZATION_JOB, _watch_request()):
            seen.append(event.job.revision)
    assert seen == [1] and late.opened == 1


def test_a_refused_job_watch_waits_for_the_advice_before_reopening() -> None:
    servicer = RefusedWatch(refusals=1)
    sleeps: list[float] = []
    with (
        ScriptedServer((widget_pb2_grpc.add_WidgetServiceServicer_to_server, servicer)) as server,
        Client(server.address, token="t", retry=TOP, sleep=sleeps.append) as client,
    ):
        final = client.widgets.wait_job("j")
    assert final.state == c.JOB_STATE_SUCCEEDED and sleeps == pytest.approx([0.35])


def test_the_async_client_retries_refused_updates_and_streams() -> None:
    refusing = Refusing(refusals=1, advice=0.5)
    watch = RefusedWatch(refusals=1)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def scenario() -> tuple[d.Dashboard, list[int]]:
        async with AsyncClient(server.address, token="t", retry=TOP, sleep=sleep) as client:
            board = await client.call(
                rpcs.UPDATE_DASHBOARD, d.UpdateDashboardRequest(dashboard=d.Dashboard(id="x", title="a"))
            )
            revisions = [e.job.revision async for e in client.stream(rpcs.WATCH_MATERIALIZATION_JOB, _watch_request())]
            return board, revisions

    with ScriptedServer(
        (dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, refusing),
        (widget_pb2_grpc.add_WidgetServiceServicer_to_server, watch),
    ) as server:
        board, revisions = asyncio.run(scenario())
    assert board.title == "a" and refusing.applied == ["a"] and len(refusing.calls) == 2
    assert revisions == [1, 2] and watch.opened == 2
    assert sleeps == pytest.approx([0.6, 0.35])


def test_unavailable_still_ends_an_unsafe_call() -> None:
    class Down(Refusing):
        def UpdateDashboard(self, request: d.UpdateDashboardRequest, context: grpc.ServicerContext) -> d.Dashboard:
            self.calls.append("UpdateDashboard")
            return fail(context, grpc.StatusCode.UNAVAILABLE, "down", error_info("SERVER_OVERLOADED"))  # type: ignore[no-any-return]

    down = Down(refusals=0)
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, down)) as server,
        Client(server.address, token="t", retry=TOP, sleep=lambda s: None) as client,
        pytest.raises(UnavailableError),
    ):
        client.dashboards.update(d.Dashboard(id="x", title="t"), ["title"])
    assert down.calls == ["UpdateDashboard"], "only RESOURCE_EXHAUSTED with the reason is a refusal"


@pytest.fixture
def retried() -> list[Any]:
    return []


def on_retry(seen: list[Any]) -> Any:
    def record(method: str, error: ApiError, delay: float) -> None:
        seen.append((method, error.reason, delay))

    return record
