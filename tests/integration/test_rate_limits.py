"""Per-principal rate limits (server/api/rate_limit.py, server/api/rate_buckets.py): a principal
past its budget is refused with RESOURCE_EXHAUSTED, reason RATE_LIMITED and RetryInfo over gRPC,
and 429 with Retry-After over REST, while another principal is served; two servers share one
budget through Redis; the refusals are audited and counted; the Python client waits as RetryInfo
says and then succeeds; with Redis gone the limiter falls back to a bucket per process and
everything is still served."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import dashboard_pb2_grpc, share_pb2_grpc
from dashboard.v1 import share_pb2 as s
from server.config import Settings
from server.db.schema import audit_log
from tessera_client import ApiError, Client, RetryPolicy
from tests.harness.redis_process import RedisProcess
from tests.harness.rpc import failure_of
from tests.harness.server import ServerHandle, start_in_thread
from tests.integration.test_load_shedding import retry_delay

RATE = 2.0  # tokens a second
BURST = 3


@pytest.fixture(scope="module")
def limited(settings: Settings, migrated: str) -> Iterator[list[ServerHandle]]:
    own = settings.model_copy(update={"rate_limit_per_principal": RATE, "rate_limit_burst": BURST})
    handles = [start_in_thread(own), start_in_thread(own)]
    yield handles
    for handle in handles:
        handle.stop()


def _board(address: str, md: Any, facility: str) -> str:
    with grpc.insecure_channel(address) as channel:
        stub = dashboard_pb2_grpc.DashboardServiceStub(channel)
        return str(
            stub.CreateDashboard(
                d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="rl")), metadata=md
            ).id
        )


def _drain(stub: dashboard_pb2_grpc.DashboardServiceStub, board: str, md: Any) -> grpc.RpcError:
    """Calls until refused (the bucket holds at most BURST tokens); the refusal."""
    for _ in range(BURST + 5):
        try:
            stub.GetDashboard(d.GetDashboardRequest(id=board), metadata=md, timeout=10)
        except grpc.RpcError as error:
            return error
    raise AssertionError("never rate limited")


def test_a_principal_past_its_budget_is_refused_with_retry_info_and_others_are_not(
    limited: list[ServerHandle], auth: Any, facility: str
) -> None:
    subject = f"busy-{uuid.uuid4().hex[:8]}"
    busy, other = auth(subject, "editor", facility), auth(f"calm-{uuid.uuid4().hex[:8]}", "editor", facility)
    board, others_board = _board(limited[0].address, busy, facility), _board(limited[1].address, other, facility)
    with grpc.insecure_channel(limited[0].address) as a, grpc.insecure_channel(limited[1].address) as b:
        stubs = [dashboard_pb2_grpc.DashboardServiceStub(a), dashboard_pb2_grpc.DashboardServiceStub(b)]
        # One budget across both servers: alternating servers still runs out after the burst.
        served = 0
        refused: grpc.RpcError | None = None
        for i in range(BURST + 5):
            try:
                stubs[i % 2].GetDashboard(d.GetDashboardRequest(id=board), metadata=busy, timeout=10)
                served += 1
            except grpc.RpcError as error:
                refused = error
                break
        assert refused is not None and served <= BURST + 1  # at most one token refilled meanwhile
        failure = failure_of(refused)
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
        delay = retry_delay(refused)
        assert delay is not None and 0 < delay <= 1 / RATE + 0.01  # the time to the next token

        # Another principal is served meanwhile, on either server.
        for stub in stubs:
            reply = stub.GetDashboard(d.GetDashboardRequest(id=others_board), metadata=other, timeout=10)
            assert reply.id == others_board

        # REST: 429, Retry-After from RetryInfo, the same status body.
        http = limited[0].running.http_port
        request = urllib.request.Request(
            f"http://127.0.0.1:{http}/api/v1/dashboard/dashboards/{board}", headers=dict(busy)
        )
        with pytest.raises(urllib.error.HTTPError) as rest:
            urllib.request.urlopen(request, timeout=10)
        assert rest.value.code == 429
        assert rest.value.headers["Retry-After"] == "1"  # whole seconds, rounded up
        body = json.loads(rest.value.read())
        assert any(x.get("reason") == "RATE_LIMITED" for x in body["details"]), body
        assert any("RetryInfo" in x.get("@type", "") for x in body["details"]), body

        # After the advised wait, the principal is served again.
        time.sleep(1 / RATE + 0.05)
        assert stubs[1].GetDashboard(d.GetDashboardRequest(id=board), metadata=busy, timeout=10).id == board

    # Counted, and audited as errors of that principal.
    counted = sum(
        h.running.app.metrics.registry.get_sample_value(
            "tessera_rate_limited_total", {"method": "/dashboard.v1.DashboardService/GetDashboard"}
        )
        or 0.0
        for h in limited
    )
    assert counted >= 2  # the gRPC refusal and the REST one

    async def refusals(handle: ServerHandle) -> int:
        await handle.running.app.audit.flush()
        async with handle.running.app.db.read() as conn:
            rows = await conn.execute(
                select(audit_log.c.details).where(
                    audit_log.c.actor == subject, audit_log.c.method == "dashboard.v1.DashboardService/GetDashboard"
                )
            )
            return sum(1 for (details,) in rows if "RATE_LIMITED" in json.dumps(details))

    assert sum(h.run(refusals(h)) for h in limited) >= 2


def test_the_python_client_waits_as_retry_info_says_then_succeeds(
    limited: list[ServerHandle], auth: Any, facility: str
) -> None:
    md = auth(f"client-{uuid.uuid4().hex[:8]}", "editor", facility)
    board = _board(limited[0].address, md, facility)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    token = dict(md)["authorization"].removeprefix("Bearer ")
    # No backoff of its own, so each wait is exactly the server's RetryInfo advice.
    policy = RetryPolicy(initial_backoff=0.0, max_attempts=10)
    with Client(limited[0].address, token=token, sleep=sleep, retry=policy) as client:
        for _ in range(BURST + 2):  # past the budget: each refusal is retried after the advice
            assert client.dashboards.get(board).id == board
    assert sleeps, "the client was never refused, so never waited"
    assert all(0 < s <= 1 / RATE + 0.01 for s in sleeps), sleeps


def test_with_redis_down_calls_are_still_served_and_limited_per_process(
    settings: Settings, migrated: str, auth: Any, facility: str
) -> None:
    redis = RedisProcess()
    redis.start()
    own = settings.model_copy(
        update={"redis_url": redis.url, "rate_limit_per_principal": RATE, "rate_limit_burst": BURST}
    )
    handle = start_in_thread(own)
    try:
        md = auth(f"nored-{uuid.uuid4().hex[:8]}", "editor", facility)
        board = _board(handle.address, md, facility)
        redis.kill()
        with grpc.insecure_channel(handle.address) as channel:
            stub = dashboard_pb2_grpc.DashboardServiceStub(channel)
            time.sleep(BURST / RATE)  # a full bucket again
            # Served without Redis (never closed for everyone)...
            assert stub.GetDashboard(d.GetDashboardRequest(id=board), metadata=md, timeout=10).id == board
            # ...and still limited, by the process's own bucket.
            refused = _drain(stub, board, md)
            assert failure_of(refused).reason == "RATE_LIMITED"
            assert retry_delay(refused) is not None
        fallbacks = handle.running.app.metrics.registry.get_sample_value("tessera_rate_limit_fallbacks_total")
        assert fallbacks is not None and fallbacks >= 1
    finally:
        handle.stop()
        redis.kill()


def test_a_public_link_has_a_budget_of_its_own(limited: list[ServerHandle], auth: Any, facility: str) -> None:
    """A link's callers share the link's budget, apart from its creator's."""
    owner = auth(f"owner-{uuid.uuid4().hex[:8]}", "editor", facility)
    with grpc.insecure_channel(limited[0].address) as channel:
        dashboards = dashboard_pb2_grpc.DashboardServiceStub(channel)
        board = dashboards.CreateDashboard(
            d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title="public")), metadata=owner
        )
        dashboards.PublishDashboard(d.PublishDashboardRequest(id=board.id), metadata=owner)
        time.sleep(BURST / RATE)  # the owner's bucket full again
        link = share_pb2_grpc.ShareServiceStub(channel).CreatePublicLink(
            s.CreatePublicLinkRequest(dashboard_id=board.id), metadata=owner
        )
        refused = _drain(dashboards, board.id, (("x-tessera-link", link.token),))
        assert failure_of(refused).reason == "RATE_LIMITED"
        # The owner, past the link's budget, is still served.
        assert dashboards.GetDashboard(d.GetDashboardRequest(id=board.id), metadata=owner, timeout=10).id == board.id


