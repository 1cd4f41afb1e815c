"""The client's retries, deadlines, token refresh, error details, resumable watches and verified
downloads against real gRPC servers scripted to fail on cue (the real Tessera server cannot be
made to answer UNAVAILABLE on exactly the second attempt). Sleeps are recorded, not slept."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, export_pb2_grpc, widget_pb2_grpc
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import widget_pb2 as w
from tessera_client import (
    AbortedError,
    AsyncClient,
    CachedToken,
    Client,
    DeadlineExceededError,
    DownloadVerificationError,
    InvalidArgumentError,
    NotFoundError,
    RetryPolicy,
    UnauthenticatedError,
    UnavailableError,
    rpcs,
)
from tessera_client.jobs import MATERIALIZATION
from tests.client.scripted import ScriptedServer, chunks, error_info, fail, metadata_of, retry_info

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
# Top of the jitter range, so the recorded delays are the caps.
FAST = RetryPolicy(max_attempts=5, initial_backoff=0.1, max_backoff=1.0, random=lambda: 1.0)


class Dashboards(dashboard_pb2_grpc.DashboardServiceServicer):
    """Fails the first `failures` calls of each method with `code`, then answers."""

    def __init__(self, failures: int = 0, code: grpc.StatusCode = UNAVAILABLE, reason: str = "DATABASE_UNAVAILABLE"):
        self.failures, self.code, self.reason = failures, code, reason
        self.calls: list[tuple[str, Any, dict[str, str], float | None]] = []
        self.advice: float | None = None
        self.lock = threading.Lock()

    def _record(self, name: str, request: Any, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls.append((name, request, metadata_of(context), context.time_remaining()))
            failing = len([call for call in self.calls if call[0] == name]) <= self.failures
        if failing:
            extra = [retry_info(self.advice)] if self.advice is not None else []
            fail(context, self.code, f"scripted {self.code.name}", error_info(self.reason), *extra)

    def CreateDashboard(self, request: d.CreateDashboardRequest, context: grpc.ServicerContext) -> d.Dashboard:
        self._record("CreateDashboard", request, context)
        return d.Dashboard(id="b-1", title=request.dashboard.title)

    def GetDashboard(self, request: d.GetDashboardRequest, context: grpc.ServicerContext) -> d.Dashboard:
        self._record("GetDashboard", request, context)
        return d.Dashboard(id=request.id)

    def UpdateDashboard(self, request: d.UpdateDashboardRequest, context: grpc.ServicerContext) -> d.Dashboard:
        self._record("UpdateDashboard", request, context)
        return request.dashboard

    def ListDashboards(self, request: d.ListDashboardsRequest, context: grpc.ServicerContext) -> Any:
        self._record("ListDashboards", request, context)
        start = int(request.page_token or 0)
        items = [d.Dashboard(id=f"b-{i}") for i in range(start, min(start + request.page_size, 7))]
        token = str(start + request.page_size) if start + request.page_size < 7 else ""
        return d.ListDashboardsResponse(dashboards=items, next_page_token=token)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client_for(server: ScriptedServer, sleeps: list[float], **kw: Any) -> Client:
    kw.setdefault("retry", FAST)
    kw.setdefault("token", "t")
    return Client(server.address, sleep=sleeps.append, **kw)


def test_a_create_is_retried_with_the_same_request_id(sleeps: list[float]) -> None:
    servicer = Dashboards(failures=2)
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
    ):
        board = client.dashboards.create(title="Beds")
    assert board.id == "b-1"
    ids = [request.request_id for _, request, _, _ in servicer.calls]
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0], "one logical call, one request id"
    assert sleeps == pytest.approx([0.1, 0.2]), "exponential caps (jitter at its top)"


def test_a_given_request_id_is_sent_as_it_is(sleeps: list[float]) -> None:
    servicer = Dashboards(failures=1)
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
    ):
        client.dashboards.create(title="Beds", request_id="5b0d3f4e-8d4c-4a8e-9a59-0d1f1f1f1f1f")
    assert [r.request_id for _, r, _, _ in servicer.calls] == ["5b0d3f4e-8d4c-4a8e-9a59-0d1f1f1f1f1f"] * 2


def test_the_servers_retry_info_is_a_floor_for_the_delay(sleeps: list[float]) -> None:
    servicer = Dashboards(failures=1, code=grpc.StatusCode.RESOURCE_EXHAUSTED, reason="DATA_SOURCE_BUSY")
    servicer.advice = 2.5
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
    ):
        client.dashboards.get("x")
    assert sleeps == pytest.approx([2.5])


def test_an_update_is_never_retried(sleeps: list[float]) -> None:
    servicer = Dashboards(failures=1)
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
    ):
        with pytest.raises(UnavailableError) as caught:
            client.dashboards.update(d.Dashboard(id="x", title="t"), ["title"])
        assert caught.value.reason == "DATABASE_UNAVAILABLE"
        # ... unless the caller says its writes are harmless to repeat.
        servicer.calls.clear()
        servicer.failures = 1
        client.call(
            rpcs.UPDATE_DASHBOARD,
            d.UpdateDashboardRequest(dashboard=d.Dashboard(id="x")),
            retry=RetryPolicy(retry_unsafe=True, random=lambda: 0.0),
        )
    assert len(servicer.calls) == 2 and sleeps == [0.0]


def test_a_stale_etag_is_final_but_another_conflict_is_retried(sleeps: list[float]) -> None:
    stale = Dashboards(failures=1, code=grpc.StatusCode.ABORTED, reason="ETAG_MISMATCH")
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, stale)) as server,
        client_for(server, sleeps) as client,
        pytest.raises(AbortedError),
    ):
        client.dashboards.get("x")
    assert len(stale.calls) == 1
    conflict = Dashboards(failures=1, code=grpc.StatusCode.ABORTED, reason="SERIALIZATION_CONFLICT")
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, conflict)) as server,
        client_for(server, sleeps) as client,
    ):
        client.dashboards.get("x")
    assert len(conflict.calls) == 2


def test_attempts_stop_at_max_attempts_with_the_last_error(sleeps: list[float]) -> None:
    servicer = Dashboards(failures=100)
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
        pytest.raises(UnavailableError) as caught,
    ):
        client.dashboards.get("x")
    assert len(servicer.calls) == FAST.max_attempts
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert caught.value.method == "/dashboard.v1.DashboardService/GetDashboard"


def test_the_deadline_covers_every_attempt(sleeps: list[float]) -> None:
    """A fake clock advanced by the recorded sleeps: with 25 s for the call and delays of 10 then
    20 s, the retries stop where the next delay would cross the deadline, and each attempt
    carries only what is left of it as its gRPC deadline."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    slow = RetryPolicy(max_attempts=5, initial_backoff=10, max_backoff=100, random=lambda: 1.0)
    servicer = Dashboards(failures=100)
    with ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server:
        client = Client(server.address, token="t", retry=slow, timeout=25, sleep=sleep, clock=lambda: now[0])
        with client, pytest.raises(UnavailableError):
            client.dashboards.get("x")
    assert sleeps == [10], "10 + 20 would pass 25"
    remaining = [left for _, _, _, left in servicer.calls]
    assert len(remaining) == 2 and remaining[0] is not None and remaining[1] is not None
    # gRPC rounds a deadline up on the wire (by up to about 0.1 s): the second attempt carries
    # what was left (15 s), not the whole budget.
    assert 24 < remaining[0] <= 25.5 and 14 < remaining[1] <= 15.5, remaining
    with Client("127.0.0.1:1", token="t", timeout=0) as unreachable, pytest.raises(DeadlineExceededError):
        unreachable.dashboards.get("x")


