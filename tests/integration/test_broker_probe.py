"""The broker probe against a broker that accepts connections and then says nothing (a paused
Redis, a black-holed route): every call returns within its timeout, so health's checks go on.
Until the roll call's sockets had a timeout too, it waited on that silence for good, and a
close from another thread during it could read from the same socket for good."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.broker.probe import BrokerProbe
from server.config import Settings

TIMEOUT = 0.5
# Well above the probe's timeout (a connect and a read, on a loaded machine), far below a hang.
BOUND = 5.0


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A TCP listener that accepts every connection and never writes a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stopped = threading.Event()

    def accept() -> None:
        while not stopped.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, name="silent-broker", daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stopped.set()
    listener.close()
    for connection in held:
        connection.close()


def within_bound(call: Callable[[], Any]) -> tuple[float, Any]:
    """Runs `call` in a thread (as the health loop does); its time and its result or error."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # the roll call raises; the monitor logs that and goes on
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    took = time.monotonic() - started
    assert outcome, f"still waiting after {BOUND} s"
    return took, outcome[0]


def test_every_call_returns_within_its_timeout_when_the_broker_says_nothing(
    settings: Settings, silent_broker: str
) -> None:
    probe = BrokerProbe(Settings(**(settings.model_dump() | {"broker_url": silent_broker})), timeout=TIMEOUT)
    try:
        _, answered = within_bound(probe.answers)
        assert answered is None  # not answering in time: unknown, not refused
        _, depths = within_bound(lambda: probe.depths(["materialize"]))
        assert not depths.reachable
        for _ in range(2):  # the second call reuses the app the first one built
            took, roll_call = within_bound(probe.roll_call)
            assert isinstance(roll_call, Exception), roll_call
            assert took >= TIMEOUT * 0.9  # it did wait for an answer
        # Closed while a roll call still waits (as the server's shutdown may): both end.
        calling = threading.Thread(target=lambda: within_bound(probe.roll_call), daemon=True)
        calling.start()
        time.sleep(TIMEOUT / 5)
        within_bound(probe.close)
        calling.join(BOUND)
        assert not calling.is_alive()
    finally:
        within_bound(probe.close)
