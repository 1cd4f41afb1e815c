"""LISTEN on a PostgreSQL channel from a connection of its own, reconnecting for ever.

The listener says when it is listening (`on_listening`: every notification sent from then on
reaches it) and when it stops (`on_lost`: notifications may be missed from then on, so whatever
relies on them must stop trusting what it kept). A quiet connection is checked every
`PING_SECONDS`. A check unanswered for `PING_SECONDS` pauses it (`on_paused`: what was kept may
not be served, since notifications may be late, but it is kept); a check answered within
`PING_SECONDS` after what was waiting has been read resumes it (`on_resumed`); only one
unanswered for `LOST_SECONDS` counts as lost. Why not lost at once: on a machine overloaded by
other work, a check now and then took over a second, and each "lost" emptied what every server
process kept (the 10-minute soak lost and refilled its subscriptions about 30 times a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

__all__ = ["LOST_SECONDS", "PING_SECONDS", "Follower", "Listener", "libpq_url"]

log = logging.getLogger("tessera.db")

PING_SECONDS = 1.0
LOST_SECONDS = 10.0
_RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://...`) as libpq takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Follower:
    """A connection followed for ever: `_follow()` runs until the connection fails, `on_lost` is
    called then (and at stop), and it is tried again after a short backoff. What a follower and
    the widget-data cache's Redis subscriber (server/widgetdata/invalidations.py) share."""

    def __init__(
        self,
        name: str,
        on_lost: Callable[[], None],
        on_paused: Callable[[], None] | None = None,
        on_resumed: Callable[[], None] | None = None,
    ) -> None:
        self._name = name
        self._on_lost = on_lost
        self._on_paused = on_paused
        self._on_resumed = on_resumed
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self.paused = False
        self.pauses = 0  # how often a check was late (tests and benchmarks read it)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        # Cancelled again until it ends: a cancel that lands as a read's own timeout expires is
        # taken for that timeout (redis-py's get_message returns None), and the loop reads on.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _connected(self) -> None:
        """Called by `_follow` once it follows: the next failure is logged again."""
        self._failures = 0

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.pauses += 1
            log.debug("%s: a check is late; paused", self._name)
            if self._on_paused is not None:
                self._on_paused()

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            if self._on_resumed is not None:
                self._on_resumed()

    async def _follow(self) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._failures == 0:
                    log.warning("%s: connection lost, retrying: %r", self._name, exc)
            finally:
                self.paused = False
                self._on_lost()
            await asyncio.sleep(_RETRY_SECONDS[min(self._failures, len(_RETRY_SECONDS) - 1)])
            self._failures += 1


class Listener(Follower):
    def __init__(
        self,
        url: str,
        channel: str,
        *,
        on_notify: Callable[[str], None],
        on_listening: Callable[[], None],
        on_lost: Callable[[], None],
        on_paused: Callable[[], None] | None = None,
        on_resumed: Callable[[], None] | None = None,
        application_name: str = "tessera-listen",
    ) -> None:
        super().__init__(f"LISTEN {channel}", on_lost, on_paused, on_resumed)
        self._url = libpq_url(url)
        self._channel = channel
        self._on_notify = on_notify
        self._on_listening = on_listening
        self._application_name = application_name

    async def _follow(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=5, application_name=self._application_name
        ) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._on_listening()
            self._connected()
            while True:
                if not self.paused:  # paused: check again at once
                    async for notify in conn.notifies(timeout=PING_SECONDS):
                        self._on_notify(notify.payload)
                # Quiet for a while: is the connection still there? (raises when it is not)
                prompt = await self._check(conn)
                # What arrived while the check ran (psycopg keeps it), before resuming.
                async for notify in conn.notifies(timeout=0):
                    self._on_notify(notify.payload)
                if prompt:
                    self._resume()

    async def _check(self, conn: psycopg.AsyncConnection[object]) -> bool:
        """True when `SELECT 1` answered within PING_SECONDS; paused past that; raises (lost)
        past LOST_SECONDS."""
        probe = asyncio.ensure_future(conn.execute("SELECT 1"))
        try:
            done, _ = await asyncio.wait({probe}, timeout=PING_SECONDS)
            if done:
                await probe
                return True
            self._pause()
            async with asyncio.timeout(LOST_SECONDS - PING_SECONDS):
                await asyncio.shield(probe)
            return False
        finally:
            if not probe.done():
                probe.cancel()