def test_pages_follow_next_page_token(sleeps: list[float]) -> None:
    servicer = Dashboards()
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
    ):
        ids = [b.id for b in client.dashboards.list(page_size=3)]
    assert ids == [f"b-{i}" for i in range(7)]
    assert [r.page_token for _, r, _, _ in servicer.calls] == ["", "3", "6"]


class TokenChecking(Dashboards):
    def GetDashboard(self, request: d.GetDashboardRequest, context: grpc.ServicerContext) -> d.Dashboard:
        self._record("GetDashboard", request, context)
        if metadata_of(context).get("authorization") != "Bearer new":
            fail(context, grpc.StatusCode.UNAUTHENTICATED, "token expired", error_info("TOKEN_EXPIRED"))
        return d.Dashboard(id=request.id)


def test_an_expired_token_is_fetched_again_once(sleeps: list[float]) -> None:
    tokens = iter(["old", "new"])
    servicer = TokenChecking()
    with ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server:
        token = CachedToken(lambda: next(tokens))
        with client_for(server, sleeps, token=token) as client:
            assert client.dashboards.get("x").id == "x"
        assert token.fetches == 2 and sleeps == [], "a new token is not a backoff retry"
        assert [m["authorization"] for _, _, m, _ in servicer.calls] == ["Bearer old", "Bearer new"]
        servicer.calls.clear()
        with client_for(server, sleeps, token="old") as client, pytest.raises(UnauthenticatedError) as caught:
            client.dashboards.get("x")
        assert caught.value.reason == "TOKEN_EXPIRED" and len(servicer.calls) == 1, "a fixed token is not retried"


