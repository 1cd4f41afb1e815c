"""Handing a job to the workers: `task(job_id)` sent to its queue on the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from celery import Celery

__all__ = ["CeleryEnqueuer", "Enqueue"]

Enqueue = Callable[[str], Awaitable[None]]


class CeleryEnqueuer:
    """Sends `task(job_id)` to `queue` through a Celery app (`server.broker.app.make_celery`). Publishing blocks, so it
    runs in a thread; the app connects on the first send."""

    def __init__(self, app: Celery, task: str, queue: str) -> None:
        self._app = app
        self._task = task
        self._queue = queue

    def _send(self, job_id: str) -> None:
        self._app.send_task(self._task, args=[job_id], queue=self._queue)

    async def __call__(self, job_id: str) -> None:
        await asyncio.to_thread(self._send, job_id)