def test_an_update_refused_by_the_rate_limit_is_retried_after_the_advice_and_applied_once(
    limited: list[ServerHandle], auth: Any, facility: str
) -> None:
    """An UNSAFE rpc (an etag update) refused by the limit did nothing, so the client sends it
    again, no sooner than RetryInfo says; the update lands exactly once (one new version)."""
    md = auth(f"writer-{uuid.uuid4().hex[:8]}", "editor", facility)
    board = _board(limited[0].address, md, facility)
    token = dict(md)["authorization"].removeprefix("Bearer ")
    retries: list[tuple[str, str, float, float]] = []  # method, reason, advice, delay
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    def on_retry(method: str, error: ApiError, delay: float) -> None:
        retries.append((method, error.reason, error.retry_delay or 0.0, delay))

    with Client(limited[0].address, token=token, sleep=sleep, on_retry=on_retry) as client:
        before = client.dashboards.get(board)
        with grpc.insecure_channel(limited[1].address) as channel:  # the budget is shared
            assert failure_of(_drain(dashboard_pb2_grpc.DashboardServiceStub(channel), board, md)).reason == (
                "RATE_LIMITED"
            )
        changed = d.Dashboard(id=board, title="renamed once", etag=before.etag)
        after = client.dashboards.update(changed, ["title"])
        assert retries, "the update was never refused"
        assert {(m, r) for m, r, _, _ in retries} == {
            ("/dashboard.v1.DashboardService/UpdateDashboard", "RATE_LIMITED")
        }
        assert all(0 < advice <= delay for _, _, advice, delay in retries), retries
        assert slept == [delay for _, _, _, delay in retries]
        assert after.version == before.version + 1 and after.title == "renamed once"
        time.sleep(BURST / RATE)
        again = client.dashboards.get(board)
    assert again.version == before.version + 1, "applied exactly once"
    versions = list(client_versions(limited[1].address, md, board))
    assert versions.count(before.version + 1) == 1 and max(versions) == before.version + 1


def client_versions(address: str, md: Any, board: str) -> list[int]:
    with grpc.insecure_channel(address) as channel:
        stub = dashboard_pb2_grpc.DashboardServiceStub(channel)
        time.sleep(1 / RATE)
        listed = stub.ListDashboardVersions(d.ListDashboardVersionsRequest(dashboard_id=board), metadata=md, timeout=10)
    return [v.version for v in listed.versions]