def test_link_tokens_and_correlation_ids_travel_as_metadata(sleeps: list[float]) -> None:
    servicer = Dashboards()
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, servicer)) as server,
        Client(server.address, link_token="lnk-1", correlation_id="corr-7") as client,
    ):
        client.dashboards.get("x")
    metadata = servicer.calls[0][2]
    assert metadata["x-tessera-link"] == "lnk-1" and metadata["x-correlation-id"] == "corr-7"
    assert "authorization" not in metadata


class Invalid(dashboard_pb2_grpc.DashboardServiceServicer):
    def CreateDashboard(self, request: d.CreateDashboardRequest, context: grpc.ServicerContext) -> d.Dashboard:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field="dashboard.title", description="value is required"),
            error_details_pb2.BadRequest.FieldViolation(field="dashboard.tags[1]", description="bad pattern"),
        ]
        return fail(  # type: ignore[no-any-return]
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            "the request has invalid fields",
            error_info("INVALID_ARGUMENT", correlation_id="abc"),
            error_details_pb2.BadRequest(field_violations=violations),
        )

    def GetDashboard(self, request: d.GetDashboardRequest, context: grpc.ServicerContext) -> d.Dashboard:
        context.abort(grpc.StatusCode.NOT_FOUND, "no details at all")
        raise AssertionError


def test_errors_carry_the_status_details_over_the_wire(sleeps: list[float]) -> None:
    with (
        ScriptedServer((dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, Invalid())) as server,
        client_for(server, sleeps) as client,
    ):
        with pytest.raises(InvalidArgumentError) as caught:
            client.dashboards.create(title="")
        with pytest.raises(NotFoundError) as plain:
            client.dashboards.get("x")
    error = caught.value
    assert error.field_violations == [("dashboard.title", "value is required"), ("dashboard.tags[1]", "bad pattern")]
    assert (error.reason, error.correlation_id) == ("INVALID_ARGUMENT", "abc")
    assert isinstance(error, grpc.RpcError) and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert plain.value.details() == "no details at all" and plain.value.reason == "" and sleeps == []


# --- watches ---------------------------------------------------------------------------------


def job(revision: int, state: int = c.JOB_STATE_RUNNING) -> w.MaterializationJob:
    return w.MaterializationJob(id="j", state=state, revision=revision, progress=c.JobProgress(percent=revision * 20))


def event(revision: int, state: int = c.JOB_STATE_RUNNING) -> w.WatchMaterializationJobResponse:
    return w.WatchMaterializationJobResponse(job=job(revision, state))


