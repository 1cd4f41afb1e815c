"""Read-your-writes over the browser protocols, against a real streaming replica whose replay is
paused (tests/harness/replica.py): a write over Connect or gRPC-Web hands back the primary's LSN
as that protocol carries trailers (`Trailer-X-Tessera-Lsn` on Connect unary, a line of the
gRPC-Web trailers frame), and a read on another server process that sends it back as an
`X-Tessera-Lsn` header goes where the write is. Without it the read may be stale, and is: the
other server answers from the replica, which has not replayed the write. (gRPC metadata and REST
are tested the same way in tests/integration/test_read_replica.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashboard.v1 import dashboard_pb2 as d
from server.config import Settings
from tests.harness.replica import ReplicatedServers, replicated_servers
from tests.rest.connect_call import connect_unary, grpc_web_call

CREATE = "/dashboard.v1.DashboardService/CreateDashboard"
GET = "/dashboard.v1.DashboardService/GetDashboard"
NOT_FOUND = 5


@pytest.fixture(scope="module")
def deployment(settings: Settings) -> Iterator[ReplicatedServers]:
    with replicated_servers(settings) as found:
        yield found


@pytest.fixture
def http(deployment: ReplicatedServers) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """HTTP clients of the server that writes and of the other one; the replica paused between."""
    writer, other = (
        httpx.Client(base_url=f"http://127.0.0.1:{s.running.http_port}", timeout=30) for s in deployment.servers
    )
    deployment.pg.wait_replayed()
    deployment.replay(paused=True)
    try:
        yield writer, other
    finally:
        deployment.replay(paused=False)
        writer.close()
        other.close()


def _headers(md: Any, lsn: str = "") -> dict[str, str]:
    return {**dict(md), **({"X-Tessera-Lsn": lsn} if lsn else {})}


def _create(facility: str, title: str) -> d.CreateDashboardRequest:
    return d.CreateDashboardRequest(dashboard=d.Dashboard(facility_id=facility, title=title))


@pytest.mark.parametrize("json_codec", [False, True], ids=["proto", "json"])
def test_connect_carries_the_lsn_of_a_write_and_honours_it_on_a_read(
    http: tuple[httpx.Client, httpx.Client], auth: Any, json_codec: bool
) -> None:
    writer, other = http
    facility = f"fac-{uuid.uuid4().hex[:8]}"
    frank = auth("frank", "editor", facility)
    code, created, raw = connect_unary(
        writer, CREATE, _create(facility, "over Connect"), d.Dashboard, json_codec=json_codec, headers=_headers(frank)
    )
    assert code == 0, created
    assert isinstance(created, d.Dashboard)
    lsn = raw.headers["trailer-x-tessera-lsn"]
    assert "/" in lsn  # the primary's position, as PostgreSQL spells it
    get = d.GetDashboardRequest(id=created.id)
    # The other server without the LSN reads the replica, which is behind: not found (stale, allowed).
    code, _, _ = connect_unary(other, GET, get, d.Dashboard, json_codec=json_codec, headers=_headers(frank))
    assert code == NOT_FOUND
    # With it, the read goes where the write is.
    code, read, raw = connect_unary(other, GET, get, d.Dashboard, json_codec=json_codec, headers=_headers(frank, lsn))
    assert code == 0 and isinstance(read, d.Dashboard) and read.id == created.id
    assert "trailer-x-tessera-lsn" not in raw.headers  # a read writes nothing, so announces no position


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_grpc_web_carries_the_lsn_of_a_write_and_honours_it_on_a_read(
    http: tuple[httpx.Client, httpx.Client], auth: Any, text: bool
) -> None:
    writer, other = http
    facility = f"fac-{uuid.uuid4().hex[:8]}"
    grace = auth("grace", "editor", facility)
    messages, status, trailers = grpc_web_call(
        writer, CREATE, _create(facility, "over gRPC-Web"), d.Dashboard, text=text, headers=_headers(grace)
    )
    assert status.code == 0 and len(messages) == 1, status
    created = messages[0]
    assert isinstance(created, d.Dashboard)
    lsn = trailers["x-tessera-lsn"]
    assert "/" in lsn
    get = d.GetDashboardRequest(id=created.id)
    _, status, _ = grpc_web_call(other, GET, get, d.Dashboard, text=text, headers=_headers(grace))
    assert status.code == NOT_FOUND
    messages, status, trailers = grpc_web_call(other, GET, get, d.Dashboard, text=text, headers=_headers(grace, lsn))
    assert status.code == 0 and [m.id for m in messages] == [created.id]  # type: ignore[attr-defined]
    assert "x-tessera-lsn" not in trailers


def test_a_malformed_lsn_header_is_ignored_not_refused(http: tuple[httpx.Client, httpx.Client], auth: Any) -> None:
    writer, other = http
    facility = f"fac-{uuid.uuid4().hex[:8]}"
    heidi = auth("heidi", "editor", facility)
    code, created, _ = connect_unary(writer, CREATE, _create(facility, "old"), d.Dashboard, headers=_headers(heidi))
    assert code == 0 and isinstance(created, d.Dashboard)
    get = d.GetDashboardRequest(id=created.id)
    bad = "not/an/lsn" * 50
    code, _, _ = connect_unary(other, GET, get, d.Dashboard, headers=_headers(heidi, bad))
    assert code == NOT_FOUND  # read from the replica as if no LSN were sent: stale, never an error
    _, status, _ = grpc_web_call(other, GET, get, d.Dashboard, headers=_headers(heidi, bad))
    assert status.code == NOT_FOUND
