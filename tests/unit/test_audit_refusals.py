"""Refused (unauthenticated) calls are counted per source and window: the first one of a source
is recorded at once, the rest summed into one summary per window, at most 2 x (sources + 1)
events per window whatever the load, and the counts always add up to every refusal."""

from __future__ import annotations

import random

import pytest

from dashboard.v1 import share_pb2
from server.audit.event import AuditEvent
from server.audit.refusals import OVERFLOW_PEER, RefusalCounter, RefusalKey, peer_host

M = "dashboard.v1.DashboardService/ListDashboards"


def key(peer: str = "ipv4:10.0.0.1", reason: str = "TOKEN_EXPIRED", method: str = M) -> RefusalKey:
    return RefusalKey(method, peer, "bearer", reason)


def total(events: list[AuditEvent]) -> int:
    return sum(int(e.details["count"]) for e in events)


def test_first_refusal_of_a_source_is_recorded_at_once_the_rest_summed() -> None:
    counter = RefusalCounter(window_seconds=10, max_sources=10)
    first = counter.observe(key(), "cid-0", now=100.0)
    assert len(first) == 1
    event = first[0]
    assert event.actor == "" and event.method == M and event.outcome == share_pb2.AUDIT_OUTCOME_DENIED
    assert event.correlation_id == "cid-0" and event.facility_id == ""
    assert event.details == {
        "unauthenticated": True,
        "reason": "TOKEN_EXPIRED",
        "peer": "ipv4:10.0.0.1",
        "credential": "bearer",
        "count": 1,
        "transport": "grpc",
    }
    for i in range(1, 500):
        assert counter.observe(key(), f"cid-{i}", now=100.0 + i / 100) == []
    assert counter.drain(now=105.0) == []  # the window has not ended
    summary = counter.drain(now=110.0)
    assert len(summary) == 1
    assert summary[0].details["count"] == 499 and summary[0].details["summary"] is True
    assert summary[0].details["last_correlation_id"] == "cid-499" and summary[0].correlation_id == ""
    assert summary[0].details["since"] <= summary[0].details["until"]
    assert counter.sources == 0
    # The next window starts afresh: its first refusal is recorded at once again.
    assert len(counter.observe(key(), "cid-next", now=111.0)) == 1


def test_a_source_seen_once_has_no_summary() -> None:
    counter = RefusalCounter(window_seconds=10)
    counter.observe(key(), "c", now=0.0)
    assert counter.drain(now=10.0) == []


def test_sources_are_told_apart_by_method_peer_credential_and_reason() -> None:
    counter = RefusalCounter(window_seconds=10)
    keys = [
        key(),
        key(peer="ipv4:10.0.0.2"),
        key(reason="TOKEN_ISSUER"),
        key(method="dashboard.v1.QueryService/RunQuery"),
        RefusalKey(M, "ipv4:10.0.0.1", "link", "TOKEN_EXPIRED"),
        RefusalKey(M, "ipv4:10.0.0.1", "bearer", "TOKEN_EXPIRED", share_pb2.AUDIT_OUTCOME_ERROR),
    ]
    for k in keys:
        assert len(counter.observe(k, "c", now=1.0)) == 1
    assert counter.sources == len(keys)


def test_a_flood_writes_a_bounded_number_of_events_and_the_counts_add_up() -> None:
    max_sources, window = 20, 10.0
    counter = RefusalCounter(window_seconds=window, max_sources=max_sources)
    rng = random.Random(6)
    written: list[AuditEvent] = []
    per_window: dict[int, int] = {}
    calls = 20_000
    for i in range(calls):
        now = i * 0.001  # 20 s of traffic: two windows
        k = key(peer=f"ipv4:10.0.{rng.randrange(4)}.{rng.randrange(250)}", reason=rng.choice(["A", "B", "C"]))
        found = counter.observe(k, f"c{i}", now=now)
        written += found
        per_window[int(now // window)] = per_window.get(int(now // window), 0) + len(found)
    written += counter.drain(now=calls * 0.001, everything=True)
    assert total(written) == calls  # nothing is lost, only aggregated
    assert len(written) <= 2 * 2 * (max_sources + 1)  # two windows
    assert all(n <= 2 * (max_sources + 1) for n in per_window.values())
    overflow = [e for e in written if e.details["peer"] == OVERFLOW_PEER]
    assert overflow and all(e.details["reason"] == OVERFLOW_PEER for e in overflow)


def test_close_drains_the_current_window() -> None:
    counter = RefusalCounter(window_seconds=3600)
    for i in range(5):
        counter.observe(key(), f"c{i}", now=float(i))
    summary = counter.drain(now=5.0, everything=True)
    assert [e.details["count"] for e in summary] == [4]
    assert counter.drain(now=6.0, everything=True) == []


def test_nothing_of_the_credential_is_kept() -> None:
    counter = RefusalCounter()
    event = counter.observe(key(), "c")[0]
    assert set(event.details) == {"unauthenticated", "reason", "peer", "credential", "count", "transport"}


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:51234", "ipv4:127.0.0.1"),
        ("ipv6:[::1]:51234", "ipv6:[::1]"),
        ("ipv6:[2001:db8::7]:443", "ipv6:[2001:db8::7]"),
        ("unix:/tmp/tessera.sock", "unix:/tmp/tessera.sock"),
        ("", ""),
        ("x" * 500, "x" * 128),
    ],
)
def test_peer_host_drops_the_port(peer: str, host: str) -> None:
    assert peer_host(peer) == host


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="window_seconds"):
        RefusalCounter(window_seconds=0)
    with pytest.raises(ValueError, match="max_sources"):
        RefusalCounter(max_sources=0)
