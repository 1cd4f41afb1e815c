"""A widget's single-flight lock held by a process that died (SIGKILLed, reaped or still a
zombie) on this machine does not stall the widget for the lease: the next reader sees the holder
is gone, removes exactly that lock and computes (server/widgetdata/holder.py). A live holder, or
one on another machine, is left alone."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from dashboard.v1 import widget_pb2 as w
from server.auth.principal import Principal, Role
from server.config import Settings
from server.queries.frame import frame_to_rows
from server.widgetdata.holder import MACHINE, known_dead, new_token
from server.widgetdata.key import lock_key
from tests.harness.kit import Kit
from tests.harness.server import ServerHandle

LEASE_MS = 10_000  # the default lease: what a reader would otherwise wait


@pytest.fixture
def kit(queries, dashboards, widgets, auth, facility) -> Kit:  # type: ignore[no-untyped-def]
    return Kit(queries, dashboards, widgets, auth("alice", "editor", facility), facility)


def _killed(reap: bool) -> int:
    process = subprocess.Popen(["sleep", "60"])
    process.kill()
    if reap:
        process.wait(timeout=10)
    else:  # a zombie until its parent reaps it, like a prefork child Celery has not noticed yet
        time.sleep(0.1)
    return process.pid


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_a_dead_holder_of_this_machine_does_not_stall_the_widget(
    kit: Kit, server: ServerHandle, settings: Settings, reaped: bool
) -> None:
    query = kit.query("SELECT 42 AS v")
    widget = kit.widget(kit.board(), query)
    principal = Principal("alice", Role.EDITOR, frozenset({kit.facility}))
    key = server.run(server.running.app.widget_data.key_for(principal, w.GetWidgetDataRequest(widget_id=widget.id)))
    pid = _killed(reaped)
    assert known_dead(f"{MACHINE}/{pid}/feedbeef")
    with redis.Redis.from_url(settings.redis_url) as client:
        assert client.set(
            lock_key(settings.redis_prefix, query.id, key), f"{MACHINE}/{pid}/feedbeef", nx=True, px=LEASE_MS
        )
        started = time.monotonic()
        data = kit.data(widget.id)
        elapsed = time.monotonic() - started
    assert frame_to_rows(data.frame) == [{"v": 42}]
    assert elapsed < 2.0, f"waited {elapsed:.2f} s for a dead holder (lease {LEASE_MS / 1000:.0f} s)"


def test_live_and_foreign_holders_are_never_judged_dead() -> None:
    alive = subprocess.Popen(["sleep", "60"])
    try:
        assert not known_dead(f"{MACHINE}/{alive.pid}/x")
    finally:
        alive.kill()
        alive.wait(timeout=10)
    assert not known_dead(new_token())  # this very process
    assert not known_dead(f"another-host~boot/{alive.pid}/x")  # another machine: its lease decides
    assert not known_dead("dead-holder")  # a token of another form
    assert not known_dead(b"\xff\xfe")
