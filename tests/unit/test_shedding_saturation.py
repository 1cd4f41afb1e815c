"""The saturation rule of load shedding (server/api/shedding.py) on a scripted loop: the share of
refused calls rises while the loop has no idle time, never past its ceiling, and falls back to
none once the loop idles; nothing is refused where the loop is not metered. And the metered loop
itself (server/event_loop.py): time blocked waiting for I/O counts as idle, work never does."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from server import event_loop
from server.api.shedding import Saturation


class ScriptedLoop:
    """A clock and an idle meter the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.idle = 0.0

    def advance(self, seconds: float, idle_share: float) -> None:
        seconds += 1e-6  # whole intervals despite floating-point sums
        self.now += seconds
        self.idle += seconds * idle_share


def refusals(saturation: Saturation, calls: int) -> int:
    return sum(saturation.refuse() for _ in range(calls))


@pytest.fixture(autouse=True)
def seeded() -> None:
    random.seed(15)


def test_a_saturated_loop_raises_the_refused_share_up_to_its_ceiling() -> None:
    loop = ScriptedLoop()
    saturation = Saturation(0.05, interval=0.1, max_share=0.9, idle=lambda: loop.idle, clock=lambda: loop.now)
    assert refusals(saturation, 10) == 0  # the first call only starts the first interval
    shares = []
    for _ in range(12):
        loop.advance(0.1, idle_share=0.01)  # busy: 1% idle, under the 5% floor
        saturation.refuse()
        shares.append(saturation.share)
    assert shares == sorted(shares) and shares[0] == pytest.approx(0.45, rel=1e-3)
    assert 0.89 < shares[-1] <= 0.9
    # Within the interval the share holds, and about that share of calls is refused.
    assert 800 <= refusals(saturation, 1000) <= 980


def test_an_idle_loop_lets_the_share_fall_back_to_nothing() -> None:
    loop = ScriptedLoop()
    saturation = Saturation(0.05, interval=0.1, idle=lambda: loop.idle, clock=lambda: loop.now)
    saturation.refuse()
    for _ in range(5):
        loop.advance(0.1, idle_share=0.0)
        saturation.refuse()
    high = saturation.share
    loop.advance(0.1, idle_share=0.3)
    saturation.refuse()
    assert saturation.share == pytest.approx(high / 2, rel=1e-3)
    for _ in range(8):
        loop.advance(0.1, idle_share=0.3)
        saturation.refuse()
    assert saturation.share == 0.0
    assert refusals(saturation, 1000) == 0


def test_a_quiet_stretch_without_calls_counts_every_interval_it_spanned() -> None:
    loop = ScriptedLoop()
    saturation = Saturation(0.05, interval=0.1, idle=lambda: loop.idle, clock=lambda: loop.now)
    saturation.refuse()
    for _ in range(5):
        loop.advance(0.1, idle_share=0.0)
        saturation.refuse()
    assert saturation.share > 0.9
    loop.advance(1.0, idle_share=0.9)  # ten intervals with no call at all
    assert refusals(saturation, 1000) == 0
    assert saturation.share == 0.0


def test_nothing_is_refused_where_the_loop_is_not_metered_or_the_rule_is_off() -> None:
    loop = ScriptedLoop()
    unmetered = Saturation(0.05, interval=0.1, idle=lambda: None, clock=lambda: loop.now)
    off = Saturation(0.0, interval=0.1, idle=lambda: loop.idle, clock=lambda: loop.now)
    for _ in range(20):
        loop.advance(0.1, idle_share=0.0)
        assert not unmetered.refuse()
        assert not off.refuse()
    assert unmetered.share == off.share == 0.0


def test_the_metered_loop_counts_waiting_for_io_as_idle_and_work_as_busy() -> None:
    loop = event_loop.new_loop()
    try:
        assert event_loop.idle_seconds(loop) == 0.0

        async def wait() -> None:
            await asyncio.sleep(0.2)

        loop.run_until_complete(wait())
        idle = event_loop.idle_seconds(loop)
        assert idle is not None and idle >= 0.15

        async def work() -> None:
            for _ in range(40):  # 5 ms slices, always ready: the loop polls, never blocks
                until = time.perf_counter() + 0.005
                while time.perf_counter() < until:
                    pass
                await asyncio.sleep(0)

        loop.run_until_complete(work())
        after = event_loop.idle_seconds(loop)
        assert after is not None and after - idle < 0.05
    finally:
        loop.close()
    assert event_loop.idle_seconds(asyncio.new_event_loop()) is None  # not made here: not metered