class Jobs(widget_pb2_grpc.WidgetServiceServicer):
    """Streams scripted per call: a list of events, then optionally a failure or a hang."""

    def __init__(self, script: list[tuple[list[Any], str]]) -> None:
        self.script = script
        self.since: list[int] = []
        self.released = threading.Event()

    def WatchMaterializationJob(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.since.append(request.since_revision)
        events, ending = self.script[len(self.since) - 1]
        yield from events
        if ending == "drop":
            fail(context, UNAVAILABLE, "connection lost", error_info("DATABASE_UNAVAILABLE"))
        elif ending == "hang":
            self.released.wait(10)
        elif ending == "missing":
            fail(context, grpc.StatusCode.NOT_FOUND, "no such job", error_info("JOB_NOT_FOUND"))

    def GetMaterializationJob(self, request: Any, context: grpc.ServicerContext) -> w.MaterializationJob:
        return job(5, c.JOB_STATE_SUCCEEDED)


def test_a_dropped_watch_resumes_after_the_last_revision_without_duplicates(sleeps: list[float]) -> None:
    heartbeat = w.WatchMaterializationJobResponse(heartbeat=c.Heartbeat(revision=2))
    servicer = Jobs(
        [
            ([event(1), event(2), heartbeat], "drop"),
            ([event(2), event(3), event(4, c.JOB_STATE_SUCCEEDED)], "end"),  # 2 again: a duplicate
        ]
    )
    seen: list[int] = []
    with (
        ScriptedServer((widget_pb2_grpc.add_WidgetServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
    ):
        final = client.widgets.wait_job("j", on_progress=lambda j: seen.append(j.revision))
    assert servicer.since == [0, 2]
    assert seen == [1, 2, 3, 4] and final.state == c.JOB_STATE_SUCCEEDED
    assert sleeps == pytest.approx([0.1])


def test_a_silent_watch_is_reopened(sleeps: list[float]) -> None:
    servicer = Jobs([([event(1)], "hang"), ([event(2, c.JOB_STATE_FAILED)], "end")])
    with (
        ScriptedServer((widget_pb2_grpc.add_WidgetServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps, stall_timeout=1.0) as client,
    ):
        final = client.follow(MATERIALIZATION, "j")
        servicer.released.set()
    assert servicer.since == [0, 1] and final.revision == 2 and final.state == c.JOB_STATE_FAILED


def test_a_watch_that_ends_early_asks_for_the_job(sleeps: list[float]) -> None:
    servicer = Jobs([([event(1)], "end")])
    with (
        ScriptedServer((widget_pb2_grpc.add_WidgetServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
    ):
        final = client.widgets.wait_job("j")
    assert final.revision == 5 and final.state == c.JOB_STATE_SUCCEEDED


def test_a_watch_of_a_missing_job_fails_at_once(sleeps: list[float]) -> None:
    servicer = Jobs([([], "missing")])
    with (
        ScriptedServer((widget_pb2_grpc.add_WidgetServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
        pytest.raises(NotFoundError),
    ):
        client.widgets.wait_job("j")
    assert servicer.since == [0] and sleeps == []


# --- downloads -------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 40  # 10 KiB


class Downloads(export_pb2_grpc.ExportServiceServicer):
    def __init__(self, *, drop_after: int | None = None, sha256: str | None = None, size: int | None = None):
        self.drop_after = drop_after
        self.sha = sha256 or hashlib.sha256(PAYLOAD).hexdigest()
        self.size = len(PAYLOAD) if size is None else size
        self.offsets: list[int] = []

    def DownloadExport(self, request: e.DownloadExportRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        self.offsets.append(request.offset)
        yield e.DownloadExportResponse(
            file=e.ExportFile(content_type="application/pdf", size_bytes=self.size, sha256=self.sha, filename="b.pdf")
        )
        for sent, chunk in enumerate(chunks(PAYLOAD[request.offset :], 1024)):
            if self.drop_after is not None and sent == self.drop_after and len(self.offsets) == 1:
                fail(context, UNAVAILABLE, "connection lost", error_info("STORAGE_UNAVAILABLE"))
            yield e.DownloadExportResponse(chunk=chunk)


def test_a_dropped_download_resumes_at_its_offset_and_is_verified(tmp_path: Path, sleeps: list[float]) -> None:
    servicer = Downloads(drop_after=3)
    progress: list[int] = []
    with (
        ScriptedServer((export_pb2_grpc.add_ExportServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
    ):
        done = client.exports.download("x", tmp_path, on_bytes=lambda got, total: progress.append(got))
    assert servicer.offsets == [0, 3072]
    assert done.path == tmp_path / "b.pdf" and done.path.read_bytes() == PAYLOAD
    assert progress[-1] == len(PAYLOAD) and progress == sorted(progress)
    assert list(tmp_path.iterdir()) == [done.path], "no partial file left"


@pytest.mark.parametrize(
    ("servicer", "what"),
    [(Downloads(sha256="0" * 64), "sha256"), (Downloads(size=len(PAYLOAD) + 1), "size"), (Downloads(size=100), "size")],
)
def test_a_download_that_does_not_match_leaves_nothing(
    tmp_path: Path, sleeps: list[float], servicer: Downloads, what: str
) -> None:
    with (
        ScriptedServer((export_pb2_grpc.add_ExportServiceServicer_to_server, servicer)) as server,
        client_for(server, sleeps) as client,
        pytest.raises(DownloadVerificationError) as caught,
    ):
        client.exports.download("x", tmp_path / "out.pdf")
    assert caught.value.what == what
    assert list(tmp_path.iterdir()) == []


# --- the asyncio client ------------------------------------------------------------------------


class MissingDashboards(Dashboards):
    def GetDashboard(self, request: d.GetDashboardRequest, context: grpc.ServicerContext) -> d.Dashboard:
        return fail(context, grpc.StatusCode.NOT_FOUND, "not found", error_info("DASHBOARD_NOT_FOUND"))  # type: ignore[no-any-return]


def test_the_async_client_retries_resumes_and_downloads(tmp_path: Path) -> None:
    dashboards = MissingDashboards(failures=2)
    jobs = Jobs([([event(1), event(2)], "drop"), ([event(3, c.JOB_STATE_SUCCEEDED)], "end")])
    downloads = Downloads(drop_after=2)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def scenario() -> tuple[Any, ...]:
        async with AsyncClient(server.address, token="t", retry=FAST, sleep=sleep) as client:
            created = await client.call(
                rpcs.CREATE_DASHBOARD, d.CreateDashboardRequest(dashboard=d.Dashboard(title="t"))
            )
            listed = [
                b.id
                async for b in client.pages(rpcs.LIST_DASHBOARDS, d.ListDashboardsRequest(page_size=4), "dashboards")
            ]
            seen: list[int] = []
            final = await client.follow(MATERIALIZATION, "j", on_progress=lambda j: seen.append(j.revision))
            download = await client.download("x", tmp_path / "a.pdf")
            with pytest.raises(NotFoundError) as missing:
                await client.call(rpcs.GET_DASHBOARD, d.GetDashboardRequest(id="x"))
            assert missing.value.reason == "DASHBOARD_NOT_FOUND"
            return created, listed, seen, final, download

    with ScriptedServer(
        (dashboard_pb2_grpc.add_DashboardServiceServicer_to_server, dashboards),
        (widget_pb2_grpc.add_WidgetServiceServicer_to_server, jobs),
        (export_pb2_grpc.add_ExportServiceServicer_to_server, downloads),
    ) as server:
        created, listed, seen, final, download = asyncio.run(scenario())
    ids = {r.request_id for name, r, _, _ in dashboards.calls if name == "CreateDashboard"}
    assert created.id == "b-1" and len(ids) == 1
    assert listed == [f"b-{i}" for i in range(7)]
    assert seen == [1, 2, 3] and jobs.since == [0, 2] and final.state == c.JOB_STATE_SUCCEEDED
    assert downloads.offsets == [0, 2048] and download.path.read_bytes() == PAYLOAD
    assert sleeps[:2] == pytest.approx([0.1, 0.2])
