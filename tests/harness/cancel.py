"""A call cancelled twice while psycopg runs its query: its client gone, then the server stopping.
The second cancellation interrupts psycopg's cancellation of the query, and psycopg closes the
connection (what the pool must then discard, not hand back)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import pytest


async def cancel_twice_while_running(call: Coroutine[Any, Any, Any], caplog: pytest.LogCaptureFixture) -> None:
    task = asyncio.create_task(call)
    await asyncio.sleep(0.2)  # the query is running
    task.cancel()
    await asyncio.sleep(0)  # psycopg is asking the server to cancel it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert any("cancellation interrupted" in r.getMessage() for r in caplog.records)  # psycopg closed it


def pool_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the connection pool logged as errors (a failed reset is one, with its traceback)."""
    return [r for r in caplog.records if r.name.startswith("sqlalchemy.pool") and r.levelno >= logging.ERROR]
