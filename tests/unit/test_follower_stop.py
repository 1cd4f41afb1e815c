"""A follower whose first cancel is swallowed (as redis-py's get_message does when the cancel lands
as its read timeout expires: it returns None and the loop reads on) still stops: stop() cancels
again until the task ends. Once, a server's shutdown waited on such a subscriber for good."""

from __future__ import annotations

import asyncio

from server.db.listen import Follower


class SwallowsOneCancel(Follower):
    def __init__(self) -> None:
        super().__init__("swallows-one-cancel", on_lost=lambda: None)
        self.swallowed = 0

    async def _follow(self) -> None:
        while True:
            try:
                await asyncio.sleep(0.05)  # a read with its own timeout
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1  # taken for the read's timeout: reads on


async def test_stop_ends_a_follower_that_swallowed_the_first_cancel() -> None:
    follower = SwallowsOneCancel()
    follower.start()
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stopping = asyncio.ensure_future(follower.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)  # not wait_for: its cancel would end it
    assert done, "stop() still waiting after 5 s"
    assert loop.time() - started < 3
    assert follower.swallowed == 1
