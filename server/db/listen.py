"""LISTEN on a PostgreSQL channel from a connection of its own, reconnecting for ever.

The listener says when it is listening (`on_listening`: every notification sent from then on
reaches it) and when it stops (`on_lost`: notifications may be missed from then on, so whatever
relies on them must stop trusting what it kept). A quiet connection is checked every
`PING_SECONDS`, so a dead one is noticed within about that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

__all__ = ["PING_SECONDS", "Follower", "Listener", "libpq_url"]

log = logging.getLogger("tessera.db")

PING_SECONDS = 1.0
_RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://...`) as libpq takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Follower:
    """A connection followed for ever: `_follow()` runs until the connection fails, `on_lost` is
    called then (and at stop), and it is tried again after a short backoff. What a follower and
    the widget-data cache's Redis subscriber (server/widgetdata/invalidations.py) share."""

    def __init__(self, name: str, on_lost: Callable[[], None]) -> None:
        self._name = name
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _connected(self) -> None:
        """Called by `_follow` once it follows: the next failure is logged again."""
        self._failures = 0

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
        application_name: str = "tessera-listen",
    ) -> None:
        super().__init__(f"LISTEN {channel}", on_lost)
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
                async for notify in conn.notifies(timeout=PING_SECONDS):
                    self._on_notify(notify.payload)
                # Quiet for a while: is the connection still there? (raises when it is not)
                await asyncio.wait_for(conn.execute("SELECT 1"), timeout=PING_SECONDS * 2)
